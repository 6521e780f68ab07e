"""Real-time chunking (RTC) vs the plain merged action queue in async inference, in simulation.

A tiny randomly initialised SmolVLA (a random SmolVLM written locally: no download) or π0 (``dummy`` PaliGemma) is
served by a :class:`~robolearn.inference.server.PolicyServer` on 127.0.0.1, in its own process (a fresh one per run,
same weight seed, the run's seed for the flow's noise; the client's control loop does not share its GIL), that sleeps ``--delay-steps / --fps``
seconds before each prediction (an injected inference delay, on top of the model's own time); a
:class:`~robolearn.inference.client.RobotClient` drives the simulated SO-101 (:class:`~robolearn.robots.sim
.SO101SimRobot`) at ``--fps`` in real time for ``--steps`` control ticks per run. The simulator renders no camera
(``camera=None``: MuJoCo's offscreen rendering costs 50-100 ms a frame on a CPU-only machine, more than a 30 Hz
tick); the policy's image input is a synthetic ``--image-size`` camera (``FakeCamera``). The arms differ only in
the client's settings (same weights, same statistics, same seeds):

- ``plain``: the merged queue (``aggregate_fn_name=--plain-merge``, default ``weighted_average``);
- ``latest_only`` (optional, ``--arms``): the plain queue with the new chunk replacing the tail;
- ``rtc``: ``rtc.enabled`` (measured delay, ``--execution-horizon``, ``--max-guidance-weight``, ``--schedule``).

Measured per run, from the actions the client executed (timestep ``t`` = ``t``-th executed action):

- chunk boundaries: for each chunk received while actions were queued, the switch timestep ``b``: the first
  executed action computed from the new observation (its request timestep + the actions executed while it was in
  flight, or, with RTC, + the frozen prefix when that is longer, since the frozen actions are copies of the
  previous plan). ``jump`` = ``||a_b - a_{b-1}||`` (L2, robot units), vs ``within`` = ``||a_t - a_{t-1}||`` at
  every other timestep; ``off_plan`` = ``||a_b - p_b||`` where ``p_b`` is what the queue held for ``b`` just
  before the chunk arrived (the previous plan): how far the switch departs from the plan being executed.
- end-to-end latency (ms, p50/p90): from reading the observation (``get_observation``) to executing the first
  action computed from it: the first action of its chunk executed, except that with RTC the frozen prefix (the
  first ``min(d, queued)`` actions, copies of the previous plan) does not count; also the time to the first
  executed action of the chunk whatever it is (``obs_to_first_chunk_action_ms``), and the client's round trip and
  server inference times.

Arms alternate order over ``--repeats`` runs. Writes ``benchmarks/results/rtc.json`` (``--out``) with the
provenance of :func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree unless
``--allow-dirty``; command, hardware, versions, wall time, load average at start and end).

    MUJOCO_GL=egl python benchmarks/rtc.py [--policy smolvla|pi0] [--steps 600] [--repeats 3] [--fps 30]
        [--delay-steps 3] [--chunk-size 50] [--threshold 0.5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from robolearn.features import FeatureType as FT  # noqa: E402
from robolearn.features import PolicyFeature  # noqa: E402
from robolearn.inference.action_queue import TimedActionQueue  # noqa: E402
from robolearn.inference.client import RobotClient, latency_summary  # noqa: E402
from robolearn.inference.server import PolicyServer  # noqa: E402
from robolearn.robots.features import hw_to_dataset_features  # noqa: E402
from robolearn.robots.sim import SO101SimRobot  # noqa: E402
from robolearn.utils import provenance  # noqa: E402

HERE = Path(__file__).resolve().parent
CODE = HERE.parent
CAMERA = "front"


class DelayedServer(PolicyServer):
    """A policy server that waits ``extra_delay_s`` before each prediction (the injected inference delay)."""

    def __init__(self, *args: Any, extra_delay_s: float = 0.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.extra_delay_s = float(extra_delay_s)

    def _predict(self, msg: dict) -> dict:
        time.sleep(self.extra_delay_s)
        return super()._predict(msg)


class RecordingQueue(TimedActionQueue):
    """Keeps, for every merged chunk, what the queue held just before (the plan the chunk replaces)."""

    def __init__(self, merge_fn):
        super().__init__(merge_fn)
        self.plans_before: list[dict[int, torch.Tensor]] = []

    def merge_chunk(self, timesteps, actions):
        ts, queued = self.snapshot()
        self.plans_before.append({} if queued is None else dict(zip(ts, queued)))
        return super().merge_chunk(timesteps, actions)


class TimedRobot(SO101SimRobot):
    """Records when each observation is read and each action executed (``time.perf_counter`` seconds)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.obs_times: list[float] = []
        self.action_times: list[float] = []
        self.actions: list[np.ndarray] = []

    def get_observation(self) -> dict[str, Any]:
        obs = super().get_observation()
        self.obs_times.append(time.perf_counter())
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        sent = super().send_action(action)
        self.action_times.append(time.perf_counter())
        self.actions.append(np.asarray([sent[k] for k in self.action_names], dtype=np.float64))
        return sent


