"""Validate a LeRobotDataset v3.0 folder (a "doctor"): report EVERY problem found, each with its location.

Checks (format: ``docs/dataset_tools.md`` and the v3.0 format notes):

- ``meta/info.json`` loads (version, fps, features); totals (``total_episodes/frames/tasks``) match the tables;
- ``meta/tasks.parquet``: ``task_index`` is ``0..T-1``;
- ``meta/episodes``: ``episode_index`` is ``0..N-1`` in row order, ``dataset_to_index - dataset_from_index ==
  length``, ranges contiguous;
- data parquet files: every file referenced by an episode exists and every file under ``data/`` is referenced;
  columns vs info.json features (missing, unexpected, vector widths, stored type vs declared ``dtype``); float
  columns finite (NaN/inf reported per column with the episodes and the first frame); global ``index`` contiguous ``0..F-1`` over
  the files in path order; per episode: rows in the file the episode row names, row count == ``length``,
  ``index`` range == ``[dataset_from_index, dataset_to_index)``, ``frame_index`` restarting at 0 and counting
  up, timestamps increasing and equal to ``frame_index / fps`` (tolerance ``1e-4`` s), ``task_index`` known;
  ``episode_index`` values that meta/episodes does not list;
- videos: each referenced mp4 exists and demuxes completely (a truncated file has fewer packets than its header
  declares); per episode the number of frames in ``[from_timestamp, from_timestamp + length/fps)`` equals
  ``length``; ``to_timestamp - from_timestamp == length / fps`` (``(length-1)/fps``, a third-party convention,
  is a warning); episodes of one file do not overlap; frames not owned by any episode; declared vs probed codec
  (warning);
- stats: ``meta/stats.json`` and the per-episode ``stats/*`` columns have every stat for every feature, with the
  feature's shape (``(D,)``, ``(1,)`` for scalars, ``(C, 1, 1)`` for cameras, ``count`` ``(1,)``); missing
  quantiles are a warning; non-finite values are errors.

Use :func:`validate_dataset` from Python or ``python -m robolearn.tools.info <root> --validate``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from robolearn.datasets import constants as C
from robolearn.datasets.constants import QUANTILE_KEYS
from robolearn.datasets.errors import empty_dataset_message
from robolearn.datasets.integrity import describe_nonfinite, dtype_mismatch, float_keys, nonfinite_rows
from robolearn.datasets.metadata import load_info, load_stats, load_tasks

TIMESTAMP_TOL_S = 1e-4
_BASE_STATS = ("min", "max", "mean", "std", "count")


@dataclass(frozen=True)
class Problem:
    """One finding. ``location``: file (relative to the root) plus episode/row/key; ``severity``: ``"error"`` or
    ``"warning"`` (warnings are deviations that readers tolerate)."""

    location: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"[{self.severity}] {self.location}: {self.message}"


class _Report:
    def __init__(self, max_per_check: int):
        self.problems: list[Problem] = []
        self.max = max_per_check
        self._counts: dict[str, int] = defaultdict(int)
        self._overflow_severity: dict[str, str] = {}

    def add(self, check: str, location: str, message: str, severity: str = "error") -> None:
        self._counts[check] += 1
        if self._counts[check] <= self.max:
            self.problems.append(Problem(location, message, severity))
        else:
            self._overflow_severity[check] = severity

    def result(self) -> list[Problem]:
        extra = [Problem("(summary)", f"{self._counts[c] - self.max} more '{c}' problem(s) not listed "
                         f"(first {self.max} shown)", sev) for c, sev in self._overflow_severity.items()]
        return self.problems + extra


def _episodes_table(root: Path, rep: _Report) -> pa.Table | None:
    files = sorted((root / C.EPISODES_DIR).glob("**/*.parquet"))
    if not files:
        rep.add("episodes", C.EPISODES_DIR, "no episode metadata files (meta/episodes/chunk-*/file-*.parquet)")
        return None
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f).replace_schema_metadata(None))
        except Exception as e:  # noqa: BLE001 - any read failure is a finding
            rep.add("episodes", str(f.relative_to(root)), f"unreadable parquet: {e}")
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def _check_episodes(t: pa.Table, rep: _Report) -> dict[str, np.ndarray] | None:
    loc = C.EPISODES_DIR
    need = ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index")
    missing = [c for c in need if c not in t.column_names]
    if missing:
        rep.add("episodes", loc, f"missing columns {missing}")
        return None
    cols = {c: t.column(c).to_numpy().astype(np.int64) for c in need}
    ep = cols["episode_index"]
    n = len(ep)
    bad = np.nonzero(ep != np.arange(n))[0]
    for i in bad:
        rep.add("episode_index", f"{loc} row {i}", f"episode_index {ep[i]}, expected {i} (episodes must be 0..N-1 in order)")
    span = cols["dataset_to_index"] - cols["dataset_from_index"]
    for i in np.nonzero(span != cols["length"])[0]:
        rep.add("episode_range", f"{loc} episode {ep[i]}",
                f"dataset_to_index - dataset_from_index = {span[i]} but length = {cols['length'][i]}")
    expected_from = np.concatenate([[0], np.cumsum(cols["length"])[:-1]]) if n else np.zeros(0, np.int64)
    for i in np.nonzero(cols["dataset_from_index"] != expected_from)[0]:
        rep.add("episode_range", f"{loc} episode {ep[i]}",
                f"dataset_from_index = {cols['dataset_from_index'][i]}, expected {expected_from[i]} (sum of the "
                "lengths of the earlier episodes)")
    return cols


def _data_checks(root: Path, info: dict, ep: dict[str, np.ndarray], n_tasks: int, rep: _Report) -> None:
    fps = float(info["fps"])
    feats = info["features"]
    table_keys = [k for k, f in feats.items() if f["dtype"] not in ("video", "language")]
    template = info["data_path"]
    ep_file = {}
    for i, e in enumerate(ep["episode_index"]):
        rel = template.format(chunk_index=int(ep["data/chunk_index"][i]), file_index=int(ep["data/file_index"][i]),
                              episode_index=int(e))
        ep_file[int(e)] = rel
    referenced = sorted(set(ep_file.values()))
    on_disk = sorted(str(p.relative_to(root)) for p in (root / C.DATA_DIR).glob("**/*.parquet"))
    for rel in sorted(set(on_disk) - set(referenced)):
        rep.add("data_files", rel, "data file not referenced by any episode in meta/episodes (its rows are unreachable)")
    files = [r for r in sorted(set(referenced) | set(on_disk)) if (root / r).is_file()]
    for rel in referenced:
        if not (root / rel).is_file():
            eps = [e for e, r in ep_file.items() if r == rel]
            rep.add("data_files", rel, f"missing data file (referenced by episodes {eps[:10]})")

    default = ("index", "episode_index", "frame_index", "timestamp", "task_index")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in default}
    file_of_row: list[np.ndarray] = []
    row_in_file: list[np.ndarray] = []
    for fi, rel in enumerate(files):
        try:
            pf = pq.ParquetFile(root / rel)
            schema = pf.schema_arrow
        except Exception as e:  # noqa: BLE001
            rep.add("data_schema", rel, f"unreadable parquet: {e}")
            continue
        names = set(schema.names)
        miss = [k for k in table_keys if k not in names]
        extra = sorted(names - set(table_keys) - {"__index_level_0__"})
        if miss:
            rep.add("data_schema", rel, f"columns missing for info.json features {miss}")
        if extra:
            rep.add("data_schema", rel, f"columns not declared in info.json features: {extra}")
        for k in table_keys:
            if k not in names:
                continue
            typ = schema.field(k).type
            spec = feats[k]
            width = int(np.prod(spec.get("shape") or (1,)))
            if spec["dtype"] == "image":
                if not pa.types.is_struct(typ):
                    rep.add("data_schema", f"{rel} column {k}", f"image column has type {typ}, expected struct<bytes, path>")
            elif spec["dtype"] == "string":
                if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
                    rep.add("data_schema", f"{rel} column {k}", f"type {typ}, expected string")
            elif pa.types.is_fixed_size_list(typ):
                if typ.list_size != width:
                    rep.add("data_schema", f"{rel} column {k}",
                            f"fixed_size_list of {typ.list_size}, but info.json shape {list(spec['shape'])}")
            elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
                col = pq.read_table(root / rel, columns=[k]).column(k)
                lens = np.unique(pc.list_value_length(col).to_numpy(zero_copy_only=False))
                if lens.tolist() != [width]:
                    rep.add("data_schema", f"{rel} column {k}",
                            f"list lengths {lens.tolist()[:5]}, but info.json shape {list(spec['shape'])}")
            elif width != 1:
                rep.add("data_schema", f"{rel} column {k}", f"scalar column {typ}, but info.json shape "
                        f"{list(spec['shape'])}")
            problem = dtype_mismatch(typ, spec["dtype"])
            if problem:
                rep.add("data_schema", f"{rel} column {k}", problem)
        _nonfinite_checks(root / rel, rel, feats, [k for k in table_keys if k in names], rep)
        have = [k for k in default if k in names]
        t = pq.read_table(root / rel, columns=have)
        for k in default:
            parts[k].append(t.column(k).to_numpy().astype(np.float64 if k == "timestamp" else np.int64)
                            if k in names else np.full(t.num_rows, -1 if k != "timestamp" else np.nan))
        file_of_row.append(np.full(t.num_rows, fi))
        row_in_file.append(np.arange(t.num_rows))
    if not file_of_row:
        return
    cols = {k: np.concatenate(v) for k, v in parts.items()}
    fidx = np.concatenate(file_of_row)
    ridx = np.concatenate(row_in_file)

    def where(pos: int) -> str:
        return f"{files[fidx[pos]]} row {ridx[pos]}"

    index = cols["index"]
    bad = np.nonzero(index != np.arange(len(index)))[0]
    # Report each gap/jump once: positions where the difference to the previous row is not +1.
    jumps = np.nonzero(np.diff(index) != 1)[0] + 1
    if len(index) and index[0] != 0:
        rep.add("index", where(0), f"index starts at {index[0]}, expected 0")
    for p in jumps:
        rep.add("index", where(p), f"index jumps from {index[p - 1]} to {index[p]} (expected {index[p - 1] + 1})")
    if bad.size and not jumps.size and index[0] == 0:
        rep.add("index", where(int(bad[0])), "index is not contiguous 0..N-1")

    known = set(int(e) for e in ep["episode_index"])
    ep_col = cols["episode_index"]
    for e in sorted(set(np.unique(ep_col).tolist()) - known):
        pos = int(np.nonzero(ep_col == e)[0][0])
        rep.add("episode_index", where(pos), f"episode_index {e} is not listed in meta/episodes")
    for i, e in enumerate(ep["episode_index"]):
        e = int(e)
        rows = np.nonzero(ep_col == e)[0]
        loc = f"episode {e}"
        length = int(ep["length"][i])
        if rows.size != length:
            rep.add("episode_rows", loc, f"{rows.size} data rows, but meta/episodes length is {length}")
        if rows.size == 0:
            continue
        in_files = sorted({files[f] for f in fidx[rows]})
        if in_files != [ep_file[e]]:
            rep.add("episode_rows", loc, f"rows are in {in_files}, but meta/episodes points to {ep_file[e]}")
        idx = index[rows]
        lo, hi = int(ep["dataset_from_index"][i]), int(ep["dataset_to_index"][i])
        if idx.min() != lo or idx.max() != hi - 1:
            rep.add("episode_rows", loc, f"index range {int(idx.min())}..{int(idx.max())}, but meta/episodes says "
                    f"[{lo}, {hi})")
        fr = cols["frame_index"][rows]
        badf = np.nonzero(fr != np.arange(rows.size))[0]
        if badf.size:
            p = int(badf[0])
            rep.add("frame_index", where(int(rows[p])),
                    f"episode {e}: frame_index {fr[p]} at row {p} of the episode, expected {p} (frame_index must "
                    f"restart at 0 and count up; {badf.size} row(s) wrong)")
        ts = cols["timestamp"][rows]
        dec = np.nonzero(np.diff(ts) <= 0)[0]
        if dec.size:
            p = int(dec[0]) + 1
            rep.add("timestamp", where(int(rows[p])), f"episode {e}: timestamps not increasing ({ts[p - 1]:.6f} -> "
                    f"{ts[p]:.6f}); {dec.size} place(s)")
        err = np.abs(ts - fr / fps)
        off = np.nonzero(~(err <= TIMESTAMP_TOL_S))[0]
        if off.size:
            p = int(off[0])
            rep.add("timestamp", where(int(rows[p])),
                    f"episode {e}: timestamp {ts[p]:.6f} s != frame_index/fps = {fr[p] / fps:.6f} s "
                    f"(tolerance {TIMESTAMP_TOL_S} s; {off.size} row(s))")
        ti = cols["task_index"][rows]
        badt = np.nonzero((ti < 0) | (ti >= n_tasks))[0]
        if badt.size:
            rep.add("task_index", where(int(rows[badt[0]])), f"episode {e}: task_index {ti[badt[0]]} not in "
                    f"meta/tasks.parquet (0..{n_tasks - 1})")


def _nonfinite_checks(path: Path, rel: str, feats: dict, keys: list[str], rep: _Report) -> None:
    """One ``nonfinite`` error per float column of a data file holding NaN/inf, naming the episodes and first frame."""
    keys = float_keys(feats, keys)
    if not keys:
        return
    try:
        t = pq.read_table(path, columns=keys + [k for k in ("episode_index", "frame_index") if k not in keys])
        cols = {k: _numeric_rows(t.column(k)) for k in keys}
    except Exception as e:  # noqa: BLE001 - reported by the schema checks
        rep.add("nonfinite", rel, f"could not read float columns: {type(e).__name__}: {str(e)[:200]}")
        return
    episode = t.column("episode_index").to_numpy() if "episode_index" in t.column_names else np.full(t.num_rows, -1)
    frame = t.column("frame_index").to_numpy() if "frame_index" in t.column_names else np.arange(t.num_rows)
    for key, rows in nonfinite_rows(cols, keys).items():
        rep.add("nonfinite", f"{rel} column {key}", "non-finite values (NaN/inf): " +
                describe_nonfinite({key: rows}, episode, frame).split(": ", 1)[1])


def _numeric_rows(col: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as ``(N, width)`` float64 (lists flattened), for finiteness checks."""
    n = len(col)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        arr = pc.list_flatten(arr)
    values = arr.to_numpy(zero_copy_only=False).astype(np.float64)
    return values.reshape(n, -1) if n else values.reshape(0, 1)


