"""Memory per DataLoader worker and samples/s of LeRobotDataset's tabular frames: numpy in RAM (before) vs HF
``datasets`` over a memory-mapped Arrow file (after), on a synthetic 1,000,000-frame state-only v3.0 dataset.

    python benchmarks/hf_dataset_memory.py [--repeats 7] [--batches 400] [--start-methods fork spawn]

- The dataset: 1000 episodes x 1000 frames at 50 fps, ``observation.state`` and ``action`` float32 (14,) (a bimanual
  ALOHA-like arm pair) plus lerobot's 5 columns, written directly as parquet in the v3.0 layout (10 data files of
  100 episodes, one row group per episode, lerobot's fixed-size-list types and ``huggingface`` metadata) under
  ``--workdir`` (default ``outputs/benchmarks/hf_dataset_memory``, git-ignored), once.
- BEFORE: the reader at commit ``--before`` (default ``2b75771``, the last one that copied the columns into numpy
  arrays in each process), extracted with ``git archive`` into the work folder and imported from there. AFTER: the
  reader of this checkout. Each measurement runs in a fresh child process (``--child``) whose ``PYTHONPATH`` is the
  code measured; the child checks which ``robolearn`` it imported.
- A measurement: ``LeRobotDataset`` with a policy's windows (``action`` chunk of 16 frames, ``observation.state``
  at [-1, 0] frames), a shuffled ``DataLoader`` (batch 64, ``--workers`` 2, persistent, prefetch 2) under the start
  method ``fork`` (the Linux default before Python 3.14, what LeRobotDataModule gets) or ``spawn`` (macOS; 3.14's
  default ``forkserver`` also pickles the dataset to each worker). Each worker first reads every frame once (its
  state after one epoch; training runs many), then ``--warmup`` batches, then ``--batches`` timed batches; then
  ``/proc/<pid>/smaps_rollup`` of each worker and of the main process: RSS, PSS (shared pages divided among the
  processes mapping them) and USS (private pages), anonymous and file-backed parts. Then, with the workers gone,
  the reader alone: microseconds per item over ``--items`` random items in the main process (its columns read once
  first), which the shared CPU disturbs far less than the DataLoader's samples/s.
- AFTER's Arrow cache file is built once before the rounds (the build is timed); rounds measure the steady state
  in which the file exists. ``--repeats`` rounds, each running BEFORE and AFTER back to back per start method, in
  alternating order (the CPU is shared: interleaving spreads the noise over both); the summary gives medians and
  the median of the after/before ratios within a round.

The results file (``benchmarks/results/hf_dataset_memory.json``) carries the provenance of
:func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree unless ``--allow-dirty``;
command, hardware, versions, wall time, load average at start and end).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CODE = HERE.parent
REPO_ID = "bench/state_1m"
TASK = "Move both arms to the target."


# ------------------------------------------------------------------------------------------- the dataset


def write_dataset(root: Path, episodes: int, length: int, dim: int, fps: int, per_file: int) -> None:
    """A state-only v3.0 dataset written directly as parquet (the writer rewrites a data file per saved episode,
    which at 1000 episodes costs minutes; the layout and types here are the writer's and lerobot's)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    vec = pa.list_(pa.field("element", pa.float32()), dim)
    schema = pa.schema([("observation.state", vec), ("action", vec), ("timestamp", pa.float32()),
                        ("frame_index", pa.int64()), ("episode_index", pa.int64()), ("index", pa.int64()),
                        ("task_index", pa.int64())])
    value = {"feature": {"dtype": "float32", "_type": "Value"}, "length": dim, "_type": "List"}
    hf = {"observation.state": value, "action": value, "timestamp": {"dtype": "float32", "_type": "Value"},
          **{k: {"dtype": "int64", "_type": "Value"} for k in ("frame_index", "episode_index", "index", "task_index")}}
    schema = schema.with_metadata({b"huggingface": json.dumps({"info": {"features": hf}}).encode()})
    rng = np.random.default_rng(0)
    tmp = root.with_name(root.name + ".tmp")
    (tmp / "meta/episodes/chunk-000").mkdir(parents=True)
    rows = []
    for f in range(0, episodes, per_file):
        path = tmp / f"data/chunk-000/file-{f // per_file:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, schema, compression="snappy") as w:
            for e in range(f, min(f + per_file, episodes)):
                steps = rng.normal(0, 0.01, (2, length, dim)).astype(np.float32)
                state, action = np.cumsum(steps, axis=1)
                frame = np.arange(length, dtype=np.int64)
                cols = [pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), type=vec),
                        pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1)), type=vec),
                        pa.array((frame / fps).astype(np.float32)), pa.array(frame),
                        pa.array(np.full(length, e, np.int64)), pa.array(e * length + frame),
                        pa.array(np.zeros(length, np.int64))]
                w.write_table(pa.Table.from_arrays(cols, schema=schema))
                rows.append({"episode_index": e, "tasks": [TASK], "length": length, "data/chunk_index": 0,
                             "data/file_index": f // per_file, "dataset_from_index": e * length,
                             "dataset_to_index": (e + 1) * length, "meta/episodes/chunk_index": 0,
                             "meta/episodes/file_index": 0})
    pq.write_table(pa.Table.from_pylist(rows), tmp / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task": [TASK], "task_index": pa.array([0], pa.int64())}), tmp / "meta/tasks.parquet")
    names = [f"joint_{i}" for i in range(dim)]
    features = {"observation.state": {"dtype": "float32", "shape": [dim], "names": names},
                "action": {"dtype": "float32", "shape": [dim], "names": names},
                "timestamp": {"dtype": "float32", "shape": [1], "names": None},
                **{k: {"dtype": "int64", "shape": [1], "names": None}
                   for k in ("frame_index", "episode_index", "index", "task_index")}}
    info = {"codebase_version": "v3.0", "robot_type": "synthetic_bimanual", "total_episodes": episodes,
            "total_frames": episodes * length, "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{episodes}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
            "features": features}
    (tmp / "meta/info.json").write_text(json.dumps(info, indent=4))
    tmp.rename(root)


# ------------------------------------------------------------------------------------------- measuring (child)


def smaps(pid: int | str = "self") -> dict[str, float]:
    """``/proc/<pid>/smaps_rollup`` and ``status`` in MiB: rss, pss, uss (private clean + dirty), pss_anon,
    pss_file, rss_anon, rss_file."""
    kb: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        kb[name] = int(value.split()[0])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("RssAnon:", "RssFile:")):
            name, value = line.split(":", 1)
            kb[name] = int(value.split()[0])
    mib = {"rss": kb["Rss"], "pss": kb["Pss"], "uss": kb["Private_Clean"] + kb["Private_Dirty"],
           "pss_anon": kb.get("Pss_Anon", 0), "pss_file": kb.get("Pss_File", 0), "rss_anon": kb.get("RssAnon", 0),
           "rss_file": kb.get("RssFile", 0)}
    return {k: round(v / 1024, 1) for k, v in mib.items()}