def make_robot(args: argparse.Namespace, cls: type = SO101SimRobot) -> SO101SimRobot:
    """The simulated SO-101 without rendering, with a synthetic ``args.image_size`` camera ``front``."""
    size = int(args.image_size)
    return cls(fps=args.fps, camera=None, max_episode_steps=10 ** 9,
               cameras={CAMERA: {"type": "fake", "width": size, "height": size}})


def policy_features(robot: SO101SimRobot) -> dict[str, PolicyFeature]:
    """The policy features of the robot's observation (state + camera) and action."""
    out = {}
    for key, spec in hw_to_dataset_features(robot.observation_features, "observation").items():
        shape = spec["shape"]
        out[key] = (PolicyFeature(FT.VISUAL, (shape[2], shape[0], shape[1])) if key.startswith("observation.images")
                    else PolicyFeature(FT.STATE, tuple(shape)))
    out["action"] = PolicyFeature(FT.ACTION, (len(robot.action_names),))
    return out


def stats(feats: dict[str, PolicyFeature]) -> dict[str, dict[str, np.ndarray]]:
    """Statistics that map the random policy's normalized outputs to moderate SO-101 actions: deltas with std
    0.3 (of the ±1 range) around 0, the gripper around 0.5 with std 0.2."""
    state_dim = feats["observation.state"].shape[0]
    return {"observation.state": {"mean": np.zeros(state_dim, np.float32), "std": np.ones(state_dim, np.float32)},
            "action": {"mean": np.array([0, 0, 0, 0.5], np.float32), "std": np.array([0.3, 0.3, 0.3, 0.2],
                                                                                      np.float32)}}


def build_policy(name: str, feats: dict[str, PolicyFeature], chunk_size: int, num_steps: int, workdir: Path,
                 seed: int) -> Any:
    """A tiny random SmolVLA (SmolVLM written to ``workdir``) or π0 (``dummy`` variants), eval mode."""
    from robolearn.policies.smolvla.tiny import write_tiny_smolvlm, write_word_tokenizer

    state_dim = feats["observation.state"].shape[0]
    common = dict(chunk_size=chunk_size, n_action_steps=chunk_size, max_state_dim=max(state_dim, 6), max_action_dim=6)
    if name == "smolvla":
        from robolearn.policies.smolvla import SmolVLAPolicy

        vlm = write_tiny_smolvlm(workdir / "smolvlm", seed=seed, image_size=32)
        torch.manual_seed(seed)
        policy = SmolVLAPolicy(feats, stats(feats), vlm_model_name=str(vlm), load_vlm_weights=True,
                               resize_imgs_with_padding=(32, 32), num_vlm_layers=2, num_steps=num_steps, **common)
    elif name == "pi0":
        from robolearn.policies.pi0 import Pi0Policy

        tok = write_word_tokenizer(workdir / "tokenizer", vocab_size=257152)
        torch.manual_seed(seed)
        policy = Pi0Policy(feats, stats(feats), paligemma_variant="dummy", action_expert_variant="dummy",
                           image_resolution=(28, 28), num_inference_steps=num_steps, tokenizer_name=str(tok), **common)
    else:
        raise ValueError(f"unknown policy {name!r} (smolvla | pi0)")
    return policy.eval()


