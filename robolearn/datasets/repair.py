"""Restore a LeRobotDataset v3.0 folder whose last write was cut (SIGKILL, power loss, full disk).

:class:`~robolearn.datasets.writer.LeRobotDatasetWriter` stages every file of an episode under a hidden
``.<name>.<pid>.<n>.tmp`` name and moves them into place in the order tasks → data → videos → episodes → stats →
``info.json``; ``info.json`` is the commit point. A cut write can therefore leave:

- stray ``.*.tmp`` files (staged files, streaming-encoder outputs, concatenation scratch files);
- a data parquet, an mp4, an episodes-metadata parquet, ``stats.json`` or ``tasks.parquet`` that already holds
  the uncommitted episode (or task) past what ``info.json`` says.

:func:`repair_dataset` truncates every file back to the episodes ``0 .. total_episodes-1`` of ``info.json``
(mp4s by stream copy up to the last committed episode's ``to_timestamp``; files holding only uncommitted
episodes are deleted), recomputes ``stats.json`` from the committed episodes' stats when it differs, and
removes the stray temporary files. It never touches committed episodes. Run it only when no writer is active
on the folder: a live writer's temporary files look the same as a dead one's.

CLI: ``python -m robolearn.datasets.repair <root> [--dry-run]``.
"""

from __future__ import annotations

import argparse
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from robolearn.datasets import constants as C
from robolearn.datasets import parquet_files
from robolearn.datasets.errors import DatasetFormatError, empty_dataset_message


class RepairError(RuntimeError):
    """The dataset is damaged in a way truncation cannot fix (committed data missing)."""


def _tmp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*.tmp") if p.is_file())


def _rewrite_parquet(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f".{path.name}.repair.tmp")
    pq.write_table(table, tmp, compression="snappy")
    os.replace(tmp, path)


def _video_duration_s(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        ends = [(p.pts + (p.duration or 0)) for p in c.demux(s) if p.pts is not None]
        return float(max(ends) * s.time_base) if ends else 0.0


def _truncate_video(path: Path, end_s: float) -> None:
    """Keep the packets of ``path`` whose presentation time is before ``end_s`` (stream copy, no re-encode)."""
    import av

    tmp = path.with_name(f".{path.name}.repair.tmp")
    with av.open(str(path)) as src:
        s = src.streams.video[0]
        limit = Fraction(end_s).limit_denominator(10**6) / s.time_base
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
            o = out.add_stream_from_template(s, opaque=True)
            for p in src.demux(s):
                if p.pts is None or p.pts >= limit - Fraction(1, 2):
                    continue
                p.stream = o
                out.mux(p)
    os.replace(tmp, path)


def _episode_rows(root: Path) -> list[tuple[Path, pa.Table]]:
    return [(f, parquet_files.read_table(f)) for f in sorted((root / C.EPISODES_DIR).glob("chunk-*/file-*.parquet"))]


def _plan(root: Path) -> tuple[list[str], list[tuple[str, Any]]]:
    """Problems found and the actions that fix them (``(kind, args)``); nothing is written.

    Raises:
        RepairError: also for a committed file that cannot be read (naming it).
    """
    try:
        return _plan_unchecked(Path(root))
    except (DatasetFormatError, json.JSONDecodeError, KeyError) as e:
        detail = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise RepairError(f"{detail}. repair truncates interrupted writes; it cannot rebuild a damaged committed "
                          "file: restore that file, or delete the episodes it holds "
                          "(python -m robolearn.tools.edit delete-episodes ...)") from e


def _plan_unchecked(root: Path) -> tuple[list[str], list[tuple[str, Any]]]:
    info_path = root / C.INFO_PATH
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path} does not exist: not a LeRobotDataset folder (nothing was committed)")
    info = json.loads(info_path.read_text())
    n_ep, n_frames, n_tasks = int(info["total_episodes"]), int(info["total_frames"]), int(info["total_tasks"])
    fps = int(info["fps"])
    problems: list[str] = []
    actions: list[tuple[str, Any]] = []
    rel = lambda p: str(Path(p).relative_to(root))  # noqa: E731

    for p in _tmp_files(root):
        problems.append(f"stray temporary file {rel(p)}")
        actions.append(("delete", p))

    # Episodes metadata: keep the rows of committed episodes.
    committed_rows: list[dict[str, Any]] = []
    for f, t in _episode_rows(root):
        ep = t.column("episode_index").to_numpy()
        keep = ep < n_ep
        committed_rows += t.filter(pa.array(keep)).to_pylist()
        if not keep.all():
            problems.append(f"{rel(f)} holds uncommitted episodes {sorted(ep[~keep].tolist())}")
            actions.append(("delete", f) if not keep.any() else ("parquet", (f, t.filter(pa.array(keep)))))
    got = sorted(r["episode_index"] for r in committed_rows)
    if got != list(range(n_ep)):
        raise RepairError(f"{root}: info.json commits {n_ep} episodes but meta/episodes holds {got[:10]}...; "
                          "committed metadata is missing, truncation cannot repair this")
    if sum(r["length"] for r in committed_rows) != n_frames:
        raise RepairError(f"{root}: info.json total_frames={n_frames} differs from the committed episode lengths "
                          f"({sum(r['length'] for r in committed_rows)})")

    # Data files: drop rows of uncommitted episodes.
    data_files = sorted((root / C.DATA_DIR).glob("**/*.parquet"))
    n_rows = 0
    for f in data_files:
        ep = parquet_files.read_table(f, columns=["episode_index"]).column("episode_index").to_numpy()
        keep = ep < n_ep
        n_rows += int(keep.sum())
        if not keep.all():
            problems.append(f"{rel(f)} holds {int((~keep).sum())} rows of uncommitted episodes "
                            f"{sorted(set(ep[~keep].tolist()))}")
            if keep.any():
                t = parquet_files.read_table(f)
                actions.append(("parquet", (f, t.filter(pc.less(t.column("episode_index"), n_ep)))))
            else:
                actions.append(("delete", f))
    if n_rows != n_frames:
        raise RepairError(f"{root}: data files hold {n_rows} committed rows, info.json says {n_frames}")

    # Videos: truncate each file to its last committed episode's end.
    for key, spec in info["features"].items():
        if spec["dtype"] != "video" or not info.get("video_path"):
            continue
        ends: dict[tuple[int, int], float] = {}
        for r in committed_rows:
            cf = (int(r[f"videos/{key}/chunk_index"]), int(r[f"videos/{key}/file_index"]))
            ends[cf] = max(ends.get(cf, 0.0), float(r[f"videos/{key}/to_timestamp"]))
        for f in sorted((root / C.VIDEO_DIR / key).glob("chunk-*/file-*.mp4")):
            cf = (int(f.parent.name.split("-")[1]), int(f.stem.split("-")[1]))
            if cf not in ends:
                problems.append(f"{rel(f)} holds only uncommitted episodes")
                actions.append(("delete", f))
                continue
            dur = _video_duration_s(f)
            if dur > ends[cf] + 0.5 / fps:
                problems.append(f"{rel(f)} runs to {dur:.3f} s, past the last committed episode's end "
                                f"{ends[cf]:.3f} s")
                actions.append(("video", (f, ends[cf])))
            elif dur < ends[cf] - 0.5 / fps:
                raise RepairError(f"{f}: {dur:.3f} s long but committed episodes end at {ends[cf]:.3f} s")

    # Tasks appended by an uncommitted episode.
    tasks_path = root / C.TASKS_PATH
    if tasks_path.is_file():
        t = parquet_files.read_table(tasks_path)
        idx = t.column("task_index").to_numpy()
        if (idx >= n_tasks).any():
            problems.append(f"{rel(tasks_path)} holds uncommitted tasks {sorted(idx[idx >= n_tasks].tolist())}")
            actions.append(("parquet", (tasks_path, t.filter(pc.less(t.column("task_index"), n_tasks)))))

    # stats.json: the aggregate of the committed episodes' stats.
    stats_path = root / C.STATS_PATH
    if committed_rows and any(k.startswith("stats/") for k in committed_rows[0]):
        from robolearn.datasets.stats import aggregate_stats

        per_ep = []
        for r in sorted(committed_rows, key=lambda r: r["episode_index"]):
            ep_stats: dict[str, dict[str, np.ndarray]] = {}
            for col, v in r.items():
                if col.startswith("stats/"):
                    _, key, stat = col.split("/", 2)
                    ep_stats.setdefault(key, {})[stat] = np.asarray(v)
            per_ep.append(ep_stats)
        expected = aggregate_stats(per_ep)
        current = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
        if not _stats_close(current, expected):
            problems.append(f"{rel(stats_path)} does not match the committed episodes' stats")
            actions.append(("stats", (stats_path, expected)))
    return problems, actions


