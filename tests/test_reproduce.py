"""experiments/reproduce.py: spec checks, plan, resume bookkeeping (fast), and one tiny reproduction end to end
(train 2 seeds of a 4-step Diffusion policy on 4 generated SO-101 demos, evaluate 2 arms, collect; then rerun and
check that everything is skipped)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import reproduce as rep  # noqa: E402

from robolearn.utils.provenance import git_state  # noqa: E402
from robolearn.utils.schema import register_schemas  # noqa: E402

SPECS = sorted(p.stem for p in rep.SPEC_DIR.glob("*.yaml"))


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_spec_errors_name_the_file_and_key(tmp_path):
    good = {"title": "t", "seeds": [1], "train": {"variants": {"a": []}}, "eval": {"common": []},
            "arms": [{"name": "x", "train": "a"}]}
    assert rep.load_spec(str(_write(tmp_path, good)))["name"] == "tiny"
    with pytest.raises(rep.SpecError, match=r"tiny.yaml: unknown keys \['sedes'\], missing keys \['seeds'\]"):
        rep.load_spec(str(_write(tmp_path, {**{k: v for k, v in good.items() if k != "seeds"}, "sedes": [1]})))
    with pytest.raises(rep.SpecError, match=r"arms\[0\] \(x\) trains 'b', not one of \['a'\]"):
        rep.load_spec(str(_write(tmp_path, {**good, "arms": [{"name": "x", "train": "b"}]})))
    with pytest.raises(rep.SpecError, match=r"train.variants.a: expected a list of Hydra override strings"):
        rep.load_spec(str(_write(tmp_path, {**good, "train": {"variants": {"a": "policy=act"}}})))
    with pytest.raises(rep.SpecError, match=r"arms\[0\] \(x\) trains nothing, so its eval overrides must choose a policy"):
        rep.load_spec(str(_write(tmp_path, {**good, "arms": [{"name": "x", "train": None}]})))
    with pytest.raises(FileNotFoundError, match=r"no such reproduction; available: \["):
        rep.load_spec("no_such_reproduction")


def test_merge_overrides_replaces_same_key_in_place():
    assert rep.merge_overrides(["experiment=a", "seed=1"], ["+x=2"], ["experiment=a_smoke", "x=3"]) == (
        "experiment=a_smoke", "seed=1", "x=3")


def test_plan_and_commands(tmp_path):
    spec = rep.load_spec("diffusion_inference_steps")
    runs, evals = rep.plan(spec, tmp_path)
    assert [(r.variant, r.seed) for r in runs] == [("diffusion_cpu", 1000), ("diffusion_cpu", 2000)]
    assert len(evals) == 2 * len(spec["arms"])
    ddpm = next(e for e in evals if e.arm == "DDPM-100" and e.train.seed == 2000)
    argv = rep.eval_command(ddpm, "cpu")
    assert f"policy.path={tmp_path}/diffusion_inference_steps/diffusion_cpu/seed2000/checkpoints/pretrained_model" in argv
    assert "policy.overrides={noise_scheduler_type: DDPM, num_inference_steps: 100}" in argv
    assert {"eval.n_episodes=50", "env=so101_pick_place", f"hydra.run.dir={ddpm.out_dir}"} <= set(argv)
    # arm names become folder names Hydra's override grammar accepts unquoted
    default = next(e for e in evals if e.arm == "DDIM-10 (trained default)")
    assert default.out_dir.name == "DDIM-10_trained_default" == rep.slug("DDIM-10 (trained default)")
    train = rep.train_command(runs[1], "gpu")
    assert {"experiment=so101_pick_place", "seed=2000", "ckpt_path=auto", "trainer.accelerator=gpu",
            f"hydra.run.dir={runs[1].run_dir}"} <= set(train)
    smoke_runs, _ = rep.plan(spec, tmp_path, smoke=True)
    assert smoke_runs[0].overrides[0] == "experiment=so101_pick_place" and "debug=smoke" in smoke_runs[0].overrides


@pytest.mark.parametrize("name", SPECS)
def test_every_spec_composes(name, tmp_path):
    """Each reproduction's train and eval overrides compose against conf/ (a typo fails here, not hours later)."""
    spec = rep.load_spec(name)
    runs, evals = rep.plan(spec, tmp_path)
    smoke_runs, smoke_evals = rep.plan(spec, tmp_path, smoke=True)
    register_schemas()
    with initialize_config_dir(str(REPO / "conf"), version_base=None):
        for run in [*runs, *smoke_runs]:
            cfg = compose("train", overrides=list(run.overrides))
            assert cfg.seed == run.seed
        for ev in smoke_evals:
            compose("eval", overrides=[*([] if ev.train is None else [f"policy.path={ev.train.run_dir}"]), *ev.overrides])
        for ev in evals:
            policy = [] if ev.train is None else [f"policy.path={ev.train.run_dir}"]  # None: a baseline arm
            cfg = compose("eval", overrides=[*policy, *ev.overrides])
            assert cfg.eval.n_episodes >= 50 and cfg.seed == 1000  # the fixed evaluation episodes