def switch_timestep(trip: Any) -> int:
    """First executed timestep of a chunk computed from its observation (after an RTC frozen prefix)."""
    frozen = min(trip.inference_delay or 0, trip.queue_size_at_request)
    return max(trip.timestep + trip.dropped, trip.timestep + frozen)


def boundary_metrics(actions: np.ndarray, trips: list[Any], plans_before: list[dict[int, torch.Tensor]]) -> dict:
    """Jumps at chunk switches vs step-to-step changes elsewhere, and the departure from the previous plan."""
    n = len(actions)
    switches = []
    for trip, plan in zip(trips, plans_before):
        b = switch_timestep(trip)
        if trip.queue_size_at_request > 0 and 1 <= b < n and plan:
            switches.append((b, plan.get(b)))
    boundary = {b for b, _ in switches}
    steps = np.linalg.norm(np.diff(actions, axis=0), axis=1) if n > 1 else np.zeros(0)
    jumps = [float(steps[b - 1]) for b, _ in switches]
    within = [float(steps[t - 1]) for t in range(1, n) if t not in boundary]
    off_plan = [float(np.linalg.norm(actions[b] - p.numpy())) for b, p in switches if p is not None]

    def stat(xs: list[float]) -> dict[str, float | int]:
        return ({"n": len(xs), "mean": float(np.mean(xs)), "p90": float(np.percentile(xs, 90)),
                 "max": float(np.max(xs))} if xs else {"n": 0})

    return {"jump": stat(jumps), "within": stat(within), "off_plan": stat(off_plan),
            "jump_over_within_mean": (float(np.mean(jumps) / np.mean(within)) if jumps and within and np.mean(within)
                                      else None),
            "_lists": (jumps, within, off_plan)}


