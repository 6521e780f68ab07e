"""Inference latency of ACT and Diffusion Policy at their default sizes, and of async inference on loopback.

Features are those of the default dataset (``so101_pick_place_sim``): one 96x96 camera
(``observation.images.workspace``), a 6-d ``observation.state`` and a 4-d ``action``; statistics are random and
weights untrained (latency does not depend on them).

- ``select_action`` (ms, p50/p95) for each policy: a *chunk* call (queue empty, so the model runs: ACT predicts
  ``chunk_size=100`` actions, Diffusion denoises 100 DDPM steps) and a *queue hit* (an action popped from the
  queue filled by the previous chunk call).
- Async round trip: a :class:`PolicyServer` with default ACT on 127.0.0.1 and a :class:`RobotClient` driving an
  in-process robot with the same features; per ``Predict`` call the round-trip time, the server's inference
  time, and their difference (transport + (de)serialization + observation conversion).

    python benchmarks/inference.py [--device cpu] [--threads 1] [--chunk-calls 20] [--diffusion-chunk-calls 5]

Writes ``benchmarks/results/inference.json`` (``inference_<device>.json`` for a device other than cpu) with the
provenance of :func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree unless
``--allow-dirty``; command, hardware, versions, wall time, load average at start and end).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.inference.client import RobotClient, latency_summary
from robolearn.inference.server import PolicyServer
from robolearn.policies.act import ACTPolicy
from robolearn.policies.diffusion import DiffusionPolicy
from robolearn.robots.random_robot import RandomRobot
from robolearn.utils import provenance

HERE = Path(__file__).resolve().parent
CAMERA = "workspace"
IMG = (3, 96, 96)
STATE_NAMES = [f"joint{i}.pos" for i in range(6)]
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]


def features() -> dict[str, PolicyFeature]:
    return {
        f"observation.images.{CAMERA}": PolicyFeature(FT.VISUAL, IMG),
        "observation.state": PolicyFeature(FT.STATE, (len(STATE_NAMES),)),
        "action": PolicyFeature(FT.ACTION, (len(ACTION_NAMES),)),
    }


def random_stats(feats: dict[str, PolicyFeature], seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for key, f in feats.items():
        shape = (f.shape[0], 1, 1) if f.type is FT.VISUAL else f.shape
        lo = rng.uniform(-1.0, 0.0, shape).astype(np.float32)
        out[key] = {"mean": rng.uniform(-0.5, 0.5, shape).astype(np.float32),
                    "std": rng.uniform(0.5, 1.5, shape).astype(np.float32),
                    "min": lo, "max": lo + 1.0, "count": np.array([1000])}
    return out


def observation(device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"observation.images.{CAMERA}": torch.rand(1, *IMG, generator=g).to(device),
            "observation.state": torch.randn(1, len(STATE_NAMES), generator=g).to(device)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def bench_select_action(policy: Any, device: torch.device, chunk_calls: int, hit_calls: int, warmup: int) -> dict:
    """Chunk calls (``reset()`` first, so the queue is empty) and queue hits, in ms."""
    policy.to(device).eval()
    for i in range(warmup):
        policy.reset()
        policy.select_action(observation(device, i))
    chunk_s = []
    for i in range(chunk_calls):
        policy.reset()
        obs = observation(device, 100 + i)
        chunk_s.append(timed(lambda: policy.select_action(obs), device))
    policy.reset()
    policy.select_action(observation(device, 0))  # fill the queue
    n_hits = min(hit_calls, policy.n_action_steps - 1)
    hit_s = []
    for i in range(n_hits):
        obs = observation(device, 200 + i)
        hit_s.append(timed(lambda: policy.select_action(obs), device))
    return {"select_action_chunk": latency_summary(chunk_s), "select_action_queue_hit": latency_summary(hit_s),
            "n_action_steps": policy.n_action_steps}


def bench_round_trip(policy: Any, device: str, requests: int, warmup: int) -> dict:
    """Round trips of ``Predict`` on 127.0.0.1 (threshold 1: a request after every executed action)."""
    with PolicyServer(policy, host="127.0.0.1", port=0, device=device) as server:
        robot = RandomRobot(STATE_NAMES, ACTION_NAMES, {CAMERA: IMG[1:]}, id="bench")  # the default dataset's features
        with RobotClient(robot, server.address, chunk_size_threshold=1.0, timeout_s=120) as client:
            steps = 0
            while len(client.round_trips) < warmup + requests:
                client.step()
                client.wait_idle(120)
                steps += 1
            trips = client.round_trips[warmup:]
    return {
        "policy": type(policy).__name__,
        "requests": len(trips),
        "round_trip": latency_summary([t.round_trip_s for t in trips]),
        "server_inference": latency_summary([t.inference_s for t in trips]),
        "overhead": latency_summary([t.round_trip_s - t.inference_s for t in trips]),
        "observation_bytes_approx": IMG[1] * IMG[2] * 3 + 4 * len(STATE_NAMES),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--chunk-calls", type=int, default=20, help="ACT chunk calls timed")
    ap.add_argument("--diffusion-chunk-calls", type=int, default=5, help="Diffusion chunk calls timed")
    ap.add_argument("--hit-calls", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20, help="async round trips timed")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1 by default: on a busy shared 2-core machine, 2 threads made ACT's "
                         "chunk call ~15x slower through OpenMP contention)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = ap.parse_args()
    try:
        header = provenance.results_header(HERE.parent, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/inference.py: {e}")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    feats = features()
    stats = random_stats(feats)

    results: dict[str, Any] = {}
    act = ACTPolicy(feats, stats)
    results["act"] = {"params_M": round(sum(p.numel() for p in act.parameters()) / 1e6, 2),
                      "chunk_size": act.chunk_size,
                      **bench_select_action(act, device, args.chunk_calls, args.hit_calls, args.warmup)}
    print("act", json.dumps(results["act"]), flush=True)
    diffusion = DiffusionPolicy(feats, stats)
    results["diffusion"] = {"params_M": round(sum(p.numel() for p in diffusion.parameters()) / 1e6, 2),
                            "horizon": diffusion.horizon, "num_inference_steps": diffusion.diffusion.num_inference_steps,
                            **bench_select_action(diffusion, device, args.diffusion_chunk_calls, args.hit_calls,
                                                  min(args.warmup, 1))}
    print("diffusion", json.dumps(results["diffusion"]), flush=True)
    del diffusion
    results["async_round_trip_loopback"] = bench_round_trip(act, args.device, args.requests, args.warmup)
    print("round trip", json.dumps(results["async_round_trip_loopback"]), flush=True)

    out = {
        "benchmark": "inference",
        **provenance.finish_header(header),
        "features": {k: f.to_dict() for k, f in feats.items()},
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "notes": "untrained weights, random stats; batch 1; times from time.perf_counter (CUDA synchronized). "
                 "The load average shows how busy the shared machine was.",
        "results": results,
    }
    path = args.out or HERE / "results" / ("inference.json" if device.type == "cpu" else f"inference_{device.type}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
