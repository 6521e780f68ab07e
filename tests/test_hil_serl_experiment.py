"""experiments/hil_serl_so101.py: the curve's windows and the reading of the learner's CSV log (fast), the planned
commands, and the whole run in smoke mode end to end (learner + actor, evaluation of the export without the expert,
results), then a rerun that skips both stages, and a rerun with other parameters that is refused."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import hil_serl_so101 as hil  # noqa: E402

from tests.experiment_smoke import SmokeRun  # noqa: E402


def _episode(i: int, success: bool, rate: float, length: float = 50.0) -> dict:
    return {"episode": i, "success": float(success), "intervention_rate": rate, "length": length,
            "episode_return": float(success), "update": 10 * i}


def test_windows_count_success_autonomy_and_interventions():
    eps = [_episode(i, i % 2 == 0, 1.0 if i < 4 else 0.0) for i in range(9)]
    out = hil.windows(eps, 4)
    assert [(w["first_episode"], w["last_episode"]) for w in out] == [(0, 3), (4, 7)]  # 1 of 4 left: dropped
    first, second = out
    assert first["successes"] == 2 and first["pc_success"] == 50.0 and first["pc_autonomous_success"] == 0.0
    assert first["intervention_rate"] == 1.0 and second["intervention_rate"] == 0.0
    assert second["pc_autonomous_success"] == 50.0  # episodes 4 and 6 succeeded without the expert
    assert 0 < first["ci95_low"] < 50 < first["ci95_high"] < 100
    assert first["env_steps_end"] == 200 and second["env_steps_end"] == 400 and second["update_end"] == 70
    assert [(w["first_episode"], w["last_episode"]) for w in hil.windows(eps[:6], 4)] == [(0, 3), (4, 5)]
    assert len(hil.windows(eps[:1], 4)) == 1 and hil.windows([], 4) == []
    for i, e in enumerate(eps):
        e["sim_success"] = float(i < 2)  # beside a reward classifier: the simulator's verdict drives the curve
    assert [w["successes"] for w in hil.windows(eps, 4, "sim_success")] == [2, 0]


def test_reward_agreement_counts_classifier_against_simulator():
    eps = [_episode(i, s, 0.0) | {"sim_success": float(t)}
           for i, (s, t) in enumerate([(1, 1), (1, 0), (0, 1), (0, 0), (0, 0)])]
    assert hil.reward_agreement(eps) == {"both": 1, "reward_only": 1, "sim_only": 1, "neither": 2}
    assert hil.reward_agreement([_episode(0, True, 0.0)]) is None


def _write_metrics(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True)
    keys = ["env/episode_length", "env/episode_return", "env/intervention_rate", "env/sim_success", "env/success",
            "step", "train/loss"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        w.writerows(rows)


def test_read_episodes_in_version_order_and_only_episode_rows(tmp_path):
    ep = lambda s, r, step, **kw: {"env/episode_length": 40, "env/episode_return": s,  # noqa
                                   "env/intervention_rate": r, "env/success": s, "step": step, **kw}
    _write_metrics(tmp_path / "csv" / "version_10" / "metrics.csv", [ep(1.0, 0.0, 900, **{"env/sim_success": 0.0})])
    _write_metrics(tmp_path / "csv" / "version_2" / "metrics.csv",
                   [ep(0.0, 1.0, 0), {"step": 1, "train/loss": 0.5}, ep(1.0, 0.5, 3)])
    eps = hil.read_episodes(tmp_path)
    assert [(e["episode"], e["success"], e["intervention_rate"], e["update"]) for e in eps] == \
        [(0, 0.0, 1.0, 0), (1, 1.0, 0.5, 3), (2, 1.0, 0.0, 900)]
    assert [e.get("sim_success") for e in eps] == [None, None, 0.0]  # only where the actor reported it
    bad = tmp_path / "bad"
    _write_metrics(bad / "csv" / "version_0" / "metrics.csv", [{**ep(1.0, 0.0, 1), "env/intervention_rate": ""}])
    with pytest.raises(ValueError, match=r"version_0/metrics.csv, row 2"):
        hil.read_episodes(bad)
    with pytest.raises(FileNotFoundError, match="logger=csv"):
        hil.read_episodes(tmp_path / "none")


def test_planned_commands(tmp_path):
    full = hil.parse_args([])
    assert (full.updates, full.episodes, full.window) == (20000, 50, 20)
    assert full.results == REPO / "experiments" / "results" / "hil_serl_so101"
    (run,), ev = hil.plan_runs(hil.parse_args(["--smoke", "--out", str(tmp_path)]))
    assert {"experiment=hil_serl_so101_sim", "debug=smoke", "role=both", "logger=csv", "dataset.port=0",
            "trainer.max_steps=12"} <= set(run.overrides)
    assert set(hil.STATE_ENV) - {"env.max_episode_steps=200"} <= set(ev.overrides)
    assert "env.max_episode_steps=30" in ev.overrides and "eval.n_episodes=2" in ev.overrides  # smoke: shorter
    assert ev.out_dir.parent.parent == run.run_dir
    assert not any(o.startswith("actor.intervention_penalty") for o in run.overrides)  # the experiment's value
    (control,), _ = hil.plan_runs(hil.parse_args(["--smoke", "--out", str(tmp_path), "--intervention-penalty", "0"]))
    assert "actor.intervention_penalty=0.0" in control.overrides
    with pytest.raises(SystemExit):
        hil.parse_args(["--intervention-penalty", "-1"])
    est = hil.estimate_seconds(1000, 50)
    assert est["total"] == est["train"] + est["eval"] and hil.estimate_seconds(2000, 50)["train"] > est["train"]
    assert full.reward == "sim" and full.classifier_steps is None
    assert hil.estimate_seconds(1000, 50, 1500)["classifier"] > 0


def test_planned_commands_with_the_reward_classifier(tmp_path):
    args = hil.parse_args(["--smoke", "--out", str(tmp_path), "--reward", "classifier"])
    assert args.classifier_steps == 4 and hil.parse_args(["--reward", "classifier"]).classifier_steps == 1500
    (classifier, run), ev = hil.plan_runs(args)
    assert {"policy=reward_classifier", "dataset=so101_pick_place_sim_camera", "+dataset.generator.show_robot=false",
            "policy.use_state=true", "trainer.max_steps=4", f"dataset.root={tmp_path / 'classifier_demos'}",
            "+dataset.generator.steps_after_success=5", "policy.label_offset=-1"} <= set(classifier.overrides)
    export = classifier.run_dir / "checkpoints" / "pretrained_model"
    reward = next(o for o in run.overrides if o.startswith("dataset.env_kwargs.reward="))
    assert "ClassifierReward" in reward and str(export) in reward and "state_key:observation.state" in reward
    assert "+dataset.env_kwargs.robot.show_robot=false" in run.overrides and ev.train is run
    with pytest.raises(SystemExit):
        hil.parse_args(["--reward", "classifier", "--classifier-steps", "0"])
    with pytest.raises(SystemExit):
        hil.parse_args(["--classifier-only"])  # only with --reward classifier


def test_classifier_stage_alone_trains_and_exports_the_classifier(tmp_path):
    """--classifier-only (smoke): the arm-less camera demonstrations are generated and the classifier trained and
    exported by train.py; the HIL run is not started."""
    smoke = SmokeRun("hil_serl_so101.py", tmp_path, "--reward", "classifier", "--classifier-only")
    proc = smoke.run_ok(timeout=900)
    assert "stopped after the reward classifier" in proc.stdout
    run = smoke.runs / "reward_classifier" / "seed1000"
    assert (run / "train_done.json").is_file()
    export = run / "checkpoints" / "pretrained_model"
    assert (export / "model.safetensors").is_file() and "RewardClassifier" in (export / "config.yaml").read_text()
    generation = json.loads((smoke.runs / "classifier_demos" / "meta" / "generation.json").read_text())
    assert generation["params"]["show_robot"] is False and generation["params"]["camera"] == hil.CLASSIFIER_CAMERA
    assert generation["params"]["steps_after_success"] == hil.CLASSIFIER_STEPS_AFTER_SUCCESS
    assert "label_offset: -1" in (export / "config.yaml").read_text()
    assert not (smoke.runs / "hil_serl").exists()


def test_the_classifier_overrides_compose_into_the_actors_env(tmp_path):
    from hydra.utils import instantiate

    from tests.compose import compose_config

    args = hil.parse_args(["--out", str(tmp_path), "--reward", "classifier"])
    (_, run), _ = hil.plan_runs(args)
    env_overrides = [o for o in run.overrides if o.lstrip("+").startswith("dataset.env_kwargs")]
    kw = compose_config("train", ["experiment=hil_serl_so101_sim", *env_overrides]).dataset.env_kwargs
    assert kw.robot.camera == hil.CLASSIFIER_CAMERA and kw.robot.show_robot is False and kw.cameras is True
    assert kw.reward.image_keys == {hil.CLASSIFIER_CAMERA: hil.CLASSIFIER_IMAGE_KEY}
    assert kw.reward.classifier.path.endswith("pretrained_model") and kw.reward.state_key == "observation.state"
    robot = instantiate(kw.robot)
    assert robot.show_robot is False and robot.camera == hil.CLASSIFIER_CAMERA


def test_evaluation_keeps_the_actors_episode_limit_and_takeover():
    from tests.compose import compose_config

    cfg = compose_config("train", ["experiment=hil_serl_so101_sim"])
    kw = cfg.dataset.env_kwargs
    assert kw.robot.max_episode_steps == hil.EPISODE_STEPS
    assert f"env.max_episode_steps={hil.EPISODE_STEPS}" in hil.STATE_ENV
    # The operator lets the policy err before correcting it (patience > 1): see conf/dataset/hil_serl_so101_sim.yaml.
    assert kw.trigger.patience > 1 and kw.trigger.hold_steps >= 1


def test_smoke_run_end_to_end_and_resume(tmp_path):
    smoke = SmokeRun("hil_serl_so101.py", tmp_path)
    proc = smoke.run_ok()
    assert "Estimated cost on the 2-core CPU" in proc.stdout
    record = smoke.record()
    smoke.check_record(record, ["final policy alone"])
    assert record["actor"]["episodes"] == len(record["episodes"]) >= 1 and record["curve"]
    assert record["actor"]["intervention_steps"] > 0  # the expert drove the untrained policy's episodes
    assert record["actor"]["intervention_penalty"] == 1.0  # the experiment's RLIF reward, read from the actor's config
    run = record["runs"]["hil_serl/seed1000"]
    assert run["config"]["role"] == "both" and run["config"]["trainer"]["max_steps"] == 12
    info = (smoke.runs / "hil_serl" / "seed1000" / "evals" / "final" / "eval_info.json").read_text()
    assert '"n_episodes": 2' in info
    table = (smoke.results / "table.md").read_text()
    assert table.startswith("# SMOKE RUN") and "Final policy alone" in table
    assert "RLIF intervention reward -1 per takeover" in table
    assert (smoke.results / "curve.csv").read_text().startswith("first_episode,")
    assert (smoke.results / "plot.png").read_bytes()[:4] == b"\x89PNG"
    smoke.check_resume(record, skipped=2, other_params_error="holds a HIL-SERL run with other parameters")