def serve_child(args: argparse.Namespace) -> None:
    """Child process: build the policy (weights from ``--seed``), seed the flow's noise with ``--run-seed``, serve it
    with the injected delay and write the port to ``--serve``; runs until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    torch.set_num_threads(args.threads)
    feats = policy_features(make_robot(args, SO101SimRobot))
    with tempfile.TemporaryDirectory(prefix="rtc_bench_") as tmp:
        policy = build_policy(args.policy, feats, args.chunk_size, args.num_steps, Path(tmp), args.seed)
        torch.manual_seed(args.run_seed)
        with DelayedServer(policy, host="127.0.0.1", port=0, extra_delay_s=args.delay_steps / args.fps) as server:
            Path(args.serve).write_text(str(server.port))
            server.wait()


class ServerProcess:
    """Start :func:`serve_child` in a subprocess for one run; ``address`` once it listens."""

    def __init__(self, seed: int, timeout_s: float = 300.0):
        self.port_file = Path(tempfile.mkdtemp(prefix="rtc_port_")) / "port"
        cmd = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--serve", str(self.port_file),
               "--run-seed", str(seed)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the policy server process did not start (exit code {self.proc.returncode})")
            time.sleep(0.1)
        self.address = f"127.0.0.1:{int(self.port_file.read_text())}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.port_file.unlink(missing_ok=True)
        self.port_file.parent.rmdir()


def run_arm(arm: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One run of ``args.steps`` ticks with the client settings of ``arm`` against a fresh server process."""
    robot = make_robot(args, TimedRobot)
    rtc = None
    merge = args.plain_merge
    if arm == "rtc":
        rtc = {"enabled": True, "execution_horizon": args.execution_horizon,
               "max_guidance_weight": args.max_guidance_weight, "schedule": args.schedule, "inference_delay": None}
    elif arm == "latest_only":
        merge = "latest_only"
    server = ServerProcess(seed)
    try:
        with robot:
            robot.reset(seed=seed)
            client = RobotClient(robot, server.address, fps=args.fps, chunk_size_threshold=args.threshold,
                                 aggregate_fn_name=merge, task="pick the cube and place it on the green goal",
                                 rtc=rtc, timeout_s=120.0)
            client.queue = RecordingQueue(client.queue.merge_fn)
            with client:
                summary = client.run(max_steps=args.steps)
                client.wait_idle(60.0)
            trips = list(client.round_trips)
    finally:
        server.close()
    actions = np.stack(robot.actions) if robot.actions else np.zeros((0, 4))
    latency, first_action = [], []
    for i, trip in enumerate(trips):
        b, fresh = trip.timestep + trip.dropped, switch_timestep(trip)
        if i < len(robot.obs_times) and b < len(robot.action_times):
            first_action.append(robot.action_times[b] - robot.obs_times[i])
        if i < len(robot.obs_times) and fresh < len(robot.action_times):
            latency.append(robot.action_times[fresh] - robot.obs_times[i])
    boundaries = boundary_metrics(actions, trips, client.queue.plans_before)
    jumps, within, off = boundaries.pop("_lists")
    return {"arm": arm, "aggregate_fn_name": None if arm == "rtc" else merge, "rtc": rtc, **summary,
            "inference_delay_sent": [t.inference_delay for t in trips if t.inference_delay is not None],
            "actions_executed_while_in_flight": [t.dropped for t in trips],
            "boundaries": boundaries, "_jumps": jumps, "_within": within, "_off": off,
            "obs_to_action": latency_summary(latency) | ({"p90_ms": float(np.percentile(np.asarray(latency) * 1e3, 90))}
                                                         if latency else {}),
            "_latency_s": latency, "_first_action_s": first_action, "_actions": actions}


