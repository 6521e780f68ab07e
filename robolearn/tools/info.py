"""``python -m robolearn.tools.info <root or repo id> [--validate]``: summarise a LeRobotDataset v3.0 folder.

Prints the version, robot type, fps, episodes, frames, tasks, every feature (dtype, shape, names), each camera's
codec as probed from its first mp4 (not as claimed by info.json), and the on-disk sizes of ``data/``, ``videos/``
and ``meta/``. With ``--validate`` it also runs :func:`robolearn.datasets.validate.validate_dataset` and lists
every problem with its location. Exit code: 0 when clean, 1 when errors were found (``--strict``: warnings too),
2 when the folder cannot be read as a v3.0 dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from robolearn.tools.edit.source import resolve_root
from robolearn.datasets.metadata import LeRobotDatasetMetadata
from robolearn.datasets.validate import has_errors, validate_dataset


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.1f} GiB"


def _names(names: Any, limit: int = 6) -> str:
    if names is None:
        return "-"
    flat = names
    if isinstance(names, dict):
        flat = [x for v in names.values() for x in (v if isinstance(v, list) else [v])]
    while isinstance(flat, list) and len(flat) == 1 and isinstance(flat[0], list):
        flat = flat[0]
    if isinstance(flat, list):
        s = ", ".join(str(x) for x in flat[:limit])
        return s + (f", ... ({len(flat)})" if len(flat) > limit else "")
    return str(flat)


def dataset_summary(root: str | Path) -> dict[str, Any]:
    """Facts about a dataset: ``version, robot_type, fps, episodes, frames, tasks (list of str), features
    ({key: {dtype, shape, names}}), codecs ({video key: probed codec or an error string}), sizes (bytes of
    data/, videos/, meta/)``.

    Raises:
        FileNotFoundError / DatasetFormatError / BackwardCompatibilityError: as
        :class:`~robolearn.datasets.metadata.LeRobotDatasetMetadata`.
    """
    from robolearn.datasets.video import probe_video

    root = Path(root)
    meta = LeRobotDatasetMetadata(root.name, root=root)
    codecs = {}
    for key in meta.video_keys:
        try:
            ep0 = int(meta.episodes.index[0])
            v = probe_video(root / meta.get_video_file_path(ep0, key))
            codecs[key] = f"{v.codec} {v.width}x{v.height} {v.pix_fmt} {v.fps:g} fps"
        except Exception as e:  # noqa: BLE001 - reported, not raised
            codecs[key] = f"unavailable ({type(e).__name__}: {e})"
    return {
        "version": meta.codebase_version,
        "robot_type": meta.robot_type,
        "fps": meta.fps,
        "episodes": meta.total_episodes,
        "frames": meta.total_frames,
        "tasks": list(meta.tasks.index),
        "features": {k: {"dtype": f["dtype"], "shape": list(f.get("shape") or []), "names": f.get("names")}
                     for k, f in meta.features.items()},
        "codecs": codecs,
        "sizes": {d: _size(root / d) for d in ("data", "videos", "meta")},
    }


def print_summary(s: dict[str, Any], root: Path) -> None:
    """Print :func:`dataset_summary` output as text."""
    print(f"dataset   {root}")
    print(f"version   {s['version']}   robot_type {s['robot_type']}   fps {s['fps']}")
    secs = s["frames"] / s["fps"] if s["fps"] else 0
    print(f"episodes  {s['episodes']}   frames {s['frames']} ({secs:.1f} s)   tasks {len(s['tasks'])}")
    for i, t in enumerate(s["tasks"][:10]):
        print(f"  task {i}: {t}")
    if len(s["tasks"]) > 10:
        print(f"  ... {len(s['tasks']) - 10} more tasks")
    print("features")
    for k, f in s["features"].items():
        print(f"  {k:<40} {f['dtype']:<8} {str(f['shape']):<14} {_names(f['names'])}")
    for k, c in s["codecs"].items():
        print(f"video     {k}: {c}")
    sizes = s["sizes"]
    print("sizes     " + "   ".join(f"{d}/ {_fmt_bytes(n)}" for d, n in sizes.items())
          + f"   total {_fmt_bytes(sum(sizes.values()))}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry; returns the exit code (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m robolearn.tools.info", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="dataset folder or repo id under $HF_LEROBOT_HOME")
    p.add_argument("--validate", action="store_true", help="check the dataset and list every problem")
    p.add_argument("--strict", action="store_true", help="with --validate: warnings also give exit code 1")
    p.add_argument("--no-videos", action="store_true", help="with --validate: skip the mp4 checks")
    a = p.parse_args(argv)
    try:
        root = resolve_root(a.dataset)
        print_summary(dataset_summary(root), root)
    except Exception as e:  # noqa: BLE001
        print(f"error: cannot read {a.dataset} as a LeRobotDataset v3.0: {type(e).__name__}: {e}", file=sys.stderr)
        if not a.validate:
            return 2
        root = Path(a.dataset)
    if not a.validate:
        return 0
    problems = validate_dataset(root, check_videos=not a.no_videos)
    n_err = sum(p.severity == "error" for p in problems)
    print(f"validation: {n_err} error(s), {len(problems) - n_err} warning(s)")
    for prob in problems:
        print(f"  {prob}")
    if has_errors(problems) or (a.strict and problems):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