def _video_checks(root: Path, info: dict, eps: pa.Table, ep: dict[str, np.ndarray], rep: _Report) -> None:
    import av

    from robolearn.datasets.video import probe_video

    fps = float(info["fps"])
    half = 0.5 / fps
    for key, spec in info["features"].items():
        if spec["dtype"] != "video":
            continue
        cols = [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        missing = [c for c in cols if c not in eps.column_names]
        if missing:
            rep.add("video_meta", C.EPISODES_DIR, f"video feature {key!r}: missing columns {missing}")
            continue
        ck, fk, f_ts, t_ts = (eps.column(c).to_numpy() for c in cols)
        by_file: dict[str, list[int]] = defaultdict(list)
        for i in range(len(ck)):
            rel = info["video_path"].format(video_key=key, chunk_index=int(ck[i]), file_index=int(fk[i]),
                                            episode_index=int(ep["episode_index"][i]))
            by_file[rel].append(i)
        declared = (spec.get("info") or {}).get("video.codec")
        for rel, rows in by_file.items():
            path = root / rel
            eps_here = [int(ep["episode_index"][i]) for i in rows]
            if not path.is_file():
                rep.add("video_files", rel, f"missing mp4 (camera {key!r}, episodes {eps_here[:10]})")
                continue
            try:
                with av.open(str(path)) as c:
                    s = c.streams.video[0]
                    tb = s.time_base
                    declared_frames = int(s.frames or 0)
                    pts = np.sort(np.array([float(p.pts * tb) for p in c.demux(s) if p.pts is not None]))
            except Exception as e:  # noqa: BLE001
                rep.add("video_files", rel, f"unreadable mp4: {e}")
                continue
            if declared_frames and len(pts) < declared_frames:
                rep.add("video_files", rel, f"truncated mp4: {len(pts)} of the {declared_frames} frames its header "
                        "declares can be read")
            try:
                codec = probe_video(path).codec
                if declared and codec != declared:
                    rep.add("video_codec", f"{rel}", f"info.json says video.codec={declared!r}, the stream is "
                            f"{codec!r}", "warning")
            except Exception as e:  # noqa: BLE001
                rep.add("video_files", rel, f"cannot probe: {e}")
            owned = np.zeros(len(pts), bool)
            prev_end, prev_ep = None, None
            for i in sorted(rows, key=lambda r: f_ts[r]):
                e, n = int(ep["episode_index"][i]), int(ep["length"][i])
                loc = f"{rel} episode {e}"
                lo, hi = f_ts[i] - half, f_ts[i] + n / fps - half
                inside = (pts >= lo) & (pts < hi)
                owned |= inside
                got = int(inside.sum())
                if got != n:
                    rep.add("video_frames", loc, f"{got} video frames in [{f_ts[i]:.4f}, {f_ts[i] + n / fps:.4f}) s, "
                            f"but the episode has {n} rows")
                dur = t_ts[i] - f_ts[i]
                if abs(dur - n / fps) > TIMESTAMP_TOL_S:
                    if abs(dur - (n - 1) / fps) <= TIMESTAMP_TOL_S:
                        rep.add("to_timestamp_convention", loc, f"to_timestamp - from_timestamp = {dur:.6f} s = "
                                f"(length-1)/fps; lerobot writes length/fps = {n / fps:.6f} s", "warning")
                    else:
                        rep.add("to_timestamp", loc, f"to_timestamp {t_ts[i]:.6f} s, expected from_timestamp + "
                                f"length/fps = {f_ts[i] + n / fps:.6f} s")
                if prev_end is not None and f_ts[i] < prev_end - TIMESTAMP_TOL_S:
                    rep.add("video_overlap", loc, f"from_timestamp {f_ts[i]:.6f} s is before the end {prev_end:.6f} s "
                            f"of episode {prev_ep} in the same file")
                prev_end, prev_ep = f_ts[i] + n / fps, e
            if (~owned).any():
                rep.add("video_frames", rel, f"{int((~owned).sum())} frame(s) not owned by any episode (first at "
                        f"{pts[~owned][0]:.4f} s)")


def _expected_stat_shape(spec: dict) -> tuple[int, ...] | None:
    if spec["dtype"] in ("string", "language"):
        return None
    shape = tuple(int(s) for s in spec["shape"])
    if spec["dtype"] in ("image", "video"):
        c = shape[0] if shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4) else shape[-1]
        return (c, 1, 1)
    return (int(np.prod(shape)),) if len(shape) > 1 else shape