def percentiles(ms: np.ndarray) -> dict[str, float | int]:
    """``{"n", "p50", "p90"}`` of durations in ms."""
    if not ms.size:
        return {"n": 0}
    return {"n": int(ms.size), "p50": round(float(np.percentile(ms, 50)), 2),
            "p90": round(float(np.percentile(ms, 90)), 2)}


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Boundary and latency statistics of one arm over all its runs."""
    actions = [r["_actions"] for r in runs]
    jumps, within, off = [], [], []
    for r in runs:
        jumps += r["_jumps"]
        within += r["_within"]
        off += r["_off"]
    lat = np.asarray([x for r in runs for x in r["_latency_s"]]) * 1e3
    first = np.asarray([x for r in runs for x in r["_first_action_s"]]) * 1e3

    def stat(xs):
        return ({"n": len(xs), "mean": round(float(np.mean(xs)), 5), "p90": round(float(np.percentile(xs, 90)), 5),
                 "max": round(float(np.max(xs)), 5)} if len(xs) else {"n": 0})

    return {"runs": len(runs), "executed": int(sum(len(a) for a in actions)),
            "starved": int(sum(r["starved"] for r in runs)), "jump_l2": stat(jumps),
            "within_chunk_step_l2": stat(within), "off_plan_at_switch_l2": stat(off),
            "jump_over_within_mean": round(float(np.mean(jumps) / np.mean(within)), 4) if jumps and within else None,
            "obs_to_action_ms": percentiles(lat), "obs_to_first_chunk_action_ms": percentiles(first),
            "round_trip_ms_p50": [r["round_trip"].get("p50_ms") for r in runs],
            "inference_ms_p50": [r["inference"].get("p50_ms") for r in runs]}


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default="smolvla", choices=["smolvla", "pi0"])
    p.add_argument("--arms", nargs="+", default=["plain", "rtc"], choices=["plain", "latest_only", "rtc"])
    p.add_argument("--steps", type=int, default=600, help="control ticks per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--delay-steps", type=float, default=3.0, help="injected server delay, in control steps")
    p.add_argument("--chunk-size", type=int, default=50)
    p.add_argument("--num-steps", type=int, default=10, help="Euler steps of the flow")
    p.add_argument("--threshold", type=float, default=0.5, help="chunk_size_threshold of the client")
    p.add_argument("--plain-merge", default="weighted_average")
    p.add_argument("--execution-horizon", type=int, default=None,
                   help="RTC execution horizon (steps); default: the whole queued remainder")
    p.add_argument("--max-guidance-weight", type=float, default=5.0)
    p.add_argument("--schedule", default="exp")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "rtc.json")
    p.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    p.add_argument("--serve", help=argparse.SUPPRESS)  # child mode: write the server's port to this file
    p.add_argument("--run-seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        return serve_child(args)
    try:
        header = provenance.results_header(CODE, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/rtc.py: {e}")
    torch.set_num_threads(args.threads)
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in args.arms}
    for rep in range(args.repeats):
        order = args.arms if rep % 2 == 0 else list(reversed(args.arms))
        for arm in order:
            r = run_arm(arm, args, seed=args.seed + rep)
            runs[arm].append(r)
            bm, nan = r["boundaries"], float("nan")
            print(f"[{rep}] {arm:11s} executed {r['executed']} starved {r['starved']} chunks {r['chunks']}  "
                  f"jump {bm['jump'].get('mean', nan):.4f} (n={bm['jump']['n']}) within "
                  f"{bm['within'].get('mean', nan):.4f} off-plan {bm['off_plan'].get('mean', nan):.4f}  "
                  f"obs->action p50 {r['obs_to_action'].get('p50_ms', nan):.1f} ms  inference p50 "
                  f"{r['inference'].get('p50_ms', nan):.1f} ms  delay sent {sorted(set(r['inference_delay_sent']))}",
                  flush=True)
    summary = {arm: pooled(arm_runs) for arm, arm_runs in runs.items()}
    record = {
        "benchmark": "rtc",
        "policy": {"name": args.policy, "weights": "random (tiny)", "chunk_size": args.chunk_size,
                   "flow_steps": args.num_steps, "seed": args.seed},
        "robot": {"name": "so101_sim", "sim_camera": None, "policy_camera": f"{CAMERA} (FakeCamera)",
                  "image_size": args.image_size, "fps": args.fps},
        "client": {"chunk_size_threshold": args.threshold, "plain_merge": args.plain_merge,
                   "rtc": {"execution_horizon": args.execution_horizon or "the whole queued remainder",
                           "max_guidance_weight": args.max_guidance_weight,
                           "schedule": args.schedule, "inference_delay": "measured"}},
        "injected_delay_steps": args.delay_steps, "steps_per_run": args.steps, "repeats": args.repeats,
        "torch_threads": args.threads,
        "definitions": {
            "jump_l2": "L2 norm (robot units) of a_b - a_{b-1} at each switch b to a chunk received while actions "
                       "were queued",
            "within_chunk_step_l2": "L2 norm of a_t - a_{t-1} at every other executed timestep",
            "off_plan_at_switch_l2": "L2 norm of a_b - p_b, p_b the action queued for b just before the chunk arrived",
            "obs_to_action_ms": "from reading an observation to executing the first action computed from it (with "
                                "RTC: after the frozen prefix, which copies the previous plan)",
            "obs_to_first_chunk_action_ms": "from reading an observation to executing the first action of the chunk "
                                            "returned for it",
        },
        **provenance.finish_header(header),
        "summary": summary,
        "runs": {arm: [{k: v for k, v in r.items() if not k.startswith("_")} for r in arm_runs]
                 for arm, arm_runs in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for arm, s in summary.items():
        print(f"{arm:11s} jump {s['jump_l2']} within {s['within_chunk_step_l2']} off-plan {s['off_plan_at_switch_l2']} "
              f"jump/within {s['jump_over_within_mean']} obs->action ms {s['obs_to_action_ms']} starved {s['starved']}")
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