def read_every_frame(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: read each numeric column of the worker's dataset once (every page of it), the
    state a worker is in after one epoch."""
    import numpy as np
    import torch

    ds = torch.utils.data.get_worker_info().dataset
    for values in ds._cols.values():
        if isinstance(values, np.ndarray) and values.dtype != object:
            float(values.sum(dtype=np.float64))


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    from robolearn.datasets.lerobot_dataset import LeRobotDataset
    import robolearn.datasets.lerobot_dataset as reader

    fps = args.fps
    windows = {"observation.state": [-1 / fps, 0.0], "action": [i / fps for i in range(16)]}
    ds = LeRobotDataset(REPO_ID, root=args.root, delta_timestamps=windows)
    load_s = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.batch_size, sampler=torch.utils.data.RandomSampler(ds, generator=torch.Generator()
                                                                                .manual_seed(0)),
        num_workers=args.workers, persistent_workers=True, prefetch_factor=2, multiprocessing_context=args.start_method,
        worker_init_fn=read_every_frame)
    it = iter(loader)
    for _ in range(args.warmup):
        next(it)
    n, t1 = 0, time.perf_counter()
    for _ in range(args.batches):
        batch = next(it)
        n += batch["action"].shape[0]
    seconds = time.perf_counter() - t1
    workers = [smaps(w.pid) for w in it._workers]
    main = smaps()
    shapes = {k: list(batch[k].shape) for k in ("action", "observation.state", "action_is_pad")}
    del it, loader
    # the reader alone, in this process (after the memory was read): microseconds per item over random items, every
    # column read once first; far less noisy than the DataLoader's samples/s on a shared CPU
    for values in ds._cols.values():
        if isinstance(values, np.ndarray) and values.dtype != object:
            float(values.sum(dtype=np.float64))
    positions = np.random.default_rng(1).integers(0, len(ds), args.items).tolist()
    t2 = time.perf_counter()
    for i in positions:
        ds[i]
    item_us = (time.perf_counter() - t2) / len(positions) * 1e6
    print(json.dumps({
        "reader_file": reader.__file__, "hf_dataset": hasattr(ds, "hf_dataset"),
        "cache_file": str(getattr(ds, "cache_file", None) or "") or None,
        "tabular_bytes": int(sum(v.nbytes for v in ds._cols.values() if isinstance(v, np.ndarray))),
        "load_s": round(load_s, 2), "samples": n, "seconds": round(seconds, 3), "samples_per_s": round(n / seconds, 1),
        "item_us": round(item_us, 2), "batch_shapes": shapes, "workers": workers, "main": main,
    }))


# ------------------------------------------------------------------------------------------- orchestration


def extract_before(commit: str, workdir: Path) -> Path:
    """``robolearn/`` at ``commit`` (``git archive``) in ``workdir/before_<commit>``; returns that folder."""
    full = subprocess.run(["git", "rev-parse", commit], cwd=CODE, capture_output=True, text=True, check=True
                          ).stdout.strip()
    out = workdir / f"before_{full[:12]}"
    if not (out / "robolearn").is_dir():
        tmp = out.with_name(out.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", "--format=tar", full, "robolearn"], cwd=CODE,
                                 capture_output=True, check=True).stdout
        tar_path = tmp / "src.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        tar_path.unlink()
        tmp.rename(out)
    return out


def run_child(code: Path, start_method: str, args: argparse.Namespace, env: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--start-method", start_method,
           "--root", str(args.root), "--fps", str(args.fps), "--batch-size", str(args.batch_size),
           "--workers", str(args.workers), "--warmup", str(args.warmup), "--batches", str(args.batches),
           "--items", str(args.items)]
    env = {**env, "PYTHONPATH": str(code)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(result["reader_file"]).resolve().is_relative_to(code.resolve()):
        raise RuntimeError(f"the child imported {result['reader_file']}, not the code under {code}")
    return result


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def summarize(runs: list[dict]) -> dict:
    out: dict = {}
    for method in sorted({r["start_method"] for r in runs}):
        per: dict = {}
        for variant in ("before", "after"):
            rs = [r for r in runs if r["start_method"] == method and r["variant"] == variant]
            worker = {m: _median([statistics.mean(w[m] for w in r["workers"]) for r in rs])
                      for m in ("rss", "pss", "uss", "pss_anon", "pss_file")}
            per[variant] = {
                "runs": len(rs),
                "samples_per_s_median": _median([r["samples_per_s"] for r in rs]),
                "samples_per_s_all": [r["samples_per_s"] for r in rs],
                "per_worker_mib_median": worker,
                "main_mib_median": {m: _median([r["main"][m] for r in rs]) for m in ("rss", "pss", "uss", "rss_anon",
                                                                                   "rss_file")},
                "total_pss_mib_median": _median([r["main"]["pss"] + sum(w["pss"] for w in r["workers"]) for r in rs]),
                "load_s_median": round(statistics.median(r["load_s"] for r in rs), 2),
                "item_us_median": round(statistics.median(r["item_us"] for r in rs), 2),
            }
        b, a = per["before"], per["after"]
        pairs = [(x, y) for x in runs for y in runs if x["start_method"] == y["start_method"] == method
                 and x["repeat"] == y["repeat"] and x["variant"] == "before" and y["variant"] == "after"]
        per["after_vs_before"] = {
            "throughput_ratio": round(a["samples_per_s_median"] / b["samples_per_s_median"], 3),
            "throughput_ratio_paired_median": round(statistics.median(
                y["samples_per_s"] / x["samples_per_s"] for x, y in pairs), 3),
            "throughput_ratios_paired": [round(y["samples_per_s"] / x["samples_per_s"], 3) for x, y in pairs],
            "item_cost_ratio_paired_median": round(statistics.median(y["item_us"] / x["item_us"] for x, y in pairs), 3),
            "per_worker_pss_ratio": round(a["per_worker_mib_median"]["pss"] / b["per_worker_mib_median"]["pss"], 3),
            "per_worker_uss_ratio": round(a["per_worker_mib_median"]["uss"] / b["per_worker_mib_median"]["uss"], 3),
            "per_worker_rss_ratio": round(a["per_worker_mib_median"]["rss"] / b["per_worker_mib_median"]["rss"], 3),
            "total_pss_ratio": round(a["total_pss_mib_median"] / b["total_pss_mib_median"], 3),
        }
        out[method] = per
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=CODE / "outputs" / "benchmarks" / "hf_dataset_memory")
    p.add_argument("--before", default="2b75771", help="commit of the numpy reader measured as BEFORE")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--episode-length", type=int, default=1000)
    p.add_argument("--dim", type=int, default=14, help="size of observation.state and of action")
    p.add_argument("--fps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batches", type=int, default=400)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--items", type=int, default=20000, help="items timed in the main process (the reader alone)")
    p.add_argument("--start-methods", nargs="+", default=["fork", "spawn"], choices=["fork", "spawn", "forkserver"])
    p.add_argument("--out", type=Path, default=HERE / "results" / "hf_dataset_memory.json")
    p.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    # child mode (one measurement, run by the parent)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--start-method", default="fork", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if not sys.platform.startswith("linux"):
        sys.exit("benchmarks/hf_dataset_memory.py reads /proc/<pid>/smaps_rollup: Linux only")

    from robolearn.utils import provenance

    try:
        header = provenance.results_header(CODE, allow_dirty=args.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/hf_dataset_memory.py: {e}")
    workdir = args.workdir.resolve()
    frames = args.episodes * args.episode_length
    args.root = workdir / f"dataset_{args.episodes}x{args.episode_length}_d{args.dim}_fps{args.fps}"
    if not args.root.is_dir():
        t = time.perf_counter()
        write_dataset(args.root, args.episodes, args.episode_length, args.dim, args.fps, per_file=100)
        print(f"wrote {frames} frames to {args.root} in {time.perf_counter() - t:.1f} s")
    before_code = extract_before(args.before, workdir)
    cache = workdir / "hf_datasets_cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    codes = {"before": before_code, "after": CODE}

    # AFTER's first load writes the Arrow cache file: timed here, outside the rounds
    for old in cache.glob("**/*.arrow"):
        old.unlink()
    build = run_child(CODE, "fork", argparse.Namespace(**{**vars(args), "batches": 1, "warmup": 0, "items": 100}), env)
    print(f"after: first load (parquet -> Arrow cache file) {build['load_s']} s")

    runs = []
    for rep in range(args.repeats):
        order = ("before", "after") if rep % 2 == 0 else ("after", "before")
        for method in args.start_methods:
            for variant in order:
                r = run_child(codes[variant], method, args, env)
                r.update(variant=variant, start_method=method, repeat=rep)
                runs.append(r)
                w = {m: statistics.mean(x[m] for x in r["workers"]) for m in ("rss", "pss", "uss")}
                print(f"[{rep}] {method:5s} {variant:6s} {r['samples_per_s']:8.1f} samples/s  per worker "
                      f"RSS {w['rss']:6.1f}  PSS {w['pss']:6.1f}"
                      f"  USS {w['uss']:6.1f} MiB  main RSS {r['main']['rss']:.1f} MiB "
                      f"(anon {r['main']['rss_anon']:.1f})  load {r['load_s']} s  {r['item_us']} us/item in-process",
                      flush=True)
    parquet_bytes = sum(f.stat().st_size for f in (args.root / "data").rglob("*.parquet"))
    arrow = sorted(cache.glob("**/*.arrow"))
    summary = summarize(runs)
    record = {
        "benchmark": "hf_dataset_memory",
        "before": {"commit": subprocess.run(["git", "rev-parse", args.before], cwd=CODE, capture_output=True,
                                            text=True).stdout.strip(),
                   "reader": "pyarrow columns copied into numpy arrays in the process that builds the dataset"},
        "after": {"commit": header["source"]["commit"],  # the code that ran: this record's source
                  "reader": "HF datasets over the memory-mapped Arrow cache file (zero-copy numpy views)"},
        "dataset": {"frames": frames, "episodes": args.episodes, "fps": args.fps,
                    "features": {"observation.state": [args.dim], "action": [args.dim]}, "parquet_files": 10,
                    "parquet_bytes": parquet_bytes, "arrow_cache_bytes": sum(f.stat().st_size for f in arrow),
                    "tabular_bytes_in_reader": build["tabular_bytes"]},
        "loader": {"batch_size": args.batch_size, "num_workers": args.workers, "persistent_workers": True,
                   "prefetch_factor": 2, "shuffle": True, "warmup_batches": args.warmup,
                   "timed_batches": args.batches, "windows": {"action": "16 frames [0, 15]",
                                                              "observation.state": "[-1, 0] frames"},
                   "worker_init": "each worker reads every frame of every numeric column once (its state after "
                                  "one epoch) before the warmup"},
        "item_us": "microseconds per item (windows as above) in the main process over --items random items, after "
                   "the DataLoader's workers exited and every column was read once",
        "memory": "MiB from /proc/<pid>/smaps_rollup after the timed batches: RSS, PSS (shared pages divided among "
                  "the processes mapping them), USS (private pages); per worker: mean of the workers of a run, "
                  "median over runs",
        "after_first_load_s": build["load_s"],
        **provenance.finish_header(header),
        "torch_threads": 1,
        "summary": summary,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for method, per in summary.items():
        b, a, r = per["before"], per["after"], per["after_vs_before"]
        print(f"{method}: samples/s {b['samples_per_s_median']} -> {a['samples_per_s_median']} "
              f"(x{r['throughput_ratio']}, paired x{r['throughput_ratio_paired_median']}); in-process "
              f"{b['item_us_median']} -> {a['item_us_median']} us/item; per-worker PSS {b['per_worker_mib_median']['pss']} -> "
              f"{a['per_worker_mib_median']['pss']} MiB, USS {b['per_worker_mib_median']['uss']} -> "
              f"{a['per_worker_mib_median']['uss']} MiB, RSS {b['per_worker_mib_median']['rss']} -> "
              f"{a['per_worker_mib_median']['rss']} MiB; total PSS {b['total_pss_mib_median']} -> "
              f"{a['total_pss_mib_median']} MiB")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