def _check_stat_dict(stats: dict[str, Any], feats: dict, loc: str, rep: _Report, check: str) -> None:
    for key, spec in feats.items():
        shape = _expected_stat_shape(spec)
        if shape is None:
            continue
        if key not in stats:
            rep.add(check, loc, f"no stats for feature {key!r}")
            continue
        for stat in _BASE_STATS + QUANTILE_KEYS:
            if stat not in stats[key]:
                sev = "warning" if stat in QUANTILE_KEYS else "error"
                rep.add(check + ("_quantiles" if sev == "warning" else ""), f"{loc} {key}",
                        f"missing stat {stat!r}", sev)
                continue
            v = np.asarray(stats[key][stat], dtype=np.float64)
            want = (1,) if stat == "count" else shape
            if v.shape != want:
                rep.add(check, f"{loc} {key}/{stat}", f"shape {list(v.shape)}, expected {list(want)} for feature "
                        f"shape {list(spec['shape'])}")
            elif not np.all(np.isfinite(v)):
                rep.add(check, f"{loc} {key}/{stat}", "non-finite values")
    for key in stats:
        if key not in feats:
            rep.add(check, f"{loc} {key}", "stats for a feature that info.json does not declare", "warning")


def _stats_checks(root: Path, info: dict, eps: pa.Table, rep: _Report) -> None:
    feats = info["features"]
    try:
        stats = load_stats(root)
    except Exception as e:  # noqa: BLE001
        rep.add("stats", C.STATS_PATH, f"unreadable: {e}")
        stats = None
    if stats is None:
        rep.add("stats", C.STATS_PATH, "missing (policies need normalisation stats)")
    else:
        _check_stat_dict(stats, feats, C.STATS_PATH, rep, "stats")
    stat_cols = [c for c in eps.column_names if c.startswith("stats/")]
    if not stat_cols:
        rep.add("episode_stats", C.EPISODES_DIR, "no per-episode stats/* columns", "warning")
        return
    per_key: dict[str, list[str]] = defaultdict(list)
    for c in stat_cols:
        _, rest = c.split("/", 1)
        key, stat = rest.rsplit("/", 1)
        per_key[key].append(stat)
    data = {c: eps.column(c).to_pylist() for c in stat_cols}
    for row in range(eps.num_rows):
        e = int(eps.column("episode_index")[row].as_py())
        st = {k: {s: data[f"stats/{k}/{s}"][row] for s in ss if data[f"stats/{k}/{s}"][row] is not None}
              for k, ss in per_key.items()}
        _check_stat_dict(st, feats, f"{C.EPISODES_DIR} episode {e} stats", rep, "episode_stats")


