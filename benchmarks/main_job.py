"""The main job, measured as a new user runs it: ``python train.py`` from an empty data dir, then the evaluation
command it prints, then the evaluation speed. Writes ``benchmarks/results/main_job.json``.

1. ``train``: ``python train.py`` (the embedded default: dataset generation on first use, training with rollout
   evaluations, export) in a fresh data dir and run dir; wall time of the whole command.
2. ``eval``: ``python eval.py policy.path=<run>/checkpoints/pretrained_model env=so101_pick_place
   eval.n_episodes=50``; success rate with its 95 % Wilson interval, from the ``eval_info.json`` it writes.
3. ``eval_speed``: environment steps per second of evaluation (``env=so101_pick_place``, batches of 10 envs) for
   the scripted expert and for the trained policy, as evaluation runs now (no camera rendered for a policy that
   reads none, envs whose episode ended are held) and as it ran before (every camera rendered every step, ended
   episodes reset and simulated until the whole batch ends). Steps counted are the episodes' own steps.

The record carries the provenance of the measurement (:func:`robolearn.utils.provenance.results_header`): git
commit and whether the tree was clean (with the SHA-256 of ``git diff HEAD`` when not), the command lines, the
resolved training config, the dataset's content fingerprint, hardware, library versions, wall time and load
average.

    python benchmarks/main_job.py [--eval-episodes 50] [--speed-episodes 20] [--out benchmarks/results/main_job.json]
        [train.py overrides ...]

Overrides after the options go to ``train.py`` and are recorded in the command; they measure a variant of the
main job at the same protocol, e.g. the camera + joints policy at a stated step budget (write it elsewhere):

    python benchmarks/main_job.py --speed-episodes 0 --out benchmarks/results/main_job_camera.json \
        experiment=so101_pick_place_camera trainer.max_steps=700

It refuses to run from a dirty tree unless ``--allow-dirty`` (then the record says so).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
ENV_NAME = "so101_pick_place"


def run(cmd: list[str], log: Path, env: dict) -> float:
    """Run ``cmd`` in the repo with its output to ``log``; returns the wall time in seconds.

    Raises:
        RuntimeError: non-zero exit (the message names the log).
    """
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}; see {log}")
    return time.perf_counter() - t0


def eval_speed(policy_dir: Path, episodes: int, batch_size: int) -> dict:
    """Evaluation env steps/s for the scripted expert and the policy, now and as before (see the module doc)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from robolearn.envs.factory import make_vec_env
    from robolearn.eval import evaluate_policy, prepare_policy
    from robolearn.eval.rollout import rollout_batch
    from robolearn.policies import load_policy
    from robolearn.policies.scripted import ScriptedPolicy
    from robolearn.utils.schema import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        spec = instantiate(compose("eval", overrides=[f"env={ENV_NAME}"]).env)
    policies = {"scripted_expert": ScriptedPolicy(), "trained_policy": prepare_policy(load_policy(policy_dir), "cpu")}
    out: dict = {}
    for name, policy in policies.items():
        t0 = time.perf_counter()
        info = evaluate_policy(policy, spec, episodes, batch_size, seed=1000, progress=False)
        now_s = time.perf_counter() - t0
        now_steps = sum(e["length"] for e in info["per_episode"])

        vec = make_vec_env(spec, batch_size, with_expert=bool(getattr(policy, "requires_expert", False)))
        before_steps, t0 = 0, time.perf_counter()
        try:
            for first in range(0, episodes, batch_size):
                idx = list(range(first, first + batch_size))
                results, _ = rollout_batch(vec, policy, spec, [1000 + i for i in idx], idx)
                before_steps += sum(r.length for r in results if r.episode_index < episodes)
        finally:
            vec.close()
        before_s = time.perf_counter() - t0
        out[name] = {
            "episodes": episodes, "batch_size": batch_size, "pc_success": info["aggregated"]["pc_success"],
            "now": {"steps": now_steps, "seconds": now_s, "steps_per_s": now_steps / now_s},
            "before": {"steps": before_steps, "seconds": before_s, "steps_per_s": before_steps / before_s},
            "speedup": (now_steps / now_s) / (before_steps / before_s),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-episodes", type=int, default=50)
    ap.add_argument("--speed-episodes", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "main_job.json")
    ap.add_argument("--work-dir", type=Path, default=None, help="data and run dirs (default: a new temporary dir)")
    ap.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (recorded in the result)")
    ap.add_argument("train_overrides", nargs="*", help="train.py overrides for a variant of the main job")
    a = ap.parse_args()

    from robolearn.utils import provenance

    try:
        header = provenance.results_header(REPO, allow_dirty=a.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/main_job.py: {e}")

    work = a.work_dir or Path(tempfile.mkdtemp(prefix="robolearn_main_job_"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ROBOLEARN_DATA_DIR": str(work / "data")}
    train_dir, eval_dir = work / "train", work / "eval"
    train_cmd = [sys.executable, "train.py", *a.train_overrides, f"hydra.run.dir={train_dir}"]
    print(f"[main_job] {shlex.join(train_cmd)}  (data dir {work / 'data'})", flush=True)
    train_s = run(train_cmd, work / "train.log", env)
    policy_dir = train_dir / "checkpoints" / "pretrained_model"
    eval_cmd = [sys.executable, "eval.py", f"policy.path={policy_dir}", f"env={ENV_NAME}",
                f"eval.n_episodes={a.eval_episodes}", f"hydra.run.dir={eval_dir}"]
    print(f"[main_job] train: {train_s:.0f} s; {shlex.join(eval_cmd)}", flush=True)
    eval_s = run(eval_cmd, work / "eval.log", env)
    agg = json.loads((eval_dir / "eval_info.json").read_text())["aggregated"]
    print(f"[main_job] eval: {agg['pc_success']:.0f} % in {eval_s:.0f} s", flush=True)
    speed = eval_speed(policy_dir, a.speed_episodes, batch_size=10) if a.speed_episodes > 0 else None

    prov = [json.loads(line) for line in (train_dir / "provenance.jsonl").read_text().splitlines() if line.strip()]
    dataset_root = Path(prov[-1]["dataset"]["root"])
    curves = json.loads((train_dir / "eval_info.json").read_text()) if (train_dir / "eval_info.json").is_file() else None
    report = {
        "benchmark": "main job: python train.py (fresh data dir), then python eval.py on its export",
        **provenance.finish_header(header),
        "train": {"command": shlex.join(["python", *train_cmd[1:]]), "wall_s": train_s,
                  "config": prov[-1]["config"], "dataset": {**prov[-1]["dataset"],
                                                            "fingerprint": provenance.dataset_fingerprint(dataset_root)},
                  "final_rollout_eval": None if curves is None else {
                      "global_step": curves.get("global_step"), **{k: curves["aggregated"][k] for k in
                                                                  ("n_episodes", "pc_success", "pc_success_ci95")}}},
        "eval": {"command": shlex.join(["python", *eval_cmd[1:]]), "wall_s": eval_s,
                 **{k: agg[k] for k in ("n_episodes", "n_success", "pc_success", "pc_success_ci95",
                                        "avg_episode_length")}},
        "eval_speed": speed,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({"train_wall_s": train_s, "eval": report["eval"],
                      "speedups": {k: v["speedup"] for k, v in (speed or {}).items()}}, indent=2))
    print(f"[main_job] wrote {a.out}")


if __name__ == "__main__":
    main()
