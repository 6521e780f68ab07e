"""experiments/distill_vla.py: the cost estimate, parameters and planned runs (fast), and the whole experiment in
smoke mode end to end (tiny SmolVLA teacher, its rollouts recorded, a Diffusion student trained on them, both
evaluated on the same seeds, select_action latency, results), then a rerun that skips every stage, and a rerun with
other parameters that is refused."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import distill_vla as dv  # noqa: E402

from tests.experiment_smoke import SmokeRun  # noqa: E402


def test_cost_estimate_grows_with_every_parameter():
    base = dv.estimate_seconds(3000, 6000, 50, 300, generate_data=False)
    assert base["total"] == sum(v for k, v in base.items() if k != "total") and base["data_generation"] == 0
    for i, k in enumerate(("train_teacher", "train_student", "evals", "rollouts")):
        args = [3000, 6000, 50, 300]
        args[i] *= 2
        more = dv.estimate_seconds(*args, generate_data=False)
        assert more[k] > base[k] and more["total"] > base["total"]
    given = dv.estimate_seconds(None, 6000, 50, 300, generate_data=False)
    assert given["train_teacher"] == 0 and given["total"] < base["total"]


def test_defaults_plan_and_given_teacher(tmp_path):
    full = dv.parse_args([])
    assert (full.teacher_steps, full.student_steps, full.episodes, full.rollout_episodes) == (3000, 6000, 50, 300)
    assert full.results == REPO / "experiments" / "results" / "distill_vla" and full.student == "diffusion_cpu"
    # the rollouts never use the evaluation seeds (1000 + i)
    assert full.rollout_seed >= 1000 + full.episodes
    smoke = dv.parse_args(["--smoke", "--out", str(tmp_path)])
    assert (smoke.teacher_steps, smoke.episodes, smoke.rollout_episodes) == (3, 2, 2)
    assert smoke.results == tmp_path / "results"
    runs, evals = dv.plan_runs(smoke)
    assert [r.variant for r in runs] == ["teacher", "student"] and [e.arm for e in evals] == ["teacher", "student"]
    teacher, student = runs[0].overrides, runs[1].overrides
    assert "policy=smolvla" in teacher and "policy.env_state_in_prefix=true" in teacher and "debug=smoke" in teacher
    assert f"policy.vlm_model_name={dv.vlm_dir(smoke)}" in teacher
    assert "policy=diffusion_cpu" in student and f"dataset.root={dv.rollouts_root(smoke)}" in student
    assert len({e.overrides for e in evals}) == 1
    # a given teacher: not trained, evaluated as a baseline arm from its export
    model = tmp_path / "pm"
    model.mkdir()
    (model / "config.yaml").write_text("{}\n")
    given = dv.parse_args(["--smoke", "--out", str(tmp_path / "g"), "--teacher", str(model)])
    runs, evals = dv.plan_runs(given)
    assert [r.variant for r in runs] == ["student"] and evals[0].train is None
    assert f"policy.path={model}" in evals[0].overrides and dv.teacher_model(given, runs) == model
    assert evals[0].overrides[1:] == evals[1].overrides


def test_smoke_experiment_end_to_end_and_resume(tmp_path):
    smoke = SmokeRun("distill_vla.py", tmp_path, "--threads", "1")
    proc = smoke.run_ok()
    assert "Estimated cost on the 2-core CPU" in proc.stdout
    record = smoke.record()
    arms = ["teacher", "student"]
    commit = smoke.check_record(record, arms)
    assert record["teacher"]["class"] == "SmolVLAPolicy" and record["teacher"]["given"] is False
    for row in record["rows"]:
        assert row["latency_p50_ms"] > 0 and row["parameters"] > 0 and row["n_action_steps"] >= 1
    assert record["rows"][0]["policy"] == "SmolVLAPolicy" and record["rows"][1]["policy"] == "DiffusionPolicy"
    for arm in arms:
        lat = record["latency"][arm]
        assert lat["chunks_timed"] == 4 and lat["threads"] == 1 and lat["new_chunk_s"]["p50"] > 0
    smoke.check_same_episode_seeds(arms)
    rollouts = record["rollouts"]
    assert rollouts["episodes"] == 2 and rollouts["realtime"] is False
    assert rollouts["dataset"]["total_episodes"] == 2 and rollouts["dataset"]["total_frames"] > 0
    assert len(rollouts["dataset"]["fingerprint"]) == 64
    demos = record["datasets"]["demonstrations"]
    assert demos["root"] == str(smoke.data / "so101_pick_place_sim_smoke") and len(demos["fingerprint"]) == 64
    # the teacher trained on the demonstrations, the student on the teacher's rollouts only
    teacher_cfg = record["runs"]["teacher/seed1000"]["config"]
    student_cfg = record["runs"]["student/seed1000"]["config"]
    assert teacher_cfg["policy"]["env_state_in_prefix"] is True
    assert teacher_cfg["dataset"]["root"].endswith("/so101_pick_place_sim_smoke")  # as composed, interpolated
    assert student_cfg["dataset"]["root"] == rollouts["dataset"]["root"]
    smoke.check_table(commit, arms)

    # vlm, trainings, evals, rollouts, latency
    smoke.check_resume(record, skipped=1 + 2 + 2 + 1 + 1,
                       other_params_error="holds an experiment with other parameters")