def validate_dataset(root: str | Path, check_videos: bool = True, max_per_check: int = 20) -> list[Problem]:
    """Check a v3.0 dataset folder and return every problem found (empty list: clean).

    Args:
        root: dataset folder.
        check_videos: demux every referenced mp4 (cheap, no decoding) and check frame counts and offsets.
        max_per_check: at most this many findings per check kind are listed (then one "more follow" line).

    Returns:
        ``Problem`` objects (location, message, severity), in check order.
    """
    root = Path(root)
    rep = _Report(max_per_check)
    try:
        info = load_info(root)
    except Exception as e:  # noqa: BLE001 - the doctor reports, it does not raise
        return [Problem(C.INFO_PATH, f"{type(e).__name__}: {e}")]  # nothing else can be checked
    if int(info.get("total_episodes", 0) or 0) == 0 and not (root / C.TASKS_PATH).exists():
        return [Problem(C.INFO_PATH, empty_dataset_message(root))]
    n_tasks = 0
    try:
        tasks = load_tasks(root)
        n_tasks = len(tasks)
        ti = tasks["task_index"].to_numpy()
        if not np.array_equal(ti, np.arange(n_tasks)):
            rep.add("tasks", C.TASKS_PATH, f"task_index values {ti.tolist()[:10]} are not 0..{n_tasks - 1}")
    except Exception as e:  # noqa: BLE001
        rep.add("tasks", C.TASKS_PATH, f"{type(e).__name__}: {e}")
    eps = _guarded(rep, "episodes", C.EPISODES_DIR, lambda: _episodes_table(root, rep))
    ep = _guarded(rep, "episodes", C.EPISODES_DIR, lambda: _check_episodes(eps, rep)) if eps is not None else None
    if ep is not None:
        _guarded(rep, "data", C.DATA_DIR, lambda: _data_checks(root, info, ep, n_tasks, rep))
        if check_videos:
            _guarded(rep, "videos", C.VIDEO_DIR, lambda: _video_checks(root, info, eps, ep, rep))
        totals = {"total_episodes": len(ep["episode_index"]), "total_frames": int(ep["length"].sum()),
                  "total_tasks": n_tasks}
        for k, v in totals.items():
            if info.get(k) != v:
                rep.add("totals", f"{C.INFO_PATH} {k}", f"{info.get(k)!r}, but the tables hold {v}")
    if eps is not None:
        _guarded(rep, "stats", C.STATS_PATH, lambda: _stats_checks(root, info, eps, rep))
    return rep.result()


def _guarded(rep: _Report, check: str, location: str, run: Callable[[], Any]) -> Any:
    """``run()``; a damaged file that a check did not anticipate becomes a finding, not a traceback."""
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - the doctor reports, it does not raise
        rep.add(check, location, f"check stopped on unreadable data: {type(e).__name__}: {str(e)[:300]}")
        return None


def has_errors(problems: list[Problem]) -> bool:
    """True when any problem has severity ``"error"``."""
    return any(p.severity == "error" for p in problems)


__all__ = ["Problem", "validate_dataset", "has_errors", "TIMESTAMP_TOL_S"]
