"""experiments/dagger_so101.py: the cost estimate and parameters (fast), and the whole round in smoke mode end to end
(weak policy, corrections recorded by the scripted expert, DAgger and control fine-tuning, three evaluations on the
same seeds, results), then a rerun that skips every stage, and a rerun with other parameters that is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import dagger_so101 as dag  # noqa: E402

from tests.experiment_smoke import SmokeRun  # noqa: E402


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
    assert full.demos == "noisy" and not any("clean_demos" in o for o in runs[0].overrides)


def test_clean_demos_train_the_weak_policy_on_noise_free_demonstrations(tmp_path):
    """--demos clean: the weak run generates (and reads) demonstrations without DART noise or missed grasps in
    <out>/clean_demos; the overrides compose into that generator, and the fine-tunings read the weak run's data."""
    from tests.compose import compose_config

    args = dag.parse_args(["--demos", "clean", "--out", str(tmp_path)])
    (weak,), _ = dag.plan_runs(args, None)
    assert f"dataset.root={tmp_path / 'clean_demos'}" in weak.overrides
    cfg = compose_config("train", list(weak.overrides))
    assert cfg.dataset.generator.action_noise == 0.0 and cfg.dataset.generator.missed_grasps == 0.0
    assert cfg.dataset.root == str(tmp_path / "clean_demos")
    runs, _ = dag.plan_runs(args, str(tmp_path / "clean_demos"))
    assert f"root: '{tmp_path / 'clean_demos'}'" in " ".join(runs[2].overrides)
    assert dag.demos_folder(args) == tmp_path / "clean_demos"
    with pytest.raises(SystemExit):
        dag.parse_args(["--demos", "dirty"])


def test_smoke_round_end_to_end_and_resume(tmp_path):
    smoke = SmokeRun("dagger_so101.py", tmp_path)
    proc = smoke.run_ok()
    assert "Estimated cost on the 2-core CPU" in proc.stdout
    record = smoke.record()
    arms = ["weak", "dagger", "control"]
    commit = smoke.check_record(record, arms)
    smoke.check_same_episode_seeds(arms)
    corr = record["corrections"]
    assert corr["episodes"] == 2 and corr["takeovers"] >= 1 and corr["realtime"] is False
    assert corr["corrected_frames"] == corr["dataset"]["total_frames"] > 0
    demos, corrections = record["datasets"]["demonstrations"], record["datasets"]["corrections"]
    assert len(demos["fingerprint"]) == 64 and len(corrections["fingerprint"]) == 64
    assert demos["root"] == str(smoke.data / "so101_pick_place_sim_smoke")
    # the DAgger arm trained on demonstrations + corrections, the control on the demonstrations only
    dagger_cfg, control_cfg = record["runs"]["dagger/seed1000"]["config"], record["runs"]["control/seed1000"]["config"]
    assert [d["root"] for d in dagger_cfg["dataset"]["datasets"]] == [demos["root"], corrections["root"]]
    assert [d["root"] for d in control_cfg["dataset"]["datasets"]] == [demos["root"]]
    assert dagger_cfg["trainer"]["max_steps"] == control_cfg["trainer"]["max_steps"] == 3
    table = smoke.check_table(commit, arms)
    assert f"{corr['corrected_frames']} corrected" in table
    assert (smoke.results / "plot.png").read_bytes()[:4] == b"\x89PNG"

    smoke.check_resume(record, skipped=3 + 3 + 1, other_params_error="holds a round with other parameters")
