"""One-shot device check on a CUDA GPU: train.py in bf16, full-size SmolVLA / π0 steps, FSDP, inference latency.

Each check runs in its own ``try``; a failure is recorded as ``{"error": ...}`` with the traceback's tail and the
next check still runs. The JSON is rewritten after every check, so a run killed at its time limit still leaves the
finished checks behind.

Checks (``--only NAME ...`` selects a subset; ``--all`` runs every one, without the ``--budget-s`` cutoff, so
that one run writes the whole results file):

- ``train_act``, ``train_diffusion``: the ``train.py`` path (Hydra compose + ``train.train``) with ``trainer=gpu
  trainer.precision=bf16-mixed`` on the real PushT demonstrations, state only (``--data``, default
  ``.devcarry/pusht``: a LeRobotDataset v3.0 folder; its videos may be absent). ACT uses ``conf/policy/act.yaml``
  defaults; Diffusion uses ``experiment=pusht_diffusion_state`` (Chi et al.'s state U-Net, EMA). Reported: steps/s
  (from the ``perf/step_time_s`` the StepTimer callback logs, data wait excluded, and end to end over the whole
  ``fit``), peak GPU memory (``torch.cuda.max_memory_allocated``), whether every logged loss is finite.
- ``inference``: ``select_action`` latency (ms, p50/p95) of ACT and Diffusion Policy at their default sizes, using
  :func:`benchmarks.inference.bench_select_action` (batch 1, one 96x96 camera, fp32).
- ``smolvla``: full-size SmolVLA (SmolVLM2-500M architecture, random weights, no download): AdamW training steps
  under bf16 autocast, default freezing and with LoRA (r=16); peak memory, step time; ``select_action`` latency.
- ``smolvla_fsdp``: a ``lightning.Trainer`` built from ``conf/trainer/fsdp_vla.yaml`` (``trainer.devices=1``) fits
  SmolVLA for 2 steps on random batches (the config's activation checkpointing of the decoder layers is on).
- ``pi0``: full-size π0 (PaliGemma 3B + Gemma 300M expert, random weights): bf16 weights with gradient
  checkpointing (and its ``select_action`` latency), full fine-tuning under bf16 autocast, LoRA r=16 under bf16
  autocast; peak memory and step time of each.

``--dry-run`` runs every check on the CPU with tiny model sizes and few steps (for testing the script without a
GPU); its numbers mean nothing. Without ``--dry-run`` the script exits with an error when CUDA is unavailable.

    python benchmarks/gpu_check.py --all [--out DIR] [--data .devcarry/pusht] [--dry-run] [--allow-dirty]
    python benchmarks/gpu_check.py --only train_act pi0 ...

Writes ``benchmarks/results/gpu_check.json`` (``gpu_check_dryrun.json`` with ``--dry-run``) and a copy in ``--out``,
with the provenance of :func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree unless
``--allow-dirty`` or ``--dry-run``; command, hardware, versions, wall time, load average at start and end), the
GPU's properties under ``device`` and the versions of the packages the checks use.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: never reach for the Hub

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from robolearn.utils.presets import preset_kwargs  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CHECKS = ("train_act", "train_diffusion", "inference", "smolvla", "smolvla_fsdp", "pi0")
TASK = "pick the red cube and place it on the box"
GIB = 1024 ** 3

# --dry-run (CPU) uses the policies' smoke sizes (conf/debug_presets/policy/smoke/): the same code paths, seconds each.
SMOKE_POLICY_DIR = REPO / "conf" / "debug_presets" / "policy" / "smoke"
TINY_SMOLVLA = dict(chunk_size=4, n_action_steps=2, max_state_dim=8, max_action_dim=8,
                    resize_imgs_with_padding=(32, 32), num_vlm_layers=2, num_steps=2)
TINY_PI0 = dict(paligemma_variant="dummy", action_expert_variant="dummy", image_resolution=(28, 28), chunk_size=4,
                n_action_steps=2, max_state_dim=16, max_action_dim=16, num_inference_steps=2)


# ---------------------------------------------------------------------------------------------------- helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    """Free cached blocks and restart the peak-memory counter (no-op on CPU)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak allocated GPU memory since the last :func:`reset_memory`, in GiB (None on CPU)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / GIB, 3)


