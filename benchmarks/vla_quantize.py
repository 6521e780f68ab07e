"""Int8 quantization of SmolVLA and π0 on CPU (:mod:`robolearn.policies.quantize`, torchao): latency per new action
chunk, memory and action error against float32, for each mode (``none``, ``int8_weight_only``, ``int8_dynamic``).

    python benchmarks/vla_quantize.py [--models smolvla pi0] [--observations 10] [--threads 2] [--allow-dirty]
    python benchmarks/vla_quantize.py --quick --out /tmp/vla_quantize.json     # tiny models, seconds: a smoke run

- Models (random weights: no Hub weights are reachable offline, and none are needed to time the architecture):
  SmolVLA at its real size (SmolVLM2-500M architecture, first 16 decoder layers, expert 0.75x wide: what
  ``benchmarks/vla.py`` times), one 480x640 camera resized with padding to 512x512, 6-d state and action, 50-step
  chunks, 10 Euler steps. π0 at the real widths (SigLIP So400m/14 at 224 px, Gemma-2B language model with its
  257,152-token embedding, Gemma-300M action expert) but only ``--pi0-layers`` decoder layers (the language model
  and the expert have the same depth) and ``--pi0-vision-layers`` SigLIP layers: the full π0 (18 and 27) holds 3.5 B
  parameters, 14 GB in float32: with the three modes side by side it does not fit this machine's 24 GB, and a
  chunk would take tens of seconds (about 1.7 TFLOP). Cost per layer is the same at any depth, so the per-layer
  effect of quantization carries over; the 2 GB token embedding (float in every mode) weighs more in the cut model
  than in the full one (``model_mib`` splits quantized and float bytes).
  ``--quick``: the tiny test models instead (a random 2-layer SmolVLM, π0's ``dummy`` sizes).
- One worker process per mode (``--worker``), all three alive, each building the same float model from the same
  seed (checked with a checksum of the weights), then quantizing it, then answering requests one at a time: the
  modes are interleaved observation by observation (the order rotates each time) so that a busy CPU disturbs them
  alike. Each worker runs one warm-up chunk first (observation 0, also used to check that a repeated call gives the
  same actions), then one chunk per observation.
- Latency per new chunk: wall time of ``predict_action_chunk`` (normalization, tokenization, image encoding, the
  prefix pass and the Euler steps of the expert: what ``select_action`` costs when its queue is empty) over
  ``--observations`` seeded random observations (random images, states and instructions from a fixed list); p50,
  p90, mean, min.
- Memory per mode, from the worker's ``/proc/self/status``: RSS after building the float model, RSS once quantized
  (freed float weights returned to the OS with ``malloc_trim``), and peak RSS while predicting (``VmHWM`` reset
  after quantization); plus the bytes of the model's parameters and buffers (int8 data and scales for the quantized
  layers).
- Action error vs float32: the same observations and the same flow-matching noise (the global RNG seeded per
  observation right before each call) in every mode; ``normalized_l1`` = mean over observations, chunk steps and
  action dims of ``|a_q - a_fp32| / std_d`` with ``std_d`` the float32 actions' standard deviation of dim ``d`` over
  all observations and steps; also the largest absolute difference, and whether every action is finite. With random
  weights this measures how far quantization moves the network's output, not a task's success.

Writes ``benchmarks/results/vla_quantize.json`` (``--out``) with the provenance of
:func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree unless ``--allow-dirty``;
command, hardware, versions, wall time, load average at start and end).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
CODE = HERE.parent
OUT = HERE / "results" / "vla_quantize.json"
MODES = ("none", "int8_weight_only", "int8_dynamic")
TASKS = ("pick the red cube and place it on the box", "push the block to the target", "open the box",
         "move the green cube left", "grasp the blue block and close")
CAMERA = "observation.images.cam0"
FULL_IMAGE = (480, 640)


# ------------------------------------------------------------------------------------------------ models


def _register_pi0_variant(layers: int, vision_layers: int) -> tuple[str, str]:
    """Add π0 variants with the real widths and ``layers`` / ``vision_layers`` depth to the size tables of
    :mod:`robolearn.policies.pi0.configs` (in this process only); returns the PaliGemma and expert variant names."""
    from robolearn.policies.pi0 import configs

    lm, expert = f"bench_gemma_2b_{layers}l", f"bench_gemma_300m_{layers}l"
    configs.GEMMA_VARIANTS[lm] = {**configs.GEMMA_VARIANTS["gemma_2b"], "num_hidden_layers": layers}
    configs.GEMMA_VARIANTS[expert] = {**configs.GEMMA_VARIANTS["gemma_300m"], "num_hidden_layers": layers}
    configs.PALIGEMMA_VISION[lm] = {**configs.PALIGEMMA_VISION["gemma_2b"], "num_hidden_layers": vision_layers}
    configs.PALIGEMMA_VOCAB[lm] = configs.PALIGEMMA_VOCAB["gemma_2b"]
    return lm, expert


def build_policy(model: str, quick: bool, pi0_layers: int, pi0_vision_layers: int, workdir: Path):
    """The float policy (random weights, seeded by the caller) and a description of its size."""
    import torch

    from robolearn.features import FeatureType, PolicyFeature
    from robolearn.policies.smolvla.tiny import write_tiny_smolvlm, write_word_tokenizer

    identity = {"VISUAL": "IDENTITY", "STATE": "IDENTITY", "ACTION": "IDENTITY"}
    image = (24, 32) if quick else FULL_IMAGE
    features = {CAMERA: PolicyFeature(FeatureType.VISUAL, (3, *image)),
                "observation.state": PolicyFeature(FeatureType.STATE, (6,)),
                "action": PolicyFeature(FeatureType.ACTION, (6,))}
    if model == "smolvla":
        from robolearn.policies.smolvla.module import SmolVLAPolicy

        if quick:
            seed = torch.initial_seed()
            vlm = write_tiny_smolvlm(workdir / "tiny_smolvlm", image_size=32)
            torch.manual_seed(seed)
            policy = SmolVLAPolicy(features, None, normalization_mapping=identity, vlm_model_name=str(vlm),
                                   load_vlm_weights=True, chunk_size=4, n_action_steps=4, max_state_dim=6,
                                   max_action_dim=6, resize_imgs_with_padding=(32, 32), num_vlm_layers=2, num_steps=2)
            return policy, {"architecture": "tiny random SmolVLM (tests' size)"}
        from robolearn.policies.smolvla.info import build_full_size

        policy = build_full_size()
        policy.tokenizer_name = str(write_word_tokenizer(workdir / "tok", vocab_size=49280))
        return policy, {"architecture": "SmolVLM2-500M (16 of 32 decoder layers kept), expert 0.75x",
                        "resize_imgs_with_padding": list(policy.resize_hw)}
    if model == "pi0":
        from robolearn.policies.pi0.configs import PALIGEMMA_VOCAB
        from robolearn.policies.pi0.module import Pi0Policy

        if quick:
            lm, expert, size = "dummy", "dummy", {"architecture": "pi0 'dummy' sizes (tests' size)"}
            kwargs = dict(image_resolution=(28, 28), chunk_size=4, n_action_steps=4, max_state_dim=6,
                          max_action_dim=6, num_inference_steps=3)
        else:
            lm, expert = _register_pi0_variant(pi0_layers, pi0_vision_layers)
            size = {"architecture": f"pi0 widths (SigLIP So400m/14, Gemma-2B, Gemma-300M expert), {pi0_layers} of 18 "
                                    f"decoder layers, {pi0_vision_layers} of 27 SigLIP layers",
                    "pi0_layers": pi0_layers, "pi0_vision_layers": pi0_vision_layers, "image_resolution": [224, 224]}
            kwargs = {}
        tok = write_word_tokenizer(workdir / "tok", vocab_size=PALIGEMMA_VOCAB[lm])
        policy = Pi0Policy(features, None, normalization_mapping=identity, paligemma_variant=lm,
                           action_expert_variant=expert, tokenizer_name=str(tok), **kwargs)
        return policy, size
    raise ValueError(f"unknown model {model!r}; expected smolvla or pi0")


def observation(i: int, quick: bool) -> dict:
    """Observation ``i`` of the fixed set (batch of one): a random camera image in [0, 1], a random state, a task."""
    import torch

    g = torch.Generator().manual_seed(10_000 + i)
    image = (24, 32) if quick else FULL_IMAGE
    return {CAMERA: torch.rand(1, 3, *image, generator=g), "observation.state": torch.randn(1, 6, generator=g),
            "task": [TASKS[i % len(TASKS)]]}


# ------------------------------------------------------------------------------------------------ worker


def _proc_status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    raise KeyError(field)


def _release_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def worker(args: argparse.Namespace) -> None:
    """Build, quantize, then answer JSON-line requests on stdin (``run <i>``, ``stats``, ``quit``) on the original
    stdout; anything libraries print goes to stderr."""
    import torch

    from robolearn.policies.quantize import model_bytes, quantize_policy

    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix=f"vla_quantize_{args.worker_model}_"))
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    policy, size = build_policy(args.worker_model, args.quick, args.pi0_layers, args.pi0_vision_layers, workdir)
    policy.eval()
    build_s = time.perf_counter() - t0
    with torch.no_grad():
        checksum = float(sum(p.double().abs().sum() for p in policy.parameters()))
    params = sum(p.numel() for p in policy.parameters())
    _release_memory()
    rss_float = _proc_status_mib("VmRSS")
    t0 = time.perf_counter()
    quantize_policy(policy, args.worker_mode)
    quantize_s = time.perf_counter() - t0
    _release_memory()
    rss_loaded = _proc_status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM: the peak from here on is the inference's
        fh.write("5")
    send({"type": "ready", "mode": args.worker_mode, "size": size, "params": params, "weights_checksum": checksum,
          "chunk_size": policy.chunk_size, "build_s": round(build_s, 2), "quantize_s": round(quantize_s, 3),
          "quantization": getattr(policy, "quantization", None), "model_bytes": model_bytes(policy),
          "rss_float_mib": rss_float, "rss_loaded_mib": rss_loaded})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "run":
            obs = observation(msg["obs"], args.quick)
            torch.manual_seed(args.seed + 1 + msg["obs"])  # the flow-matching noise of this observation
            t0 = time.perf_counter()
            chunk = policy.predict_action_chunk(obs)
            latency = time.perf_counter() - t0
            send({"type": "actions", "latency_s": latency, "actions": chunk[0].tolist(),
                  "finite": bool(torch.isfinite(chunk).all())})
        elif msg["cmd"] == "stats":
            send({"type": "stats", "peak_rss_mib": _proc_status_mib("VmHWM"), "rss_mib": _proc_status_mib("VmRSS")})
        elif msg["cmd"] == "quit":
            break


class Worker:
    """A ``--worker`` subprocess for one model and mode."""

    def __init__(self, model: str, mode: str, args: argparse.Namespace):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker-model", model, "--worker-mode", mode,
               "--threads", str(args.threads), "--seed", str(args.seed), "--pi0-layers", str(args.pi0_layers),
               "--pi0-vision-layers", str(args.pi0_vision_layers)] + (["--quick"] if args.quick else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CODE), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)}
        self.mode = mode
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     stderr=None if args.verbose else subprocess.DEVNULL)
        self.ready = self._read("ready")

    def _read(self, kind: str) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.mode} exited with {self.proc.wait()} (rerun with --verbose to see why)")
        msg = json.loads(line)
        if msg.get("type") != kind:
            raise RuntimeError(f"worker {self.mode}: expected {kind!r}, got {msg}")
        return msg

    def request(self, cmd: dict, kind: str) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read(kind)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
            except BrokenPipeError:  # it died meanwhile
                pass
            self.proc.wait(timeout=120)


# ------------------------------------------------------------------------------------------------ orchestration


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def measure_model(model: str, args: argparse.Namespace) -> dict:
    """Start a worker per mode, interleave their chunks, and summarize latency, memory and error per mode."""
    import torch

    workers: dict[str, Worker] = {}
    try:
        for mode in MODES:  # one at a time: the builds do not overlap
            workers[mode] = Worker(model, mode, args)
            print(f"{model} {mode}: built in {workers[mode].ready['build_s']} s, quantized in "
                  f"{workers[mode].ready['quantize_s']} s, RSS {workers[mode].ready['rss_loaded_mib']} MiB", flush=True)
        checksums = {m: w.ready["weights_checksum"] for m, w in workers.items()}
        if len(set(checksums.values())) != 1:
            raise RuntimeError(f"{model}: the workers built different float weights: {checksums}")
        warmup = {m: w.request({"cmd": "run", "obs": 0}, "actions") for m, w in workers.items()}
        runs: dict[str, list[dict]] = {m: [] for m in MODES}
        for i in range(args.observations):
            order = MODES[i % len(MODES):] + MODES[: i % len(MODES)]
            for mode in order:
                runs[mode].append(workers[mode].request({"cmd": "run", "obs": i}, "actions"))
            print(f"{model} observation {i}: " + ", ".join(f"{m} {runs[m][-1]['latency_s']:.2f} s" for m in MODES),
                  flush=True)
        stats = {m: w.request({"cmd": "stats"}, "stats") for m, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()

    reference = torch.tensor([r["actions"] for r in runs["none"]], dtype=torch.float64)  # (N, T, A)
    std = reference.flatten(0, 1).std(dim=0).clamp_min(1e-12)  # (A,)
    ready = workers["none"].ready
    out = {"size": ready["size"], "params": ready["params"], "chunk_size": ready["chunk_size"],
           "build_s": ready["build_s"], "fp32_action_std": [round(float(s), 6) for s in std], "modes": {}}
    p50_none = statistics.median(r["latency_s"] for r in runs["none"])
    for mode in MODES:
        lat = [r["latency_s"] for r in runs[mode]]
        actions = torch.tensor([r["actions"] for r in runs[mode]], dtype=torch.float64)
        diff = (actions - reference).abs()
        w = workers[mode].ready
        out["modes"][mode] = {
            "quantization": w["quantization"], "quantize_s": w["quantize_s"],
            "latency_new_chunk_s": {"p50": round(statistics.median(lat), 4), "p90": round(_percentile(lat, 0.9), 4),
                                    "mean": round(statistics.mean(lat), 4), "min": round(min(lat), 4),
                                    "all": [round(x, 4) for x in lat]},
            "speedup_p50_vs_none": round(p50_none / statistics.median(lat), 3),
            "memory": {"model_mib": {k: round(v / 2**20, 1) for k, v in w["model_bytes"].items()},
                       "rss_float_mib": w["rss_float_mib"], "rss_loaded_mib": w["rss_loaded_mib"],
                       "peak_rss_inference_mib": stats[mode]["peak_rss_mib"]},
            "action_error_vs_fp32": {"normalized_l1": round(float((diff / std).mean()), 6),
                                     "max_abs": round(float(diff.max()), 6)},
            "all_finite": all(r["finite"] for r in runs[mode]) and warmup[mode]["finite"],
            "repeat_call_identical": warmup[mode]["actions"] == runs[mode][0]["actions"],
        }
    return out


def main() -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smolvla", "pi0"], choices=["smolvla", "pi0"])
    parser.add_argument("--observations", type=int, default=10, help="timed chunks per mode (one per observation)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each worker")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (noise: seed + 1 + obs)")
    parser.add_argument("--pi0-layers", type=int, default=4, help="π0 decoder layers kept (18: the full model)")
    parser.add_argument("--pi0-vision-layers", type=int, default=6, help="π0 SigLIP layers kept (27: the full model)")
    parser.add_argument("--quick", action="store_true", help="tiny test-size models: a smoke run of the script")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    parser.add_argument("--verbose", action="store_true", help="show the workers' stderr")
    parser.add_argument("--worker-model", help=argparse.SUPPRESS)
    parser.add_argument("--worker-mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_model:
        worker(args)
        return None

    from robolearn.utils import provenance

    try:
        header = provenance.results_header(CODE, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/vla_quantize.py: {e}")
    results = {"device": "cpu", "threads": args.threads, "observations": args.observations, "seed": args.seed,
               "quick": args.quick, "weights": "random (no Hub weights offline); random camera images",
               "library": "torchao", "models": {}}
    for model in args.models:
        results["models"][model] = measure_model(model, args)
        for mode, r in results["models"][model]["modes"].items():
            print(f"{model:8s} {mode:17s} p50 {r['latency_new_chunk_s']['p50']:.3f} s  "
                  f"x{r['speedup_p50_vs_none']:.2f}  model {r['memory']['model_mib']['total']:.0f} MiB  "
                  f"peak RSS {r['memory']['peak_rss_inference_mib']:.0f} MiB  "
                  f"L1/std {r['action_error_vs_fp32']['normalized_l1']:.2e}  finite {r['all_finite']}", flush=True)
    results = {"benchmark": "vla_quantize", **provenance.finish_header(header), **results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