def _stats_close(current: dict, expected: dict) -> bool:
    if set(current) != set(expected):
        return False
    for key, ft in expected.items():
        for stat, v in ft.items():
            cur = current[key].get(stat)
            if cur is None or np.shape(cur) != np.shape(v) or not np.allclose(cur, v, rtol=1e-5, atol=1e-8):
                return False
    return True


def check_dataset(root: str | os.PathLike) -> list[str]:
    """Problems left by an interrupted write (empty when the folder is consistent); writes nothing.

    Raises:
        FileNotFoundError: no ``meta/info.json``.
        RepairError: committed data is missing (not fixable by truncation).
    """
    return _plan(Path(root))[0]


def repair_dataset(root: str | os.PathLike, dry_run: bool = False) -> list[str]:
    """Truncate an interrupted write back to the last committed episode (see the module docstring).

    Returns:
        One line per problem found, describing what was (or, with ``dry_run``, would be) done; empty when the
        dataset was consistent.
    Raises:
        FileNotFoundError: no ``meta/info.json``.
        RepairError: committed data is missing (not fixable by truncation).
    """
    root = Path(root)
    problems, actions = _plan(root)
    if dry_run:
        return [f"would fix: {p}" for p in problems]
    for kind, arg in actions:
        if kind == "delete":
            Path(arg).unlink(missing_ok=True)
        elif kind == "parquet":
            _rewrite_parquet(*arg)
        elif kind == "video":
            _truncate_video(*arg)
        elif kind == "stats":
            from robolearn.datasets.stats import write_stats

            write_stats(arg[1], arg[0])
    return [f"fixed: {p}" for p in problems]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m robolearn.datasets.repair",
                                 description="Truncate a LeRobotDataset whose last write was cut back to its last "
                                             "committed episode.")
    ap.add_argument("root", type=Path, help="dataset folder (with meta/info.json)")
    ap.add_argument("--dry-run", action="store_true", help="only report what would be fixed")
    a = ap.parse_args(argv)
    try:
        lines = repair_dataset(a.root, dry_run=a.dry_run)
    except (RepairError, FileNotFoundError) as e:
        print(f"{a.root}: cannot repair: {e}")
        return 1
    info = json.loads((a.root / C.INFO_PATH).read_text())
    for line in lines:
        print(line)
    print(f"{a.root}: {'consistent' if not lines else ('would be repaired' if a.dry_run else 'repaired')}; "
          f"{info['total_episodes']} committed episodes, {info['total_frames']} frames")
    if int(info["total_episodes"]) == 0:
        print(empty_dataset_message(a.root))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
