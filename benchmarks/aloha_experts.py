"""Success rate and speed of the gym-aloha scripted experts (robolearn.envs.aloha_scripted).

Each expert runs ``--seeds`` episodes (seeds 0..N-1) of at most ``--max-steps`` steps (gym-aloha registers
300), stopping at the first success (reward 4, which ``AlohaEnv.step`` reports as ``terminated``).
Rollouts use :func:`robolearn.envs.aloha.headless_step`, which runs the env's own dm_control task and physics
without rendering the three 640x480 cameras that ``AlohaEnv.step`` renders on every step; the first
``--rendered-seeds`` seeds are also run through the ordinary ``env.reset``/``env.step`` (with rendering) to
check that both paths give the same outcome and to time the rendered path.

    python benchmarks/aloha_experts.py [--seeds 200] [--rendered-seeds 2] [--max-steps 300]

Writes ``benchmarks/results/aloha_experts.json`` with the provenance of
:func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree unless ``--allow-dirty``;
command, hardware, versions, wall time, load average at start and end).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gym_aloha  # noqa: E402,F401  (registers the gym ids)
import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from robolearn.envs.aloha import headless_reset, headless_step  # noqa: E402
from robolearn.envs.aloha_scripted import InsertionExpert, TransferCubeExpert  # noqa: E402
from robolearn.utils import provenance  # noqa: E402

HERE = Path(__file__).resolve().parent
TASKS = {
    "transfer_cube": ("gym_aloha/AlohaTransferCube-v0", TransferCubeExpert),
    "insertion": ("gym_aloha/AlohaInsertion-v0", InsertionExpert),
}


def run_headless(env, expert, seed: int, max_steps: int) -> dict:
    headless_reset(env, seed)
    t0 = time.perf_counter()
    expert.reset()
    t1 = time.perf_counter()
    rewards = []
    for _ in range(max_steps):
        rewards.append(headless_step(env, expert.act(None)))
        if rewards[-1] == 4:
            break
    t2 = time.perf_counter()
    return {"seed": seed, "success": rewards[-1] == 4, "max_reward": max(rewards), "steps": len(rewards),
            "plan_s": t1 - t0, "rollout_s": t2 - t1}


def run_rendered(env, expert, seed: int) -> dict:
    obs, _ = env.reset(seed=seed)
    expert.reset()
    t0 = time.perf_counter()
    rewards, done = [], False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(expert.act(obs))
        rewards.append(float(reward))
        done = terminated or truncated
    return {"seed": seed, "success": rewards[-1] == 4, "max_reward": max(rewards), "steps": len(rewards),
            "rollout_s": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--rendered-seeds", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--out", type=Path, default=HERE / "results" / "aloha_experts.json")
    p.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = p.parse_args()
    try:
        header = provenance.results_header(HERE.parent, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/aloha_experts.py: {e}")

    results = {}
    for name, (env_id, expert_cls) in TASKS.items():
        env = gym.make(env_id, max_episode_steps=args.max_steps)
        expert = expert_cls(env)
        episodes = [run_headless(env, expert, seed, args.max_steps) for seed in range(args.seeds)]
        rendered = [run_rendered(env, expert, seed) for seed in range(args.rendered_seeds)]
        steps = sum(e["steps"] for e in episodes)
        results[name] = {
            "env_id": env_id,
            "episodes": len(episodes),
            "success_rate": float(np.mean([e["success"] for e in episodes])),
            "mean_max_reward": float(np.mean([e["max_reward"] for e in episodes])),
            "mean_steps_to_success": float(np.mean([e["steps"] for e in episodes if e["success"]] or [np.nan])),
            "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
            "headless_steps_per_s": steps / sum(e["rollout_s"] for e in episodes),
            "plan_s_mean": float(np.mean([e["plan_s"] for e in episodes])),
            "rendered_check": {
                "seeds": [e["seed"] for e in rendered],
                "same_outcome_as_headless": all(
                    (r["success"], r["max_reward"]) == (h["success"], h["max_reward"])
                    for r, h in zip(rendered, episodes)
                ),
                "success": [e["success"] for e in rendered],
                "steps": [e["steps"] for e in rendered],
                "rendered_steps_per_s": (sum(e["steps"] for e in rendered) / sum(e["rollout_s"] for e in rendered))
                if rendered else None,
            },
        }
        print(name, json.dumps(results[name]), flush=True)
        env.close()

    record = {
        "benchmark": "aloha_experts",
        "max_steps": args.max_steps,
        **provenance.finish_header(header),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