def test_run_started_at_another_commit_is_refused(tmp_path):
    run = rep.TrainRun("v", 1, tmp_path / "v" / "seed1", ("seed=1",))
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "provenance.jsonl").write_text(json.dumps({"git": {"commit": "a" * 40, "dirty": False}}) + "\n")
    with pytest.raises(RuntimeError, match=r"started at commit aaaaaaa, not at HEAD bbbbbbb: check out aaaaaaa"):
        rep.do_train(run, "cpu", dict(os.environ), head="b" * 40)


def test_two_reproductions_sharing_a_run_train_it_once(tmp_path, monkeypatch):
    """act_temporal_ensemble_cvae and act_chunk_size started together: the second waits for the shared run's
    training and skips it."""
    run = rep.TrainRun("k100", 1, tmp_path / "k100" / "seed1", ("seed=1",))
    trained, entered = [], threading.Event()

    def slow_training(r, accelerator, env, head):
        trained.append(r.run_dir)
        entered.set()
        time.sleep(0.5)
        (r.run_dir / rep.TRAIN_DONE).parent.mkdir(parents=True, exist_ok=True)
        (r.run_dir / rep.TRAIN_DONE).write_text("{}\n")
        return "trained"

    monkeypatch.setattr(rep, "_train_locked", slow_training)
    first = threading.Thread(target=rep.do_train, args=(run, "cpu", {}, None))
    first.start()
    assert entered.wait(10)
    assert rep.do_train(run, "cpu", {}, None).endswith("trained (skipped)")
    first.join()
    assert trained == [run.run_dir]


def test_attempt_seconds_counts_a_killed_attempt_until_its_last_log_write(tmp_path):
    path = tmp_path / "train_attempts.jsonl"
    events = [{"start": 100.0, "log_mtime_before": None},  # killed; its last log write was at 160
              {"start": 5000.0, "log_mtime_before": 160.0},
              {"end": 5030.0, "seconds": 30.0, "returncode": 0}]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert rep.attempt_seconds(path) == (90.0, 2)