def summary_ms(values_s: list[float]) -> dict[str, float | int]:
    """``{n, p50_ms, p95_ms, mean_ms}`` of durations in seconds."""
    if not values_s:
        return {"n": 0}
    ms = np.asarray(values_s) * 1e3
    return {"n": int(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3), "mean_ms": round(float(ms.mean()), 3)}


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on ``device`` (what Lightning's ``precision=bf16-mixed`` does around forward)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()


def versions() -> dict[str, Any]:
    """Versions of the packages the checks depend on (None when one is not importable)."""
    from importlib import metadata

    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda}
    for name in ("lightning", "transformers", "peft", "diffusers", "timm", "hydra-core", "omegaconf",
                 "huggingface_hub", "numpy", "pyarrow", "gymnasium", "gym-pusht", "pymunk"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: torch.device) -> dict[str, Any]:
    """The device the checks ran on and, on CUDA, its name, compute capability, memory, multiprocessors and the
    float32 matmul precision in effect (CPU model, cores and memory are in the results' ``hardware``)."""
    info: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    gpu_memory_gib=round(props.total_memory / GIB, 1), multiprocessors=props.multi_processor_count,
                    float32_matmul_precision=torch.get_float32_matmul_precision())
    return info


def build_on(device: torch.device, make: Callable[[], torch.nn.Module]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build a module with its tensors created directly on ``device`` (random init of billions of parameters is
    much faster on a GPU); falls back to building on the CPU and moving it when that fails (the reason is kept)."""
    t0 = time.perf_counter()
    info: dict[str, Any] = {"built_on": str(device)}
    try:
        with torch.device(device):
            module = make()
    except Exception as e:  # noqa: BLE001 - recorded, then the slow path
        info.update(built_on="cpu", build_on_device_error=f"{type(e).__name__}: {e}"[:500])
        gc.collect()
        module = make()
    module.to(device)
    sync(device)
    info["build_s"] = round(time.perf_counter() - t0, 2)
    info["params_total"] = sum(p.numel() for p in module.parameters())
    info["params_trainable"] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return module, info


def vla_batch(features: dict, batch_size: int, chunk: int, device: torch.device, seed: int = 0) -> dict[str, Any]:
    """A random VLA training batch: cameras ``(B, 3, H, W)`` in [0, 1], ``observation.state`` ``(B, D)``,
    ``action`` ``(B, chunk, A)``, ``action_is_pad`` ``(B, chunk)`` (all False) and ``task`` (list of str)."""
    from robolearn.features import FeatureType

    g = torch.Generator().manual_seed(seed)
    batch: dict[str, Any] = {}
    for key, f in features.items():
        if f.type is FeatureType.VISUAL:
            batch[key] = torch.rand(batch_size, *f.shape, generator=g)
        elif f.type is FeatureType.STATE:
            batch[key] = torch.randn(batch_size, *f.shape, generator=g)
        elif f.type is FeatureType.ACTION:
            batch[key] = torch.randn(batch_size, chunk, *f.shape, generator=g)
    batch["action_is_pad"] = torch.zeros(batch_size, chunk, dtype=torch.bool)
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["task"] = [TASK] * batch_size
    return batch


def train_steps(policy: torch.nn.Module, batch: dict[str, Any], device: torch.device, steps: int,
                use_autocast: bool) -> dict[str, Any]:
    """One warm-up and ``steps`` timed AdamW steps (forward under bf16 autocast, backward, optimizer step) on the
    trainable parameters. Returns step times (s), losses and the peak GPU memory (GiB, weights included)."""
    policy.train()
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses, warmup_s = [], [], 0.0
    for i in range(steps + 1):
        sync(device)
        t0 = time.perf_counter()
        with autocast(device, use_autocast):
            loss, _ = policy(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i:
            times.append(time.perf_counter() - t0)
        else:
            warmup_s = time.perf_counter() - t0
        losses.append(float(loss.detach()))
    out = {"warmup_step_s": round(warmup_s, 4), "step_s": [round(t, 4) for t in times],
           "step_mean_s": round(sum(times) / len(times), 4) if times else None,
           "losses": [round(v, 5) for v in losses], "loss_finite": all(math.isfinite(v) for v in losses),
           "peak_memory_gib": peak_gib(device)}
    del opt
    return out


def select_action_latency(policy: Any, obs: dict[str, Any], device: torch.device, calls: int,
                          use_autocast: bool) -> dict[str, Any]:
    """``select_action`` latency: new chunks (``reset()`` first: the model runs) and queue hits, in ms."""
    policy.eval()
    chunk, hits = [], []
    with torch.inference_mode(), autocast(device, use_autocast):
        for i in range(calls + 1):
            policy.reset()
            sync(device)
            t0 = time.perf_counter()
            policy.select_action(obs)
            sync(device)
            if i:
                chunk.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            policy.select_action(obs)
            sync(device)
            hits.append(time.perf_counter() - t0)
    return {"select_action_new_chunk": summary_ms(chunk), "select_action_queue_hit": summary_ms(hits)}


# ---------------------------------------------------------------------------------------------------- train.py
def compose_train(overrides: list[str]):
    """Compose ``conf/train.yaml`` with ``overrides`` and register it as the current Hydra config (what
    ``@hydra.main`` does, so ``${hydra:...}`` interpolations resolve)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from robolearn.utils.schema import register_schemas

    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """Rows of the CSV logger's ``metrics.csv`` under ``run_dir``.

    Raises:
        FileNotFoundError: no ``csv/version_*/metrics.csv`` was written.
    """
    files = sorted(run_dir.glob("csv/version_*/metrics.csv"))
    if not files:
        raise FileNotFoundError(f"no csv/version_*/metrics.csv under {run_dir}")
    with open(files[-1]) as f:
        return list(csv.DictReader(f))


def column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def check_train(policy: str, args: argparse.Namespace, device: torch.device, work: Path) -> dict[str, Any]:
    """``train.py`` with ``trainer=gpu trainer.precision=bf16-mixed`` on PushT (state only) for ``--train-steps``."""
    import train as train_script

    data = Path(args.data).resolve()
    if not (data / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"--data {data}: no meta/info.json (expected the converted PushT LeRobotDataset; "
                                f"see benchmarks/gpu_check.md)")
    steps = args.train_steps
    run_dir = work / f"train_{policy}"
    overrides = ["policy=act"] if policy == "act" else ["experiment=pusht_diffusion_state"]
    overrides += [
        # dataset.generator=null: the folder exists, and the converter's module imports PyAV (not carried)
        "dataset=pusht", f"dataset.root={data}", "dataset.generator=null",
        "dataset.exclude_features=[observation.image]",
        # the reader would otherwise decode the excluded camera's video for every item
        "dataset.dataset_kwargs={download_videos:false}",
        f"dataset.num_workers={args.num_workers}", f"dataset.batch_size={args.batch_size[policy]}",
        "trainer=gpu", "trainer.precision=bf16-mixed", f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}", "trainer.limit_val_batches=2", "trainer.log_every_n_steps=1",
        "logger=csv", "~callbacks.progress_bar", "ckpt_path=null",
        f"paths.root_dir={work}", f"paths.output_dir={run_dir}",
    ]
    if args.dry_run:
        overrides += ["trainer.accelerator=cpu", "dataset.episodes=[0,1,2,3,4,5,6,7]",
                      *(f"policy.{k}={v}" for k, v in preset_kwargs(SMOKE_POLICY_DIR / f"{policy}.yaml").items())]
    cfg = compose_train(overrides)
    reset_memory(device)
    t0 = time.perf_counter()
    trainer, module, _ = train_script.train(cfg)
    sync(device)
    fit_s = time.perf_counter() - t0
    rows = read_metrics(run_dir)
    step_times = column(rows, "perf/step_time_s")
    data_times = column(rows, "perf/data_time_s")
    losses = column(rows, "train/loss_step")
    steady = step_times[min(5, len(step_times) // 2):]  # leave out warm-up (cuDNN autotune, allocator growth)
    return {
        "overrides": overrides,
        "global_step": int(trainer.global_step),
        "batch_size": args.batch_size[policy],
        "params_total": sum(p.numel() for p in module.parameters()),
        "precision": str(trainer.precision),
        "fit_s_incl_setup_val_ckpt": round(fit_s, 2),
        "steps_per_s_end_to_end": round(trainer.global_step / fit_s, 3),
        "steps_per_s_compute": round(1.0 / float(np.median(steady)), 3) if steady else None,
        "step_time_ms": summary_ms(steady),
        "data_time_ms": summary_ms(data_times[1:]),
        "peak_memory_gib": peak_gib(device),
        "loss_first_last": [round(losses[0], 5), round(losses[-1], 5)] if losses else None,
        "loss_finite": bool(losses) and all(math.isfinite(v) for v in losses),
        "n_losses_logged": len(losses),
    }


# ---------------------------------------------------------------------------------------------------- inference
def check_inference(args: argparse.Namespace, device: torch.device, work: Path) -> dict[str, Any]:
    """ACT and Diffusion ``select_action`` latency via ``benchmarks/inference.py`` (default sizes; tiny on CPU)."""
    from benchmarks.inference import bench_select_action, features, random_stats
    from robolearn.policies.act import ACTPolicy
    from robolearn.policies.diffusion import DiffusionPolicy

    feats = features()
    stats = random_stats(feats)
    act_kw = preset_kwargs(SMOKE_POLICY_DIR / "act.yaml") if args.dry_run else {}
    diff_kw = preset_kwargs(SMOKE_POLICY_DIR / "diffusion.yaml") if args.dry_run else {}
    calls = 3 if args.dry_run else 50
    out: dict[str, Any] = {}
    torch.manual_seed(0)
    act = ACTPolicy(feats, stats, **act_kw)
    reset_memory(device)
    out["act"] = {"params_M": round(sum(p.numel() for p in act.parameters()) / 1e6, 2), "chunk_size": act.chunk_size,
                  **bench_select_action(act, device, calls, calls, warmup=3), "peak_memory_gib": peak_gib(device)}
    del act
    diffusion = DiffusionPolicy(feats, stats, **diff_kw)
    reset_memory(device)
    out["diffusion"] = {"params_M": round(sum(p.numel() for p in diffusion.parameters()) / 1e6, 2),
                        "num_inference_steps": diffusion.diffusion.num_inference_steps,
                        **bench_select_action(diffusion, device, 2 if args.dry_run else 20, calls, warmup=1),
                        "peak_memory_gib": peak_gib(device)}
    out["notes"] = "batch 1, fp32, untrained weights; ms from time.perf_counter with CUDA synchronized"
    return out


# ---------------------------------------------------------------------------------------------------- VLAs
def word_tokenizer(work: Path, name: str, vocab_size: int) -> str:
    from robolearn.policies.smolvla.tiny import write_word_tokenizer

    return str(write_word_tokenizer(work / f"tokenizer_{name}", vocab_size=vocab_size))


def make_smolvla(args: argparse.Namespace, work: Path, **kwargs: Any):
    """Full-size SmolVLA (random weights, offline config), or a tiny one written to ``work`` with ``--dry-run``."""
    from robolearn.policies.smolvla.info import build_full_size

    if not args.dry_run:
        policy = build_full_size(**kwargs)
        policy.tokenizer_name = word_tokenizer(work, "smolvla", 49280)
        return policy
    from robolearn.policies.smolvla.info import full_size_features
    from robolearn.policies.smolvla.module import SmolVLAPolicy
    from robolearn.policies.smolvla.tiny import write_tiny_smolvlm

    folder = work / "smolvlm_tiny"
    if not (folder / "config.json").is_file():
        write_tiny_smolvlm(folder, image_size=32)
    feats = full_size_features()
    feats = {k: (type(f)(f.type, (3, 32, 32)) if len(f.shape) == 3 else f) for k, f in feats.items()}
    return SmolVLAPolicy(feats, None, normalization_mapping={"VISUAL": "IDENTITY", "STATE": "IDENTITY",
                                                             "ACTION": "IDENTITY"},
                         vlm_model_name=str(folder), load_vlm_weights=True, **{**TINY_SMOLVLA, **kwargs})


def check_smolvla(args: argparse.Namespace, device: torch.device, work: Path) -> dict[str, Any]:
    """Full-size SmolVLA: bf16-autocast training steps (default freezing, then LoRA r=16) and select_action."""
    from robolearn.policies.vla.lora import DEFAULT_PEFT

    out: dict[str, Any] = {"batch_size": args.vla_batch}
    variants = {"default_freezing": {}, "lora_r16": {"peft": {**DEFAULT_PEFT, "r": 16}}}
    for name, kw in variants.items():
        reset_memory(device)
        torch.manual_seed(0)
        policy, info = build_on(device, lambda: make_smolvla(args, work, **kw))
        batch = vla_batch(policy.features, args.vla_batch, policy.chunk_size, device)
        info.update(train_steps(policy, batch, device, args.vla_steps, use_autocast=True))
        if name == "default_freezing":
            obs = {k: v[:1] for k, v in batch.items() if k.startswith("observation.")}
            obs["task"] = [TASK]
            info.update(select_action_latency(policy, obs, device, args.vla_calls, use_autocast=True))
            info["chunk_size"], info["num_steps"] = policy.chunk_size, policy.model.num_steps
        out[name] = info
        del policy, batch
    return out


def step_clock(device: torch.device):
    """A Lightning callback recording the wall time of each training batch (CUDA synchronized, seconds in
    ``.times``) and its loss (``.losses``)."""
    import lightning as L

    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.losses: list[float] = []
            self._t0 = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            sync(device)
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            sync(device)
            self.times.append(time.perf_counter() - self._t0)
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.losses.append(float(loss.detach()))

    return StepClock()


def check_smolvla_fsdp(args: argparse.Namespace, device: torch.device, work: Path) -> dict[str, Any]:
    """``conf/trainer/fsdp_vla.yaml`` on 1 device: a Lightning Trainer fits SmolVLA for 2 steps on random batches."""
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader

    steps = 2
    overrides = ["policy=smolvla", "trainer=fsdp_vla", "trainer.devices=1", f"trainer.max_steps={steps}",
                 "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "trainer.enable_checkpointing=false",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none",
                 f"paths.root_dir={work}", f"paths.output_dir={work / 'fsdp'}"]
    cfg = compose_train(overrides)
    reset_memory(device)
    torch.manual_seed(0)
    policy, info = build_on(device, lambda: make_smolvla(args, work))
    items = vla_batch(policy.features, args.vla_batch * steps, policy.chunk_size, torch.device("cpu"))
    rows = [{k: v[i] for k, v in items.items()} for i in range(args.vla_batch * steps)]
    loader = DataLoader(rows, batch_size=args.vla_batch, shuffle=False)
    clock = step_clock(device)
    strategy = instantiate(cfg.trainer.strategy)  # resolves the auto-wrap classes against this transformers
    if args.dry_run:  # Lightning runs FSDP on CUDA only: fit the same config with the default strategy on the CPU
        trainer = instantiate(cfg.trainer, strategy="auto", accelerator="cpu", logger=False, callbacks=[clock])
    else:
        trainer = instantiate(cfg.trainer, strategy=strategy, logger=False, callbacks=[clock])
    t0 = time.perf_counter()
    trainer.fit(policy, train_dataloaders=loader)
    sync(device)
    from torch.distributed.fsdp import FullyShardedDataParallel

    wrapped = sum(isinstance(m, FullyShardedDataParallel) for m in trainer.strategy.model.modules()) \
        if trainer.strategy.model is not None else 0
    info.update({
        "overrides": overrides, "strategy": type(trainer.strategy).__name__,
        "auto_wrap_classes": sorted(c.__name__ for c in getattr(strategy.kwargs.get("auto_wrap_policy"),
                                                                "_module_classes", ())),
        "use_orig_params": strategy.kwargs.get("use_orig_params"), "precision": str(trainer.precision),
        "fsdp_units": wrapped, "global_step": int(trainer.global_step), "fit_s": round(time.perf_counter() - t0, 2),
        "step_s": [round(t, 4) for t in clock.times], "losses": [round(v, 5) for v in clock.losses],
        "loss_finite": bool(clock.losses) and all(math.isfinite(v) for v in clock.losses),
        "peak_memory_gib": peak_gib(device), "batch_size": args.vla_batch,
        "note": "activation checkpointing of the decoder layers comes from fsdp_vla.yaml "
                "(activation_checkpointing_policy); policy.gradient_checkpointing stays off so layers are not "
                "checkpointed twice. On 1 device FSDP shards nothing: this checks construction and the step path.",
    })
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return info


def pi0_features(image_hw: int, cameras: int = 3, dim: int = 14) -> dict:
    """ALOHA-like π0 inputs: ``cameras`` RGB cameras, 14-d state and action (lerobot's π0 recipes)."""
    from robolearn.features import FeatureType, PolicyFeature

    names = ("top", "left_wrist", "right_wrist")[:cameras]
    feats = {f"observation.images.{n}": PolicyFeature(FeatureType.VISUAL, (3, image_hw, image_hw)) for n in names}
    feats["observation.state"] = PolicyFeature(FeatureType.STATE, (dim,))
    feats["action"] = PolicyFeature(FeatureType.ACTION, (dim,))
    return feats


def check_pi0(args: argparse.Namespace, device: torch.device, work: Path) -> dict[str, Any]:
    """Full-size π0: bf16 weights with gradient checkpointing (``dtype=bfloat16``, no autocast, as lerobot trains
    it; select_action latency measured on it), then fp32 weights under bf16 autocast (what Lightning's
    ``precision=bf16-mixed`` does) with full fine-tuning and with LoRA r=16. Peak memory and step time each."""
    from robolearn.policies.pi0 import Pi0Policy

    size = TINY_PI0 if args.dry_run else {}
    vocab = 1024 if args.dry_run else 257152
    tok = word_tokenizer(work, "pi0", vocab)
    feats = pi0_features(28 if args.dry_run else 224)
    identity = {"VISUAL": "IDENTITY", "STATE": "IDENTITY", "ACTION": "IDENTITY"}
    lora = {"r": 16, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": None, "modules_to_save": None}
    variants = {  # name: (constructor overrides, bf16 autocast, measure select_action)
        "bf16_weights_grad_ckpt": ({"dtype": "bfloat16", "gradient_checkpointing": True}, False, True),
        "full_finetune_bf16_autocast": ({}, True, False),
        "lora_r16_bf16_autocast": ({"peft": lora}, True, False),
    }
    out: dict[str, Any] = {"batch_size": args.vla_batch, "cameras": [k for k in feats if "images" in k]}
    for name, (kw, use_autocast, latency) in variants.items():
        try:
            reset_memory(device)
            torch.manual_seed(0)
            policy, info = build_on(device, lambda: Pi0Policy(feats, None, normalization_mapping=identity,
                                                              tokenizer_name=tok, **{**size, **kw}))
            info["autocast_bf16"] = use_autocast
            batch = vla_batch(feats, args.vla_batch, policy.chunk_size, device)
            info.update(train_steps(policy, batch, device, args.vla_steps, use_autocast=use_autocast))
            if latency:
                obs = {k: v[:1] for k, v in batch.items() if k.startswith("observation.")}
                obs["task"] = [TASK]
                info.update(select_action_latency(policy, obs, device, args.vla_calls, use_autocast=use_autocast))
            out[name] = info
            del policy, batch
        except Exception as e:  # noqa: BLE001 - one variant's failure must not hide the others
            out[name] = {"error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-3000:]}
    return out


# ---------------------------------------------------------------------------------------------------- main
def write(results: dict[str, Any], paths: list[Path]) -> None:
    text = json.dumps(results, indent=2, default=str) + "\n"
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


SUMMARY_KEYS = ("error", "skipped", "steps_per_s_compute", "step_mean_s", "peak_memory_gib", "loss_finite",
                "select_action_new_chunk", "select_action_chunk", "fsdp_units", "step_s")


def summarize(checks: dict[str, Any]) -> list[str]:
    """One line per check (and per variant of a nested check) with its headline numbers or its error."""
    lines = []

    def pick(d: dict[str, Any]) -> str:
        parts = []
        for k in SUMMARY_KEYS:
            if k not in d:
                continue
            v = d[k]
            if isinstance(v, dict):  # a latency summary
                v = f"p50 {v.get('p50_ms', float('nan')):.2f} ms / p95 {v.get('p95_ms', float('nan')):.2f} ms"
            elif isinstance(v, str):
                v = v.splitlines()[0][:160] if v else v
            parts.append(f"{k}={v}")
        return ", ".join(parts)

    for name, res in checks.items():
        nested = {k: v for k, v in res.items() if isinstance(v, dict) and set(v) & set(SUMMARY_KEYS)}
        if nested and not set(res) & {"error", "skipped"}:
            for sub, d in nested.items():
                lines.append(f"{name}.{sub}: {pick(d)}")
        else:
            lines.append(f"{name}: {pick(res)}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="also write gpu_check.json into this folder")
    ap.add_argument("--data", default=str(REPO / ".devcarry" / "pusht"), help="PushT LeRobotDataset folder")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    which.add_argument("--all", action="store_true",
                       help="every check, none skipped by --budget-s: one run writes the whole results file")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: tests the script, numbers mean nothing")
    ap.add_argument("--train-steps", type=int, default=None, help="train.py steps (default 60; 4 with --dry-run)")
    ap.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default 4; 0 with --dry-run)")
    ap.add_argument("--vla-batch", type=int, default=None, help="VLA batch size (default 8; 2 with --dry-run)")
    ap.add_argument("--vla-steps", type=int, default=None, help="timed VLA steps after 1 warm-up (default 3)")
    ap.add_argument("--vla-calls", type=int, default=None, help="timed VLA select_action chunks (default 5)")
    ap.add_argument("--budget-s", type=float, default=220.0,
                    help="start no further check after this many seconds (the rest are marked skipped); "
                         "ignored with --all")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="measure uncommitted code (the result says so); implied by --dry-run")
    args = ap.parse_args(argv)
    if args.all:
        args.only, args.budget_s = list(CHECKS), None
    dry = args.dry_run
    args.train_steps = args.train_steps or (4 if dry else 60)
    args.num_workers = args.num_workers if args.num_workers is not None else (0 if dry else 4)
    args.vla_batch = args.vla_batch or (2 if dry else 8)
    args.vla_steps = args.vla_steps or (1 if dry else 3)
    args.vla_calls = args.vla_calls or (1 if dry else 5)
    args.batch_size = {"act": 8 if dry else 64, "diffusion": 8 if dry else 256}
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from robolearn.utils import provenance

    args = parse_args(argv)
    try:
        header = provenance.results_header(REPO, None if argv is None else [__file__, *argv],
                                           allow_dirty=args.allow_dirty or args.dry_run)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/gpu_check.py: {e}")
    header["versions"].update(versions())
    if args.dry_run:
        device = torch.device("cpu")
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    else:
        if not torch.cuda.is_available():
            sys.exit(f"gpu_check: CUDA is not available (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                     f"run on a GPU machine, or pass --dry-run for the CPU test mode")
        device = torch.device("cuda", 0)
        torch.set_float32_matmul_precision("high")
    name = "gpu_check_dryrun.json" if args.dry_run else "gpu_check.json"
    paths = [RESULTS / name] + ([args.out / name] if args.out else [])
    results: dict[str, Any] = {
        "benchmark": "gpu_check", "dry_run": args.dry_run, **header, "device": device_info(device),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "checks": {},
    }
    runners: dict[str, Callable[[argparse.Namespace, torch.device, Path], dict[str, Any]]] = {
        "train_act": lambda a, d, w: check_train("act", a, d, w),
        "train_diffusion": lambda a, d, w: check_train("diffusion", a, d, w),
        "inference": check_inference, "smolvla": check_smolvla, "smolvla_fsdp": check_smolvla_fsdp,
        "pi0": check_pi0,
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        for check in args.only:
            elapsed = time.perf_counter() - start
            if args.budget_s is not None and elapsed > args.budget_s:
                results["checks"][check] = {"skipped": f"time budget: {elapsed:.0f} s > --budget-s {args.budget_s}"}
                continue
            print(f"[gpu_check] {check} (t={elapsed:.0f} s)", flush=True)
            t0 = time.perf_counter()
            try:
                res = runners[check](args, device, work)
            except Exception as e:  # noqa: BLE001 - each check is isolated; the error is the result
                res = {"error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-4000:]}
                print(f"[gpu_check] {check} FAILED: {type(e).__name__}: {e}", flush=True)
            res["check_s"] = round(time.perf_counter() - t0, 2)
            results["checks"][check] = res
            results.update(provenance.finish_header(header))
            write(results, paths)
            reset_memory(device)
    results.update(provenance.finish_header(header))
    write(results, paths)
    print(json.dumps(results, indent=2, default=str))
    for line in summarize(results["checks"]):
        print(f"[gpu_check] {line}")
    for p in paths:
        print(f"[gpu_check] wrote {p}")
    return results


if __name__ == "__main__":
    main()
