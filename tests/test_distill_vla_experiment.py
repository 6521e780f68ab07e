"""experiments/distill_vla.py: the cost estimate, parameters and planned runs (fast), and the whole experiment in
smoke mode end to end (tiny SmolVLA teacher, its rollouts recorded, a Diffusion student trained on them, both
evaluated on the same seeds, select_action latency, results), then a rerun that skips every stage, and a rerun with
other parameters that is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import distill_vla as dv  # noqa: E402

from robolearn.utils.provenance import git_state  # noqa: E402


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
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROBOLEARN_DATA_DIR": str(tmp_path / "data"),
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    cmd = [sys.executable, "experiments/distill_vla.py", "--smoke", "--allow-dirty", "--threads", "1",
           "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Estimated cost on the 2-core CPU" in proc.stdout
    record = json.loads((tmp_path / "results" / "results.json").read_text())
    commit = record["source"]["commit"]
    assert len(commit) == 40 and record["smoke"] is True
    assert subprocess.run(["git", "merge-base", "--is-ancestor", commit, git_state(REPO)["commit"]],
                          cwd=REPO).returncode == 0
    assert record["command"].startswith("python experiments/distill_vla.py --smoke")
    assert record["wall_s"] > 0 and record["compute_s"] > 0
    assert record["teacher"]["class"] == "SmolVLAPolicy" and record["teacher"]["given"] is False
    assert [r["arm"] for r in record["rows"]] == ["teacher", "student"]
    for row in record["rows"]:
        assert row["episodes"] == 2 and row["n_seeds"] == 1
        assert 0 <= row["ci95_low"] <= row["pc_success"] <= row["ci95_high"] <= 100
        assert row["latency_p50_ms"] > 0 and row["parameters"] > 0 and row["n_action_steps"] >= 1
    assert record["rows"][0]["policy"] == "SmolVLAPolicy" and record["rows"][1]["policy"] == "DiffusionPolicy"
    for arm in ("teacher", "student"):
        lat = record["latency"][arm]
        assert lat["chunks_timed"] == 4 and lat["threads"] == 1 and lat["new_chunk_s"]["p50"] > 0
    # both evaluated on the same episode seeds
    seeds = {arm: json.loads((tmp_path / "runs" / arm / "seed1000" / "evals" / arm / "eval_info.json").read_text())
             for arm in ("teacher", "student")}
    assert len({json.dumps([e.get("seed") for e in info["per_episode"]]) for info in seeds.values()}) == 1
    rollouts = record["rollouts"]
    assert rollouts["episodes"] == 2 and rollouts["realtime"] is False
    assert rollouts["dataset"]["total_episodes"] == 2 and rollouts["dataset"]["total_frames"] > 0
    assert len(rollouts["dataset"]["fingerprint"]) == 64
    demos = record["datasets"]["demonstrations"]
    assert demos["root"] == str(tmp_path / "data" / "so101_pick_place_sim_smoke") and len(demos["fingerprint"]) == 64
    # the teacher trained on the demonstrations, the student on the teacher's rollouts only
    teacher_cfg = record["runs"]["teacher/seed1000"]["config"]
    student_cfg = record["runs"]["student/seed1000"]["config"]
    assert teacher_cfg["policy"]["env_state_in_prefix"] is True
    assert teacher_cfg["dataset"]["root"].endswith("/so101_pick_place_sim_smoke")  # as composed, interpolated
    assert student_cfg["dataset"]["root"] == rollouts["dataset"]["root"]
    table = (tmp_path / "results" / "table.md").read_text()
    assert table.startswith("# SMOKE RUN") and "| teacher |" in table and "| student |" in table
    assert f"commit {commit[:7]}" in table
    assert (tmp_path / "results" / "table.csv").read_text().startswith("arm,")

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("(skipped)") == 1 + 2 + 2 + 1 + 1  # vlm, trainings, evals, rollouts, latency
    assert json.loads((tmp_path / "results" / "results.json").read_text())["rows"] == record["rows"]

    other = subprocess.run([*cmd, "--episodes", "3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert other.returncode != 0 and "holds an experiment with other parameters" in other.stderr
