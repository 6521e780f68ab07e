"""Training step and ``select_action`` latency of ACT and Diffusion Policy, robolearn vs lerobot, at equal config on CPU.

Both sides build the same policy from the same features (the default dataset's: one 96x96 camera
``observation.images.workspace``, a 6-d ``observation.state``, a 4-d ``action``) and the same hyper-parameters
(random-init ResNet-18 on both sides: ``pretrained_backbone_weights=None``), with random statistics and untrained
weights; batch and observation are random tensors held in memory (no data loading).

Cases (``--cases``):

- ``act``: ACT at its defaults (lerobot's ``ACTConfig``: chunk 100, 51.6 M parameters), AdamW of the ACT preset.
- ``diffusion``: Diffusion Policy in the paper's config (robolearn's defaults: ``n_obs_steps=2, horizon=16,
  n_action_steps=8``, GroupNorm, 84x84 random crop, one shared encoder), Adam + cosine schedule of the preset.
- ``diffusion_h64``: lerobot 0.6.1's current Diffusion defaults (``horizon=64, n_action_steps=32``, BatchNorm, no
  crop, one encoder per camera) given to both sides.

Metrics, each the median (p50) in ms:

- ``train_step``: one full optimizer step at ``--batch-size``, as each train loop runs it. robolearn: a
  ``lightning.Trainer`` (CPU, ``32-true``, ``gradient_clip_val=10``, no logger/checkpoint/progress bar) fitting the
  ``PolicyModule`` on the batch; a step is the time from one ``on_train_batch_start`` to the next (normalization in
  ``forward``, ``training_step``, backward, clipping, optimizer and scheduler steps and Lightning's loop), the time
  spent in lerobot rounds excluded. lerobot: ``lerobot_train.update_policy``'s sequence (preprocessor, ``forward``,
  backward, ``clip_grad_norm_(10)``, optimizer step, ``zero_grad``, scheduler step, ``loss.item()``), run by
  ``benchmarks/lerobot_train_step_probe.py`` in the lerobot venv.
- ``select_action_chunk``: batch-1 ``select_action`` with an empty queue (the model runs: ACT one forward, Diffusion
  all denoising steps); ``select_action_hit``: a call served from the queue. robolearn's ``select_action`` takes raw
  observations and returns raw actions, so lerobot's is timed with its pre- and post-processor pipelines around it
  (what its eval loop runs per step); ``lerobot_bare_ms`` is lerobot's ``select_action`` alone.
- ``select_action_chunk_bf16``: the chunk call in reduced precision on both sides, measured last. robolearn: the
  policy after ``quantize_policy(policy, "bf16")`` (``policy.quantize=bf16``: linear and convolution weights cast to
  bfloat16 once); lerobot: its ``policy.use_amp`` path, the same call inside ``torch.autocast("cpu",
  dtype=torch.bfloat16)`` (what ``lerobot-eval`` does with ``use_amp``; it casts the float32 weights at every
  call). ``lerobot_fp32_ms`` is lerobot's float32 chunk call (the ``select_action_chunk`` row) and
  ``ratio_vs_lerobot_fp32`` robolearn's bf16 time over it; ``bf16_action_error`` is the mean absolute difference
  between robolearn's bf16 and float32 actions of the first ``n_action_steps`` calls after a reset (same
  observation, same noise), over the standard deviation of the float32 ones (random weights: a check that the
  bf16 layers compute the same function, not a task-accuracy claim).

The two sides alternate (``--rounds`` rounds of each metric, robolearn first), both with ``torch.set_num_threads(t)``
for each ``t`` of ``--threads``; ratio = robolearn / lerobot (below 1: robolearn faster). Note the two venvs may have
different torch versions (both are recorded).

    python benchmarks/train_step_vs_lerobot.py [--lerobot-python /work/lerobot_venv/bin/python] [--threads 1 2]
        [--cases act diffusion diffusion_h64] [--metrics train_step ...] [--train-steps 8] [--warmup 2] [--rounds 2] [--allow-dirty]

The lerobot venv needs ``lerobot[diffusion]`` (``diffusers``) for the Diffusion cases. Expected wall time with the
defaults on an idle 2-core CPU: about 10-15 min (Diffusion's 100-step chunks dominate).

Memory: Diffusion holds about 4.5 GB per side while training (263 M parameters, gradients, Adam state), and both
sides are alive at once; the optimizer state is freed before the inference metrics.

Writes ``benchmarks/results/train_step_vs_lerobot.json`` (``--out``) with the provenance of
:func:`robolearn.utils.provenance.results_header`. Without the lerobot Python (``--lerobot-python ''`` or a missing
file) only the robolearn side is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import importlib.util

import torch

from robolearn.policies.act import ACTPolicy
from robolearn.policies.diffusion import DiffusionPolicy
from robolearn.policies.quantize import quantize_policy
from robolearn.utils import provenance

HERE = Path(__file__).resolve().parent


def _load_inference_benchmark():
    """benchmarks/inference.py (its ``features``, ``random_stats`` and ``observation``), under a private name."""
    spec = importlib.util.spec_from_file_location("_bench_inference_features", HERE / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_inference = _load_inference_benchmark()

DEFAULT_LEROBOT_PYTHON = "/work/lerobot_venv/bin/python"
PROBE = HERE / "lerobot_train_step_probe.py"

CASES: dict[str, dict[str, Any]] = {
    "act": {"policy": "act", "config": {"pretrained_backbone_weights": None}},
    "diffusion": {"policy": "diffusion", "config": {
        "n_obs_steps": 2, "horizon": 16, "n_action_steps": 8, "pretrained_backbone_weights": None,
        "use_group_norm": True, "crop_shape": [84, 84], "crop_is_random": True,
        "use_separate_rgb_encoder_per_camera": False}},
    "diffusion_h64": {"policy": "diffusion", "config": {
        "n_obs_steps": 2, "horizon": 64, "n_action_steps": 32, "pretrained_backbone_weights": None,
        "use_group_norm": False, "crop_shape": None, "use_separate_rgb_encoder_per_camera": True}},
}
METRICS = ("train_step", "select_action_chunk", "select_action_hit", "select_action_chunk_bf16")


# ---------------------------------------------------------------------------------------------------- robolearn side
def build_robolearn(case: str, overrides: dict[str, Any] | None = None) -> Any:
    """The robolearn policy of ``case`` (a key of :data:`CASES`) on the default dataset's features, random stats.

    ``overrides`` are extra constructor arguments (tests use them to shrink the model).

    Raises:
        KeyError: unknown ``case``.
    """
    spec = CASES[case]
    feats = _inference.features()
    cls = ACTPolicy if spec["policy"] == "act" else DiffusionPolicy
    kwargs = {**spec["config"], **(overrides or {})}
    return cls(feats, _inference.random_stats(feats), **kwargs)


def training_batch(policy: Any, batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Raw random training batch for ``policy``: cameras ``(B, [T,] 3, 96, 96)`` in [0, 1], state ``(B, [T,] 6)``,
    ``action`` ``(B, K, 4)`` and ``action_is_pad`` ``(B, K)`` (all False); ``T = n_obs_steps`` for Diffusion only,
    ``K`` = ``chunk_size`` (ACT) or ``horizon`` (Diffusion)."""
    g = torch.Generator().manual_seed(seed)
    t = (policy.n_obs_steps,) if isinstance(policy, DiffusionPolicy) else ()
    k = policy.horizon if isinstance(policy, DiffusionPolicy) else policy.chunk_size
    out: dict[str, torch.Tensor] = {}
    for key, f in policy.features.items():
        if key == "action":
            out[key] = torch.randn(batch_size, k, *f.shape, generator=g)
            out["action_is_pad"] = torch.zeros(batch_size, k, dtype=torch.bool)
        elif f.type.value == "VISUAL":
            out[key] = torch.rand(batch_size, *t, *f.shape, generator=g)
        else:
            out[key] = torch.randn(batch_size, *t, *f.shape, generator=g)
    return out