def test_tiny_reproduction_end_to_end_and_resume(tmp_path):
    spec = rep.load_spec("diffusion_inference_steps")
    tiny = {k: spec[k] for k in ("title", "paper", "paper_result", "plot")}
    tiny.update(seeds=[1, 2], train={"common": spec["smoke"]["train"] + ["dataset.generator.num_episodes=2"],
                                     "variants": {"diffusion_cpu": []}},
                eval={"common": ["env=so101_pick_place", *spec["smoke"]["eval"]]},
                arms=[{"name": "DDIM-10", "train": "diffusion_cpu"},
                      {"name": "DDPM-10", "train": "diffusion_cpu",
                       "eval": ["policy.overrides={noise_scheduler_type: DDPM, num_inference_steps: 10}"]},
                      {"name": "expert", "train": None, "eval": ["policy=scripted"]}])
    path = _write(tmp_path, tiny)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROBOLEARN_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "experiments/reproduce.py", str(path), "--out", str(tmp_path / "runs"),
           "--results", str(tmp_path / "results"), "--jobs", "2", "--allow-dirty"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "results.json").read_text())
    assert record["source"]["commit"] == git_state(REPO)["commit"]
    assert record["command"].startswith("python experiments/reproduce.py ")
    assert [r["arm"] for r in record["rows"]] == ["DDIM-10", "DDPM-10", "expert"]
    expert = record["rows"][2]  # a baseline arm: evaluated once, no training run
    assert expert["n_seeds"] == 1 and expert["episodes"] == 2 and set(expert["per_seed"]) == {"baseline"}
    assert record["runs"]["baselines"]["evals"]["expert"]["n_episodes"] == 2
    for row in record["rows"][:2]:
        assert row["n_seeds"] == 2 and row["episodes"] == 4 and set(row["per_seed"]) == {"1", "2"}
        assert 0 <= row["ci95_low"] <= row["pc_success"] <= row["ci95_high"] <= 100
        assert row["select_action_ms_mean"] > 0
        # runs from a dirty tree are let through by --allow-dirty, and marked
        assert row["unverified"] == (2 if git_state(REPO)["dirty"] else 0)
    run = record["runs"]["diffusion_cpu/seed2"]
    assert run["commits"] == [record["source"]["commit"]] and len(run["dataset_fingerprint"]) == 1
    assert run["config"]["seed"] == 2 and run["train"]["attempts"] == 1
    assert set(run["evals"]) == {"DDIM-10", "DDPM-10"}
    table = (tmp_path / "results" / "table.md").read_text()
    assert "| DDPM-10 |" in table and f"commit {record['source']['commit'][:7]}" in table
    assert (tmp_path / "results" / "plot.png").read_bytes()[:4] == b"\x89PNG"
    # each arm's record names the eval.py command it ran, with its overrides
    assert "'policy.overrides={noise_scheduler_type: DDPM, num_inference_steps: 10}'" in run["evals"]["DDPM-10"]["command"]

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("(skipped)") == 2 + 4 + 1
    assert json.loads((tmp_path / "results" / "results.json").read_text())["rows"] == record["rows"]


def test_experiments_readme_table_is_generated_from_the_results_files():
    block = rep.README.read_text().split(rep.README_BEGIN, 1)[1].split(rep.README_END, 1)[0]
    assert block == "\n" + rep.summary_table(), "run: python experiments/reproduce.py --update-readme"


def test_summary_row_keeps_the_title_of_the_spec_that_ran(tmp_path):
    specs, results = tmp_path / "specs", tmp_path / "results"
    specs.mkdir()
    shutil.copy(rep.SPEC_DIR / "pusht_state_comparison.yaml", specs)
    ran = rep.load_spec("pusht_state_comparison", specs)
    (results / "pusht_state_comparison").mkdir(parents=True)
    record = {"spec": {**ran, "title": "the spec as it ran, 10k steps"}, "source": {"commit": "a" * 40},
              "hardware": {"cpus": 2}, "compute_s": 3600.0,
              "rows": [{"arm": "Diffusion Policy", "n_seeds": 2, "episodes": 100, "pc_success": 27.0,
                        "ci95_low": 19.0, "ci95_high": 36.0, "unverified": 0}]}
    (results / "pusht_state_comparison" / "results.json").write_text(json.dumps(record))
    table = rep.summary_table(specs, results)
    assert "the spec as it ran, 10k steps" in table and ran["title"] not in table
    (results / "pusht_state_comparison" / "results.json").unlink()
    assert ran["title"] in rep.summary_table(specs, results) and "not run yet" in rep.summary_table(specs, results)
