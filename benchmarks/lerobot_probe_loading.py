"""One data-loading measurement with lerobot's own ``LeRobotDataset`` and a torch ``DataLoader``; prints one JSON line.

This is the lerobot side of ``benchmarks/realistic_loading.py``, run by it with the side venv's interpreter
(``--lerobot-python``, default ``/work/lerobot_venv/bin/python``, which needs ``lerobot[dataset]==0.6.1``; torchcodec
is not needed, decoding goes through PyAV). It imports only the standard library, torch and lerobot — never
robolearn — so it measures lerobot as its users run it:

    /work/lerobot_venv/bin/python benchmarks/lerobot_probe_loading.py --root DATASET --workers 2 \\
        [--batches 50] [--warmup 5] [--batch-size 32] [--image-window 2] [--action-window 50] [--seed 0] [--uint8]

Settings: every camera gets the ``--image-window`` frames ending at the current one
(``delta_timestamps = [-(n-1)/fps, ..., 0]``), ``action`` the ``--action-window`` steps starting at it; the
DataLoader is shuffled (seeded), ``drop_last``, with persistent workers and ``prefetch_factor=2`` when
``--workers`` > 0, and ``video_backend="pyav"``; frames are float32 in [0, 1] (lerobot's default) or, with
``--uint8``, uint8 (``return_uint8=True``). The first ``--warmup`` batches (worker start-up) are not timed.

Output (stdout, last line, JSON): ``samples_per_s``, ``samples``, ``seconds``, ``batches_timed``,
``peak_rss_mib`` (``{"main": MiB, "workers": [MiB, ...]}``: each process's peak resident set, ``VmHWM`` of
``/proc/<pid>/status``, and ``main_now``/``workers_now``: current PSS and private MiB from ``smaps_rollup``, all
read after the timed batches while the persistent workers are still alive),
``image_batch_shape``/``image_dtype``, ``action_batch_shape``, ``video_backend`` and the versions of lerobot,
torch and av. The helpers :func:`peak_rss_mib`, :func:`worker_pids` and :func:`time_loader` are shared with the
robolearn side so both are timed and measured by the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _vm_hwm_mib(pid: int) -> float | None:
    """Peak resident set size (``VmHWM``) of process ``pid`` in MiB, or None if it is gone or unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _smaps_mib(pid: int) -> dict | None:
    """Current ``{"pss": MiB, "private": MiB}`` of process ``pid`` from ``/proc/<pid>/smaps_rollup`` (private =
    ``Private_Clean + Private_Dirty``, the memory only this process holds; PSS shares every shared page among its
    users), or None if unreadable."""
    try:
        fields = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0])  # kB
    except (OSError, ValueError, IndexError):
        return None
    return {"pss": round(fields.get("Pss", 0) / 1024, 1),
            "private": round((fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)) / 1024, 1)}


def worker_pids(parent: int | None = None) -> list[int]:
    """Process ids whose parent is ``parent`` (default: this process), found by scanning ``/proc/<pid>/stat``.

    Returns:
        Sorted pids; empty where ``/proc`` is not available.
    """
    parent = os.getpid() if parent is None else parent
    out = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()  # fields after "pid (comm) ": state, ppid, ...
        if len(rest) > 1 and rest[1] == str(parent):
            out.append(int(d.name))
    return sorted(out)


def peak_rss_mib() -> dict:
    """Memory in MiB of this process (``"main"``) and of each of its child processes (``"workers"``, e.g. live
    DataLoader workers).

    A forked worker's resident set counts the pages it still shares with its parent, so next to the peak (``VmHWM``
    of ``/proc/<pid>/status``) this also reads the current proportional (``pss``) and private (``private``, held by
    that process alone) sizes from ``/proc/<pid>/smaps_rollup``.

    Returns:
        ``{"main": float | None, "workers": [float, ...], "main_now": {"pss", "private"} | None,
        "workers_now": [{"pss", "private"}, ...]}``; None / empty lists where ``/proc`` is unavailable.
    """
    pids = worker_pids()
    return {"main": _vm_hwm_mib(os.getpid()),
            "workers": [m for m in (_vm_hwm_mib(p) for p in pids) if m is not None],
            "main_now": _smaps_mib(os.getpid()),
            "workers_now": [m for m in (_smaps_mib(p) for p in pids) if m is not None]}


def time_loader(loader, batches: int, warmup: int, image_key: str) -> tuple[dict, object]:
    """Fetch ``warmup`` untimed batches, then ``batches`` timed ones, starting new epochs when the loader runs out
    (persistent workers survive epoch ends, as in training).

    Args:
        loader: an iterable of batch dicts holding ``"action"`` (``(B, T, D)``) and ``image_key``.
        batches: number of timed batches (>= 1).
        warmup: number of untimed batches before the clock starts (worker start-up, caches).
        image_key: camera key whose batch shape is reported.

    Returns:
        ``(result, iterator)``: ``result`` has ``samples_per_s``, ``samples``, ``seconds``, ``batches_timed``,
        ``image_batch_shape``, ``image_dtype`` and ``action_batch_shape``; the live iterator is returned so the
        caller can read the workers' memory before they exit.

    Raises:
        ValueError: ``batches`` < 1, or the loader yields no batch at all.
    """
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    it = iter(loader)
    done, samples, t0, batch = 0, 0, None, None
    empty_epochs = 0
    while done < warmup + batches:
        if done == warmup and t0 is None:
            t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            empty_epochs += 1
            if empty_epochs > 1 and batch is None:
                raise ValueError("the DataLoader yields no batch (dataset smaller than one batch with drop_last?)")
            it = iter(loader)
            continue
        done += 1
        if done > warmup:
            samples += int(batch["action"].shape[0])
    elapsed = time.perf_counter() - t0
    result = {
        "samples_per_s": round(samples / elapsed, 2),
        "samples": samples,
        "seconds": round(elapsed, 3),
        "batches_timed": batches,
        "image_batch_shape": list(batch[image_key].shape),
        "image_dtype": str(batch[image_key].dtype),
        "action_batch_shape": list(batch["action"].shape),
    }
    return result, it


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-window", type=int, default=2)
    p.add_argument("--action-window", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--uint8", action="store_true", help="frames as uint8 (return_uint8=True), not float32 in [0, 1]")
    args = p.parse_args()

    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    torch.set_num_threads(1)
    meta = LeRobotDatasetMetadata(f"bench/{args.root.name}", root=args.root)
    fps = meta.fps
    cams = list(meta.video_keys)
    if not cams:
        sys.exit(f"{args.root}: no video feature to load")
    delta = {k: [-(args.image_window - 1 - i) / fps for i in range(args.image_window)] for k in cams}
    delta["action"] = [i / fps for i in range(args.action_window)]
    ds = LeRobotDataset(f"bench/{args.root.name}", root=args.root, delta_timestamps=delta, video_backend="pyav",
                        return_uint8=args.uint8)
    kwargs = {"persistent_workers": True, "prefetch_factor": 2} if args.workers > 0 else {}
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                         drop_last=True, generator=torch.Generator().manual_seed(args.seed), **kwargs)
    result, it = time_loader(loader, args.batches, args.warmup, cams[0])
    result["peak_rss_mib"] = peak_rss_mib()
    del it
    result.update({"library": "lerobot", "num_workers": args.workers, "cameras": cams, "video_backend": "pyav",
                   "versions": {"python": sys.version.split()[0], "lerobot": _version("lerobot"),
                                "torch": torch.__version__, "av": _version("av")}})
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
