"""Loading speed of an episode subset against the whole dataset (samples/s), written to benchmarks/results/.

lerobot users report that training on a few episodes of a large dataset reads far slower than training on all of
them (lerobot issue #2315). This measures it on a generated 50-episode dataset in the v3.0 layout (one concatenated
AV1 MP4 of 96x96 frames, 10 fps, 100 frames per episode, written by robolearn's writer): the DataModule with
``dataset.episodes`` = all 50 episodes, 5 spread episodes ``[0, 10, 20, 30, 40]`` and 5 adjacent ones ``[20..24]``,
batch 32, shuffled, an ``observation.image`` window of 2 frames and an ``action`` window of 16 steps, 0 workers.

Each setting is measured ``--repeats`` times in alternation (all, spread, adjacent, all, ...; with ``--segments
both`` the mode measured first alternates between repeats), each time from a new DataModule, so the decode cache starts empty: ``cold_samples_per_s`` counts the first ``--batches`` batches including
the cache fill, ``warm_samples_per_s`` the next ``--batches``. ``--segments off`` reproduces the reader before it
cached episode segments (it decoded whole files), to compare in the same run.

    python benchmarks/episode_subsets.py [--repeats 3] [--batches 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robolearn.datamodules.lerobot import LeRobotDataModule
from robolearn.datasets.writer import LeRobotDatasetWriter
from robolearn.utils import provenance

HERE = Path(__file__).resolve().parent
SUBSETS = {"all": None, "spread_5": [0, 10, 20, 30, 40], "adjacent_5": [20, 21, 22, 23, 24]}


def make_dataset(root: Path, episodes: int = 50, frames: int = 100, size: int = 96, fps: int = 10) -> Path:
    """A v3.0 dataset of ``episodes`` x ``frames`` with one 96x96 camera (smoothly moving patterns, so the codec
    works as on camera footage), a 2-d state and a 2-d action."""
    features = {
        "observation.image": {"dtype": "video", "shape": [size, size, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    }
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    with LeRobotDatasetWriter.create("bench/subsets", fps, features, root, use_videos=True, vcodec="libsvtav1") as w:
        for ep in range(episodes):
            for t in range(frames):
                phase = 0.15 * t + ep
                img = np.stack([128 + 100 * np.sin(xx / 9 + phase), 128 + 100 * np.cos(yy / 7 - phase),
                                128 + 100 * np.sin((xx + yy) / 13 + 0.5 * phase)], axis=-1).astype(np.uint8)
                pos = np.asarray([np.sin(phase), np.cos(phase)], np.float32)
                w.add_frame({"observation.image": img, "observation.state": pos, "action": pos * 0.5,
                             "task": "move"})
            w.save_episode()
    return root


def measure(root: Path, episodes: list[int] | None, batches: int, segments: bool) -> dict:
    dm = LeRobotDataModule(repo_id="bench/subsets", root=root, episodes=episodes, val_fraction=0.0, batch_size=32,
                           num_workers=0, seed=0)
    dm.set_delta_indices({"observation.image": [-1, 0], "action": list(range(16))})
    dm.setup("fit")
    dataset = dm.train_dataset
    if not segments:  # the reader before episode segments: whole files decoded on first use
        base = getattr(dataset, "dataset", dataset)
        base._vid_to = {k: None for k in base._vid_to}
    loader = dm.train_dataloader()
    times, counts = [], []
    t_last = time.perf_counter()
    seen = 0
    while len(times) < 2 * batches:
        for batch in loader:
            now = time.perf_counter()
            times.append(now - t_last)
            counts.append(batch["action"].shape[0])
            t_last = now
            seen += 1
            if len(times) >= 2 * batches:
                break
    cold = sum(counts[:batches]) / sum(times[:batches])
    warm = sum(counts[batches:]) / sum(times[batches:])
    return {"cold_samples_per_s": round(cold, 1), "warm_samples_per_s": round(warm, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", type=int, default=40, help="timed batches, cold and again warm")
    p.add_argument("--segments", choices=["on", "off", "both"], default="both")
    p.add_argument("--out", type=Path, default=HERE / "results" / "episode_subsets.json")
    p.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = p.parse_args()
    try:
        header = provenance.results_header(HERE.parent, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/episode_subsets.py: {e}")
    torch.set_num_threads(1)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.segments]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = make_dataset(Path(tmp) / "subsets")
        gen_s = time.perf_counter() - t0
        runs: dict[str, list[dict]] = {}
        for rep in range(args.repeats):
            for segments in (modes if rep % 2 == 0 else modes[::-1]):  # alternate which mode goes first
                for name, eps in SUBSETS.items():
                    r = measure(root, eps, args.batches, segments)
                    key = f"{name}/segments_{'on' if segments else 'off'}"
                    runs.setdefault(key, []).append(r)
                    print(f"repeat {rep} {key}: cold {r['cold_samples_per_s']} warm {r['warm_samples_per_s']} samples/s",
                          flush=True)
        fingerprint = provenance.dataset_fingerprint(root, cache_dir=Path(tmp) / "fp")
    summary = {}
    for key, rs in runs.items():
        summary[key] = {f"{m}_median": statistics.median(r[m] for r in rs)
                        for m in ("cold_samples_per_s", "warm_samples_per_s")}
    for segments in modes:
        tag = f"segments_{'on' if segments else 'off'}"
        full = summary[f"all/{tag}"]
        for name in SUBSETS:
            s = summary[f"{name}/{tag}"]
            s["cold_ratio_to_all"] = round(s["cold_samples_per_s_median"] / full["cold_samples_per_s_median"], 3)
            s["warm_ratio_to_all"] = round(s["warm_samples_per_s_median"] / full["warm_samples_per_s_median"], 3)
    record = {
        "benchmark": "episode_subsets",
        "dataset": {"episodes": 50, "frames_per_episode": 100, "image": [96, 96], "fps": 10, "codec": "libsvtav1",
                    "generated_in_s": round(gen_s, 1), "fingerprint": fingerprint},
        "settings": {"batch_size": 32, "num_workers": 0, "windows": {"observation.image": 2, "action": 16},
                     "batches_cold": args.batches, "batches_warm": args.batches, "repeats": args.repeats,
                     "subsets": SUBSETS},
        **provenance.finish_header(header),
        "torch_threads": 1,
        "summary": summary,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
