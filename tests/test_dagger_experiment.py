"""experiments/dagger_so101.py: the cost estimate and parameters (fast), and the whole round in smoke mode end to end
(weak policy, corrections recorded by the scripted expert, DAgger and control fine-tuning, three evaluations on the
same seeds, results), then a rerun that skips every stage, and a rerun with other parameters that is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import dagger_so101 as dag  # noqa: E402

from robolearn.utils.provenance import git_state  # noqa: E402


def test_cost_estimate_grows_with_every_parameter():
    base = dag.estimate_seconds(400, 400, 50, 50, generate_data=False)
    assert base["total"] == sum(v for k, v in base.items() if k != "total") and base["data_generation"] == 0
    for i, k in enumerate(("train_weak", "train_dagger", "evals", "corrections")):
        args = [400, 400, 50, 50]
        args[i] *= 2
        more = dag.estimate_seconds(*args, generate_data=False)
        assert more[k] > base[k] and more["total"] > base["total"]
    assert dag.estimate_seconds(400, 400, 50, 50)["total"] == base["total"] + dag.DATA_GENERATION_S


def test_defaults_and_smoke_defaults(tmp_path):
    full = dag.parse_args([])
    assert (full.weak_steps, full.finetune_steps, full.episodes, full.correction_episodes) == (400, 400, 50, 50)
    assert full.results == REPO / "experiments" / "results" / "dagger_so101"
    smoke = dag.parse_args(["--smoke", "--out", str(tmp_path)])
    assert (smoke.weak_steps, smoke.episodes) == (3, 2) and smoke.results == tmp_path / "results"
    # the correction rollouts never use the evaluation seeds (1000 + i)
    assert full.correction_seed >= 1000 + full.episodes
    runs, evals = dag.plan_runs(smoke, str(tmp_path / "demos"))
    assert [r.variant for r in runs] == ["weak", "dagger", "control"]
    dagger, control = runs[1].overrides, runs[2].overrides
    assert "debug=smoke" in dagger and "policy=finetune" in dagger and "policy=finetune" in control
    assert str(dag.corrections_root(smoke)) in " ".join(dagger) and str(dag.corrections_root(smoke)) not in \
        " ".join(control)
    # both fine-tunings differ only in their data
    assert [o for o in dagger if not o.startswith("dataset.datasets")] == \
        [o for o in control if not o.startswith("dataset.datasets")]
    assert len({e.overrides for e in evals}) == 1


def test_smoke_round_end_to_end_and_resume(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROBOLEARN_DATA_DIR": str(tmp_path / "data"),
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    cmd = [sys.executable, "experiments/dagger_so101.py", "--smoke", "--allow-dirty", "--out", str(tmp_path / "runs"),
           "--results", str(tmp_path / "results")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Estimated cost on the 2-core CPU" in proc.stdout
    record = json.loads((tmp_path / "results" / "results.json").read_text())
    # the commit it ran at (HEAD then, or an ancestor of HEAD now when commits land while it runs)
    commit = record["source"]["commit"]
    assert len(commit) == 40 and record["smoke"] is True
    assert subprocess.run(["git", "merge-base", "--is-ancestor", commit, git_state(REPO)["commit"]],
                          cwd=REPO).returncode == 0
    assert record["command"].startswith("python experiments/dagger_so101.py --smoke")
    assert record["wall_s"] > 0 and record["compute_s"] > 0
    assert [r["arm"] for r in record["rows"]] == ["weak", "dagger", "control"]
    for row in record["rows"]:
        assert row["episodes"] == 2 and row["n_seeds"] == 1
        assert 0 <= row["ci95_low"] <= row["pc_success"] <= row["ci95_high"] <= 100
    # every arm evaluated on the same episode seeds
    seeds = {run: json.loads((tmp_path / "runs" / run / "seed1000" / "evals" / run / "eval_info.json").read_text())
             for run in ("weak", "dagger", "control")}
    assert len({json.dumps([e.get("seed") for e in info["per_episode"]]) for info in seeds.values()}) == 1
    corr = record["corrections"]
    assert corr["episodes"] == 2 and corr["takeovers"] >= 1 and corr["realtime"] is False
    assert corr["corrected_frames"] == corr["dataset"]["total_frames"] > 0
    demos, corrections = record["datasets"]["demonstrations"], record["datasets"]["corrections"]
    assert len(demos["fingerprint"]) == 64 and len(corrections["fingerprint"]) == 64
    assert demos["root"] == str(tmp_path / "data" / "so101_pick_place_sim_smoke")
    # the DAgger arm trained on demonstrations + corrections, the control on the demonstrations only
    dagger_cfg, control_cfg = record["runs"]["dagger/seed1000"]["config"], record["runs"]["control/seed1000"]["config"]
    assert [d["root"] for d in dagger_cfg["dataset"]["datasets"]] == [demos["root"], corrections["root"]]
    assert [d["root"] for d in control_cfg["dataset"]["datasets"]] == [demos["root"]]
    assert dagger_cfg["trainer"]["max_steps"] == control_cfg["trainer"]["max_steps"] == 3
    table = (tmp_path / "results" / "table.md").read_text()
    assert table.startswith("# SMOKE RUN") and "| dagger |" in table and "| control |" in table
    assert f"commit {commit[:7]}" in table and f"{corr['corrected_frames']} corrected" in table
    assert (tmp_path / "results" / "table.csv").read_text().startswith("arm,")
    assert (tmp_path / "results" / "plot.png").read_bytes()[:4] == b"\x89PNG"

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("(skipped)") == 3 + 3 + 1
    assert json.loads((tmp_path / "results" / "results.json").read_text())["rows"] == record["rows"]

    other = subprocess.run([*cmd, "--episodes", "3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert other.returncode != 0 and "holds a round with other parameters" in other.stderr
