"""DataModule throughput on a lerobot-written dataset (samples/s), written to benchmarks/results/.

Settings match the ones lerobot users report against: batch 32, shuffled, ``observation.image`` window
[-0.1, 0.0] s, ``action`` window of 16 steps, 0 and 2 DataLoader workers; each with the map-style reader and
with ``StreamingLeRobotDataset`` (``streaming=True``, shuffle buffer 1000).

    python benchmarks/dataloading.py [--root ../shared/datasets/lerobot_written_pusht_random] [--batches 300]

The first ``--warmup`` batches of each setting (worker start-up, decoder cache fill) are not timed. The file
carries the provenance of :func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree
unless ``--allow-dirty``; command, hardware, versions, wall time, load average at start and end).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from robolearn.datamodules.lerobot import LeRobotDataModule
from robolearn.utils import provenance

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets" / "lerobot_written_pusht_random"


def measure(root: Path, num_workers: int, batches: int, warmup: int, batch_size: int, **dm_kwargs) -> dict:
    dm = LeRobotDataModule(
        repo_id="bench/pusht_random", root=root, val_fraction=0.0, batch_size=batch_size,
        num_workers=num_workers, persistent_workers=num_workers > 0, seed=0, **dm_kwargs,
    )
    dm.set_delta_indices({"observation.image": [-1, 0], "action": list(range(16))})
    dm.setup("fit")
    loader = dm.train_dataloader()  # one loader: persistent workers survive epoch ends, as in training
    n_seen, t0, done = 0, None, 0
    while done < batches + warmup:
        for batch in loader:
            done += 1
            if done == warmup:
                t0 = time.perf_counter()
            elif done > warmup:
                n_seen += batch["action"].shape[0]
            if done >= batches + warmup:
                break
    elapsed = time.perf_counter() - t0
    return {
        "num_workers": num_workers,
        "streaming": bool(dm_kwargs.get("streaming", False)),
        "batches_timed": batches,
        "samples": n_seen,
        "seconds": round(elapsed, 3),
        "samples_per_s": round(n_seen / elapsed, 1),
        "image_batch_shape": list(batch["observation.image"].shape),
        "action_batch_shape": list(batch["action"].shape),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--out", type=Path, default=HERE / "results" / "dataloading.json")
    p.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    args = p.parse_args()
    try:
        header = provenance.results_header(HERE.parent, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/dataloading.py: {e}")
    torch.set_num_threads(1)

    results = []
    for streaming in (False, True):
        for w in args.workers:
            r = measure(args.root, w, args.batches, args.warmup, args.batch_size, streaming=streaming)
            print(f"streaming={streaming} workers={w}: {r['samples_per_s']:.1f} samples/s  "
                  f"({r['samples']} samples in {r['seconds']} s)")
            results.append(r)
    record = {
        "benchmark": "dataloading",
        "dataset": str(args.root.name),
        "batch_size": args.batch_size,
        "windows": {"observation.image": [-0.1, 0.0], "action": "16 steps"},
        **provenance.finish_header(header),
        "torch_threads": 1,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