class _Repeat(torch.utils.data.Dataset):
    """``n`` items, each the same (already batched) ``batch``."""

    def __init__(self, batch: dict[str, torch.Tensor], n: int):
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batch


class _StepTimer:
    """Lightning callback: wall time from one ``on_train_batch_start`` to the next (the last step ends at
    ``on_train_end``), minus the time spent in ``between(step)``, called after each step's ``on_train_batch_end``."""

    def __init__(self, between: Callable[[int], None]):
        self.between, self.ms, self._start, self._excluded = between, [], None, 0.0

    def _close(self) -> None:
        if self._start is not None:
            self.ms.append((time.perf_counter() - self._start - self._excluded) * 1e3)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._close()
        self._start, self._excluded = time.perf_counter(), 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        t0 = time.perf_counter()
        self.between(batch_idx)
        self._excluded += time.perf_counter() - t0

    def on_train_end(self, trainer, pl_module) -> None:
        self._close()


def robolearn_train(policy: Any, batch: dict[str, torch.Tensor], steps: int,
                    between: Callable[[int], None] = lambda i: None) -> list[float]:
    """Fit ``policy`` for ``steps`` optimizer steps on ``batch`` with a CPU ``lightning.Trainer`` (train.py's trainer
    settings that matter for speed: ``32-true``, ``gradient_clip_val=10``); returns each step's ms (see
    :class:`_StepTimer`). ``between(batch_idx)`` runs after each step, untimed."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    timer = type("StepTimer", (_StepTimer, Callback), {})(between)
    trainer = L.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=steps, max_epochs=-1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=10.0, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[timer])
    loader = torch.utils.data.DataLoader(_Repeat(batch, steps), batch_size=None)  # in-process, same batch each step
    trainer.fit(policy, train_dataloaders=loader)
    for optimizer in trainer.optimizers:  # free the optimizer state (2 GB for Diffusion) before inference
        optimizer.state.clear()
    policy.zero_grad(set_to_none=True)
    policy.trainer = None
    return timer.ms


def robolearn_select(policy: Any, op: str, n: int, state: dict[str, int], seed: int = 0) -> list[float]:
    """``n`` timed batch-1 ``select_action`` calls (ms): ``op="chunk"`` resets first (queue empty); ``op="hit"``
    pops from the queue, refilled (untimed) when it runs out. ``state`` carries the queue length between calls."""
    policy.eval()
    obs = _inference.observation(torch.device("cpu"), seed)
    out = []
    for _ in range(n):
        if op == "chunk":
            policy.reset()
        elif state.get("remaining", 0) == 0:
            policy.reset()
            policy.select_action(obs)
            state["remaining"] = policy.n_action_steps - 1
        start = time.perf_counter()
        policy.select_action(obs)
        out.append((time.perf_counter() - start) * 1e3)
        state["remaining"] = policy.n_action_steps - 1 if op == "chunk" else state["remaining"] - 1
    return out


# ---------------------------------------------------------------------------------------------------- lerobot side
class LerobotProbe:
    """``benchmarks/lerobot_train_step_probe.py`` as a subprocess of ``python`` (the lerobot venv's); ``run(op, n)``
    sends one command and returns its answer. Use as a context manager.

    Raises:
        RuntimeError: the probe exited or answered something that is not JSON (its stderr tail is in the message).
    """

    def __init__(self, python: str, spec: dict[str, Any]):
        self.proc = subprocess.Popen([python, str(PROBE), json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                status = self.proc.wait()
                err = self.proc.stderr.read()[-3000:]
                raise RuntimeError(f"lerobot probe exited (status {status}): {err}")
            if line.startswith("{"):
                return json.loads(line)

    def run(self, op: str, n: int) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps({"op": op, "n": n}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def __enter__(self) -> "LerobotProbe":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


# ---------------------------------------------------------------------------------------------------- one case
def first_actions(policy: Any, seed: int = 0) -> torch.Tensor:
    """The first ``n_action_steps`` actions ``(n, action_dim)`` after a reset on the benchmark's observation, the
    global RNG seeded with ``seed`` first (Diffusion's noise)."""
    policy.eval().reset()
    obs = _inference.observation(torch.device("cpu"), 0)
    torch.manual_seed(seed)
    return torch.cat([policy.select_action(obs) for _ in range(policy.n_action_steps)])


def _p50(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def measure_case(case: str, threads: int, args: argparse.Namespace, lerobot_python: str | None,
                 overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows ``{case, threads, metric, robolearn_ms, lerobot_ms, ratio, ...}`` for one case at ``threads`` threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    policy = build_robolearn(case, overrides)
    batch = training_batch(policy, args.batch_size)
    feats = {k: {"type": f.type.value, "shape": list(f.shape)} for k, f in policy.features.items()}
    spec = {"policy": CASES[case]["policy"], "config": {**CASES[case]["config"], **(overrides or {})},
            "features": feats, "batch_size": args.batch_size, "threads": threads, "seed": 0}
    rl: dict[str, list[float]] = {m: [] for m in METRICS}
    lr: dict[str, list[float]] = {m: [] for m in METRICS}
    lr_bare: dict[str, list[float]] = {m: [] for m in METRICS}
    per_round = max(1, args.train_steps // args.rounds)
    is_diffusion = CASES[case]["policy"] == "diffusion"
    chunk_calls = args.diffusion_chunk_calls if is_diffusion else args.chunk_calls
    probe = LerobotProbe(lerobot_python, spec) if lerobot_python else None
    try:
        def lerobot_round(op: str, n: int, metric: str) -> None:
            if probe is None:
                return
            answer = probe.run(op, n)
            lr[metric].extend(answer["ms"])
            lr_bare[metric].extend(answer.get("ms_bare", []))

        metrics = getattr(args, "metrics", METRICS)
        if "train_step" in metrics:
            if probe is not None:
                probe.run("train", args.warmup)  # warm-up, discarded

            def between(batch_idx: int) -> None:  # after robolearn step batch_idx: a lerobot round every per_round
                done = batch_idx + 1 - args.warmup
                if done > 0 and done % per_round == 0:
                    lerobot_round("train", per_round, "train_step")

            steps_ms = robolearn_train(policy, batch, args.warmup + per_round * args.rounds, between)
            rl["train_step"] = steps_ms[args.warmup:]

        queue: dict[str, int] = {}
        if {"select_action_chunk", "select_action_hit"} & set(metrics):
            chunk_warmup = min(args.warmup, 1) if is_diffusion else args.warmup  # a Diffusion chunk takes seconds
            robolearn_select(policy, "chunk", chunk_warmup, queue)
            if probe is not None:
                probe.run("chunk", chunk_warmup)
        for op, metric, n in (("chunk", "select_action_chunk", chunk_calls),
                              ("hit", "select_action_hit", args.hit_calls)):
            if metric not in metrics:
                continue
            n_round = max(1, n // args.rounds)
            for _ in range(args.rounds):
                rl[metric].extend(robolearn_select(policy, op, n_round, queue))
                lerobot_round(op, n_round, metric)
        if "select_action_chunk_bf16" in metrics:
            reference = first_actions(policy)
            quantize_policy(policy, "bf16")
            bf16_error = ((first_actions(policy) - reference).abs().mean() / reference.std()).item()
            robolearn_select(policy, "chunk", 1, queue)  # warm-up (oneDNN's bf16 kernels)
            if probe is not None:
                probe.run("chunk_amp", 1)
            n_round = max(1, chunk_calls // args.rounds)
            for _ in range(args.rounds):
                rl["select_action_chunk_bf16"].extend(robolearn_select(policy, "chunk", n_round, queue))
                lerobot_round("chunk_amp", n_round, "select_action_chunk_bf16")
    finally:
        if probe is not None:
            probe.__exit__(None, None, None)

    rows = []
    for metric in getattr(args, "metrics", METRICS):
        a, b = _p50(rl[metric]), _p50(lr[metric])
        rows.append({"case": case, "threads": threads, "metric": metric, "robolearn_ms": a, "lerobot_ms": b,
                     "ratio": round(a / b, 3) if a is not None and b else None,
                     "lerobot_bare_ms": _p50(lr_bare[metric]) if metric != "train_step" else None,
                     "n": [len(rl[metric]), len(lr[metric])]})
    fp32 = _p50(lr["select_action_chunk"])
    for row in rows:
        if row["metric"] == "select_action_chunk_bf16":
            row.update({"lerobot_fp32_ms": fp32, "bf16_action_error": round(bf16_error, 5),
                        "ratio_vs_lerobot_fp32": round(row["robolearn_ms"] / fp32, 3)
                        if row["robolearn_ms"] is not None and fp32 else None})
    info = {"params_M_robolearn": round(sum(p.numel() for p in policy.parameters()) / 1e6, 2),
            "params_M_lerobot": probe.info["params_M"] if probe is not None else None,
            "lerobot_torch": probe.info["torch"] if probe is not None else None}
    for row in rows:
        row.update(info)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lerobot-python", default=DEFAULT_LEROBOT_PYTHON,
                    help="Python of a venv with lerobot (0.6.1 measured); '' or a missing file: robolearn side only")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--metrics", nargs="+", default=list(METRICS), choices=list(METRICS))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=8, help="timed training steps per side (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps and chunk calls per side")
    ap.add_argument("--rounds", type=int, default=2, help="alternations robolearn/lerobot per metric")
    ap.add_argument("--chunk-calls", type=int, default=20, help="ACT select_action chunk calls timed per side")
    ap.add_argument("--diffusion-chunk-calls", type=int, default=4, help="Diffusion chunk calls timed per side")
    ap.add_argument("--hit-calls", type=int, default=40, help="queue-hit select_action calls timed per side")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "train_step_vs_lerobot.json")
    ap.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = ap.parse_args(argv)
    try:
        header = provenance.results_header(HERE.parent, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/train_step_vs_lerobot.py: {e}")
    lerobot_python = args.lerobot_python if args.lerobot_python and Path(args.lerobot_python).exists() else None
    if lerobot_python is None:
        print("no lerobot Python: measuring the robolearn side only", flush=True)
    rows = []
    for case in args.cases:
        for threads in args.threads:
            for row in measure_case(case, threads, args, lerobot_python):
                print(json.dumps(row), flush=True)
                rows.append(row)
    out = {
        "benchmark": "train_step_vs_lerobot",
        **provenance.finish_header(header),
        "features": {k: f.to_dict() for k, f in _inference.features().items()},
        "cases": CASES,
        "batch_size": args.batch_size,
        "train_steps": args.train_steps, "warmup": args.warmup, "rounds": args.rounds,
        "robolearn_torch": torch.__version__,
        "lerobot_python": lerobot_python,
        "notes": "p50 in ms; ratio = robolearn / lerobot (< 1: robolearn faster). Untrained weights, random stats, "
                 "in-memory batch (no data loading). select_action at batch 1; lerobot's timed with its pre/post "
                 "processors (lerobot_bare_ms without). Sides alternate within each metric; the load average shows "
                 "how busy the machine was.",
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
