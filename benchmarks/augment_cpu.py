"""Where image augmentation is cheaper on CPU: per sample in the DataLoader workers, or batched in the main process.

    python benchmarks/augment_cpu.py [--augment default] [--repeats 7] [--sizes 96x96 480x640]

Frames are float32 ``(3, H, W)`` in [0, 1], batch 32, augmented with ``conf/augment/<augment>.yaml`` (lerobot's
default: 3 of 6 transforms per frame). Two measurements per frame size, the variants interleaved within each repeat
(the CPU is shared, so single timings are noisy; the file reports medians and all repeats):

1. ``compute_ms_per_batch``: the CPU time to augment one batch, single process:
   - ``per_sample_1thread``: 32 calls of :class:`robolearn.augment.ImageAugment` (torchvision ``v2.functional`` on
     one frame each), one torch thread, which is what a DataLoader worker does (torch runs workers single-threaded);
   - ``batched_1thread`` / ``batched_all_threads``: the same 32 plans applied at once with per-sample parameters
     (:func:`batched_apply` below: vectorized brightness, contrast, saturation, sharpness, hue and shift, equal to the
     per-sample result up to float rounding; affine through ``grid_sample`` (nearest), which picks another source
     pixel at a few rounding ties; resized crop through ``roi_align``, which approximates torchvision's antialiased
     resize), as ``on_after_batch_transfer`` would on CPU, with one thread and with torch's default thread count.
2. ``loader_ms_per_batch``: the main process's wall time per batch from a DataLoader (2 workers, batch 32, frames
   kept as uint8 and converted to float in ``__getitem__``, like the reader):
   - ``none``: no augmentation (the floor);
   - ``workers``: :class:`robolearn.datamodules.augmented.AugmentedDataset` in the workers (what the DataModules do);
   - ``main_batched``: plain loading, then :func:`batched_apply` in the main process on each batch.
   Nothing else runs in the main process here; in training the workers' time overlaps the training step while the
   main-process augmentation adds to it.

The file carries the provenance of :func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree
unless ``--allow-dirty``; command, hardware, versions, wall time, load average at start and end).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from robolearn.augment import ImageAugment, sample_generator
from robolearn.datamodules.augmented import AugmentedDataset, EpochTaggedSampler
from robolearn.utils import provenance

HERE = Path(__file__).resolve().parent
CONF = HERE.parent / "conf"
CAMERA = "observation.image"


def load_augment(name: str) -> ImageAugment:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF / "augment"), version_base="1.3"):
        cfg = compose(name)
    return instantiate(cfg, _convert_="all")


# ---------------------------------------------------------------------------------------------- batched variant
def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3)


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (ratio * a + (1.0 - ratio) * b).clamp_(0.0, 1.0)


def _op(kind: str, x: torch.Tensor, ps: list[dict]) -> torch.Tensor:
    """One transform on ``x`` ``(N, 3, H, W)`` with per-sample parameters ``ps`` (N dicts)."""
    from torchvision.ops import roi_align
    from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

    n, c, h, w = x.shape
    col = lambda key: torch.tensor([p[key] for p in ps], dtype=x.dtype).view(n, 1, 1, 1)  # noqa: E731
    if kind == "brightness":
        return (x * col("factor")).clamp_(0.0, 1.0)
    if kind == "contrast":
        return _blend(x, _gray(x).mean(dim=(-3, -2, -1), keepdim=True), col("factor"))
    if kind == "saturation":
        return _blend(x, _gray(x), col("factor"))
    if kind == "sharpness":
        a, b = 1.0 / 13.0, 5.0 / 13.0
        kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], dtype=x.dtype).expand(c, 1, 3, 3)
        out = x.clone()
        view = out[..., 1:-1, 1:-1]
        view.add_((F.conv2d(x, kernel, groups=c) - view) * (1.0 - col("factor")))
        return out.clamp_(0.0, 1.0)
    if kind == "hue":
        hsv = _rgb_to_hsv(x)
        hue = (hsv[:, 0] + col("hue")[:, 0]).remainder_(1.0)
        return _hsv_to_rgb(torch.stack((hue, hsv[:, 1], hsv[:, 2]), dim=-3))
    if kind == "shift":
        rows = (torch.arange(h)[None] + torch.tensor([p["dy"] for p in ps])[:, None]).clamp_(0, h - 1)
        cols = (torch.arange(w)[None] + torch.tensor([p["dx"] for p in ps])[:, None]).clamp_(0, w - 1)
        bidx = torch.arange(n)[:, None, None]
        return x.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    if kind == "affine":  # F.affine's map (rotation about the centre, scale, whole-pixel translation), inverted
        theta = torch.zeros(n, 2, 3, dtype=x.dtype)
        for i, p in enumerate(ps):
            a, s = math.radians(p["angle"]), p["scale"]
            inv = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], dtype=torch.float64) / s
            tx, ty = p["translate"]
            theta[i] = torch.tensor([[inv[0, 0], inv[0, 1] * h / w, -(inv[0, 0] * tx + inv[0, 1] * ty) / (w / 2)],
                                     [inv[1, 0] * w / h, inv[1, 1], -(inv[1, 0] * tx + inv[1, 1] * ty) / (h / 2)]])
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if kind == "resized_crop":
        boxes = torch.tensor([[i, p["left"], p["top"], p["left"] + p["width"], p["top"] + p["height"]]
                              for i, p in enumerate(ps)], dtype=x.dtype)
        return roi_align(x, boxes, output_size=(h, w), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    raise ValueError(kind)


def batched_apply(augment: ImageAugment, x: torch.Tensor, plans: list[list[tuple[str, dict]]]) -> torch.Tensor:
    """Apply one plan per sample to ``x`` ``(B, 3, H, W)``: each transform once, vectorized over the samples whose
    plan holds it (plans in configured order, ``random_order: false``)."""
    out = x.clone()
    for name, spec in augment.transforms.items():
        idx = [i for i, plan in enumerate(plans) if any(n == name for n, _ in plan)]
        if not idx:
            continue
        ps = [dict(plan)[name] for plan in (plans[i] for i in idx)]
        sel = torch.tensor(idx)
        out[sel] = _op(spec["type"], out[sel], ps)
    return out


def plans_for(augment: ImageAugment, indices: list[int], epoch: int, size: tuple[int, int]) -> list:
    return [augment.sample(sample_generator(0, epoch, i, CAMERA), size) for i in indices]


# ---------------------------------------------------------------------------------------------- measurements
def compute_times(augment: ImageAugment, frames: torch.Tensor, rep: int, default_threads: int) -> dict[str, float]:
    """ms per batch of each compute variant (one repeat; the variants one after the other)."""
    size = tuple(frames.shape[-2:])
    idx = list(range(rep * len(frames), (rep + 1) * len(frames)))
    out = {}
    torch.set_num_threads(1)
    t = time.perf_counter()
    for i, frame in zip(idx, frames):
        augment(frame, sample_generator(0, 0, i, CAMERA))
    out["per_sample_1thread"] = (time.perf_counter() - t) * 1e3
    for label, threads in (("batched_1thread", 1), ("batched_all_threads", default_threads)):
        torch.set_num_threads(threads)
        t = time.perf_counter()
        batched_apply(augment, frames, plans_for(augment, idx, 0, size))
        out[label] = (time.perf_counter() - t) * 1e3
    torch.set_num_threads(1)
    return out


def check_equal(augment: ImageAugment, frames: torch.Tensor) -> dict[str, dict[str, float]]:
    """Max and mean |per-sample - batched| per transform kind, each kind applied alone to every frame."""
    diffs = {}
    size = tuple(frames.shape[-2:])
    for name, spec in augment.transforms.items():
        alone = ImageAugment({name: {**{k: v for k, v in spec.items() if k != "type"}, "weight": 1.0,
                                     "type": spec["type"]}}, max_num_transforms=1)
        plans = plans_for(alone, list(range(len(frames))), 0, size)
        ref = torch.stack([alone.apply(f, p) for f, p in zip(frames, plans)])
        err = (batched_apply(alone, frames, plans) - ref).abs()
        diffs[name] = {"max": float(f"{float(err.max()):.3g}"), "mean": float(f"{float(err.mean()):.3g}")}
    return diffs


class Frames(Dataset):
    """``n`` items cycling over ``pool`` uint8 frames ``(3, H, W)``, returned as float32 in [0, 1]."""

    def __init__(self, pool: torch.Tensor, n: int) -> None:
        self.pool, self.n = pool, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {CAMERA: self.pool[i % len(self.pool)].float().div_(255.0), "index": torch.tensor(i)}


def loader_time(variant: str, augment: ImageAugment, pool: torch.Tensor, batches: int, batch_size: int,
                workers: int, default_threads: int) -> float:
    """ms per batch seen by the main process (after one untimed batch: worker start-up), fresh workers each call."""
    n = (batches + 1) * batch_size
    data = Frames(pool, n)
    sampler = None
    if variant == "workers":
        data = AugmentedDataset(data, augment, [CAMERA], seed=0)
        sampler = EpochTaggedSampler(n, seed=0)
    loader = DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers, prefetch_factor=2)
    torch.set_num_threads(default_threads)
    size = tuple(pool.shape[-2:])
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        if variant == "main_batched":
            idx = batch["index"].tolist()
            batched_apply(augment, batch[CAMERA], plans_for(augment, idx, 0, size))
    elapsed = time.perf_counter() - t
    del it
    torch.set_num_threads(1)
    return elapsed / batches * 1e3


def summarize(runs: list[dict[str, float]]) -> dict:
    keys = runs[0].keys()
    return {k: {"median_ms": round(statistics.median(r[k] for r in runs), 2),
                "all_ms": [round(r[k], 2) for r in runs]} for k in keys}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--augment", default="default", help="conf/augment/<name>.yaml")
    p.add_argument("--sizes", nargs="+", default=["96x96", "480x640"], help="HxW frame sizes")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--loader-batches", type=int, nargs="+", default=[20, 3],
                   help="timed batches per loader measurement, per size")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "results" / "augment_cpu.json")
    p.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = p.parse_args()
    try:
        header = provenance.results_header(HERE.parent, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/augment_cpu.py: {e}")
    default_threads = torch.get_num_threads()
    augment = load_augment(args.augment)
    gen = torch.Generator().manual_seed(0)
    results = []
    for k, size in enumerate(args.sizes):
        h, w = (int(v) for v in size.lower().split("x"))
        pool = torch.randint(0, 256, (16, 3, h, w), dtype=torch.uint8, generator=gen)
        frames = torch.stack([pool[i % len(pool)] for i in range(args.batch_size)]).float().div_(255.0)
        compute_times(augment, frames, 0, default_threads)  # warm-up (first calls allocate)
        batches = args.loader_batches[min(k, len(args.loader_batches) - 1)]
        compute, loader = [], []
        for rep in range(args.repeats):
            compute.append(compute_times(augment, frames, rep + 1, default_threads))
            order = ("none", "workers", "main_batched") if rep % 2 == 0 else ("main_batched", "workers", "none")
            loader.append({v: loader_time(v, augment, pool, batches, args.batch_size, args.workers, default_threads)
                           for v in order})
        entry = {
            "frame_shape": [3, h, w],
            "batch_size": args.batch_size,
            "compute_ms_per_batch": summarize(compute),
            "loader_ms_per_batch": {"num_workers": args.workers, "timed_batches_per_repeat": batches,
                                    **summarize(loader)},
            "batched_minus_per_sample_abs": check_equal(augment, frames[:8]),
        }
        print(json.dumps({size: {"compute": {k2: v["median_ms"] for k2, v in entry["compute_ms_per_batch"].items()},
                                 "loader": {k2: v["median_ms"] for k2, v in entry["loader_ms_per_batch"].items()
                                            if isinstance(v, dict)}}}))
        results.append(entry)
    record = {
        "benchmark": "augment_cpu",
        "augment": args.augment,
        "augment_config": repr(augment),
        **provenance.finish_header(header),
        "torch_default_threads": default_threads,
        "notes": ("Shared, busy CPU (see load_average): the variants are interleaved within each repeat (the loader "
                  "order alternates) and medians are reported next to every repeat. compute = CPU time of one batch "
                  "in one process; loader = main-process wall time per batch with the DataLoader's workers; in "
                  "training the workers' time overlaps the step, the main-process time adds to it. In the batched "
                  "variant (batched_minus_per_sample_abs) brightness, contrast, saturation, hue, sharpness and shift "
                  "equal the per-sample result up to float rounding, affine (grid_sample, nearest) picks another "
                  "source pixel at a few rounding ties, resized_crop (roi_align) approximates torchvision's "
                  "antialiased resize."),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
