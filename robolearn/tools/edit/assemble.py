"""``DatasetAssembler``: write a new LeRobotDataset v3.0 folder from whole episodes taken from other datasets.

The dataset tools (v2.1 conversion, delete / split / merge / rename / remove / re-encode) all reduce to "take
these episodes, in this order, from these sources, and write them as a fresh dataset". The assembler does that
at the file level, without going through per-frame ``add_frame`` calls:

- tabular rows are kept as arrow tables (values untouched); ``episode_index``, ``index`` and ``task_index`` are
  renumbered (episodes ``0..N-1`` in the order added, ``index`` contiguous, tasks in first-seen order);
- data parquet files roll over at ``data_files_size_in_mb`` (uncompressed arrow size, the rule of lerobot's v2.1
  converter), one row group per episode, lerobot's column types (``fixed_size_list`` vectors) and the HF
  ``huggingface`` schema metadata;
- each camera's episode mp4 segments are concatenated by stream copy (``video_encode.concatenate_video_files``),
  rolling over when ``size(current) + size(next) >= video_files_size_in_mb``; ``from_timestamp`` is the summed
  duration of the earlier segments in the file and ``to_timestamp = from_timestamp + segment duration``;
- per-episode stats (with quantiles) are recomputed from the rows and from a decoded sample of video frames,
  aggregated into ``meta/stats.json``; ``meta/episodes``, ``meta/tasks.parquet`` and ``meta/info.json`` follow
  the lerobot 0.6.1 layout (see ``robolearn/datasets/writer.py``).

Nothing is written outside ``out_root``; the folder must not exist. Temporary segment files live in
``out_root/.assemble_tmp`` and are deleted by :meth:`DatasetAssembler.finish`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robolearn.datasets import constants as C
from robolearn.tools.edit.video_ops import (
    SampledFrames,
    cut_segment_copy,
    encoder_for_codec,
    reencode_segment,
    stats_frames,
)
from robolearn.datasets.stats import STAT_KEYS, aggregate_stats, compute_episode_stats, write_stats
from robolearn.datasets.video import probe_video
from robolearn.datasets.video_encode import concatenate_video_files, get_video_duration_s, probe_video_info

_MB = 1024 * 1024
_CAMERAS = ("video", "image")
_NO_STATS = ("string", "language")


@dataclass
class VideoRef:
    """Where one episode's frames of one camera live in a source mp4.

    Attributes:
        path: source mp4.
        from_s: time (s) of the episode's first frame inside ``path``.
        whole_file: True when ``path`` holds exactly this episode (v2.1 layout); it is then used as is.
    """

    path: Path
    from_s: float = 0.0
    whole_file: bool = False


@dataclass
class EpisodeSource:
    """One episode to write.

    Attributes:
        table: the episode's rows (all non-video feature columns, output names), in frame order.
        tasks: the task string of every row (``len(tasks) == table.num_rows``).
        videos: ``{video_key: VideoRef}`` for every video feature of the output.
        label: human-readable origin for error messages (e.g. ``"<root> episode 7"``).
    """

    table: pa.Table
    tasks: list[str]
    videos: dict[str, VideoRef] = field(default_factory=dict)
    label: str = ""


def arrow_type(key: str, spec: Mapping[str, Any]) -> tuple[dict[str, Any], pa.DataType]:
    """``(HF datasets feature JSON, arrow type)`` of a data-parquet column, as lerobot writes them.

    Raises:
        ValueError: unsupported dtype or a numeric feature with more than one dimension.
    """
    dtype = spec["dtype"]
    shape = [int(s) for s in spec.get("shape") or [1]]
    if dtype == "image":
        return {"_type": "Image"}, pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    if dtype == "string":
        return {"dtype": "string", "_type": "Value"}, pa.string()
    try:
        value_type = pa.from_numpy_dtype(np.dtype(dtype))
    except TypeError as e:
        raise ValueError(f"feature '{key}': unsupported dtype {dtype!r}") from e
    if shape == [1]:
        return {"dtype": dtype, "_type": "Value"}, value_type
    if len(shape) == 1:
        return ({"feature": {"dtype": dtype, "_type": "Value"}, "length": shape[0], "_type": "List"},
                pa.list_(pa.field("element", value_type), shape[0]))
    raise ValueError(f"feature '{key}': shape {shape} has more than one dimension; only 1-D vectors are supported")


def column_to_numpy(col: pa.ChunkedArray | pa.Array, key: str, width: int) -> np.ndarray:
    """A numeric column as ``(T,)`` (width 1) or ``(T, width)``; list columns are flattened.

    Raises:
        ValueError: the column does not hold ``width`` values per row.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        arr = arr.flatten()
    values = arr.to_numpy(zero_copy_only=False)
    if values.shape[0] != n * width:
        raise ValueError(f"column '{key}': {values.shape[0]} values for {n} rows, expected {width} per row")
    return values if width == 1 else values.reshape(n, width)


def _decode_png_sample(col: pa.ChunkedArray, n: int) -> SampledFrames:
    import io

    from PIL import Image

    from robolearn.datasets.stats import sample_indices

    arr = col.combine_chunks()
    raw = arr.field("bytes")
    frames = {}
    for i in sample_indices(n):
        img = np.asarray(Image.open(io.BytesIO(raw[int(i)].as_py())).convert("RGB"))
        frames[int(i)] = img
    return SampledFrames(n, frames)


class DatasetAssembler:
    """Write episodes from other datasets into a new v3.0 folder (see the module docstring).

    Args:
        out_root: output folder; must not exist.
        repo_id: recorded for the HF schema fingerprint only.
        fps: frames per second (int > 0).
        features: output feature dicts (the 5 default features included), in output order. Video features may
            carry an ``info`` block; it is replaced by the probe of the first written mp4.
        robot_type: recorded in info.json.
        data_files_size_in_mb, video_files_size_in_mb, chunks_size: roll-over settings (MB = 2**20 bytes).
        reencode: None → keep video streams (stream copy; a segment whose cut is not on a keyframe is
            re-encoded in its own codec). Otherwise ``{"vcodec", "crf", "g", "preset", "pix_fmt"}``: every
            segment is decoded and re-encoded with these settings.
        extra_info: more info.json keys to keep (e.g. ``tools``).

    Raises:
        FileExistsError: ``out_root`` exists.
    """

    def __init__(self, out_root: str | Path, repo_id: str, fps: int, features: Mapping[str, Mapping[str, Any]],
                 robot_type: str | None = None, data_files_size_in_mb: float = C.DEFAULT_DATA_FILE_SIZE_IN_MB,
                 video_files_size_in_mb: float = C.DEFAULT_VIDEO_FILE_SIZE_IN_MB,
                 chunks_size: int = C.DEFAULT_CHUNK_SIZE, reencode: Mapping[str, Any] | None = None,
                 extra_info: Mapping[str, Any] | None = None):
        self.root = Path(out_root)
        if self.root.exists():
            raise FileExistsError(f"output folder {self.root} already exists; dataset tools only write new datasets")
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive int, got {fps!r}")
        missing = [k for k in C.DEFAULT_FEATURES if k not in features]
        if missing:
            raise ValueError(f"features lack the default features {missing}")
        self.repo_id = repo_id
        self.fps = int(fps)
        self.features = json.loads(json.dumps(features))
        self.robot_type = robot_type
        self.data_mb = data_files_size_in_mb
        self.video_mb = video_files_size_in_mb
        self.chunks_size = int(chunks_size)
        self.reencode = dict(reencode) if reencode else None
        self.extra_info = dict(extra_info or {})
        self.video_keys = [k for k, f in self.features.items() if f["dtype"] == "video"]
        self.table_keys = [k for k, f in self.features.items() if f["dtype"] != "video"]
        hf, fields = {}, []
        for k in self.table_keys:
            hf[k], typ = arrow_type(k, self.features[k])
            fields.append(pa.field(k, typ))
        self._hf = hf
        self.schema = pa.schema(fields)
        self.root.mkdir(parents=True)
        self._tmp = self.root / ".assemble_tmp"
        self._tmp.mkdir()
        self.tasks: dict[str, int] = {}
        self.rows: list[dict[str, Any]] = []
        self.ep_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.total_frames = 0
        self._data_cf = (0, 0)
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self._segments: dict[str, list[tuple[Path, bool]]] = {k: [] for k in self.video_keys}
        self._codec: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------------ add

    def add_episode(self, ep: EpisodeSource) -> int:
        """Append one episode; returns its new ``episode_index``.

        Raises:
            ValueError: missing/extra columns, ``len(tasks) != rows``, an empty episode, or a video segment that
                does not hold exactly the episode's frames (names ``ep.label`` and the file).
            FileNotFoundError: a referenced video file is missing (names it and the episode).
        """
        t = ep.table
        n = t.num_rows
        where = ep.label or f"episode {len(self.rows)}"
        if n == 0:
            raise ValueError(f"{where}: episode has no rows")
        if len(ep.tasks) != n:
            raise ValueError(f"{where}: {len(ep.tasks)} task strings for {n} rows")
        cols = set(t.column_names)
        missing = [k for k in self.table_keys if k not in cols]
        extra = sorted(cols - set(self.table_keys))
        if missing or extra:
            raise ValueError(f"{where}: data columns do not match the features: missing {missing}, unexpected {extra}")
        vmissing = [k for k in self.video_keys if k not in ep.videos]
        if vmissing:
            raise ValueError(f"{where}: no video given for {vmissing}")

        ep_idx = len(self.rows)
        start = self.total_frames
        for task in ep.tasks:
            if task not in self.tasks:
                self.tasks[task] = len(self.tasks)
        new_cols = {
            "episode_index": pa.array(np.full(n, ep_idx, np.int64)),
            "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "task_index": pa.array(np.array([self.tasks[s] for s in ep.tasks], np.int64)),
        }
        arrays = []
        for fld in self.schema:
            col = new_cols[fld.name] if fld.name in new_cols else t.column(fld.name)
            try:
                arrays.append(col.cast(fld.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise ValueError(f"{where}: column '{fld.name}' of type {col.type} cannot be stored as "
                                 f"{fld.type}: {e}") from None
        table = pa.Table.from_arrays(arrays, schema=self.schema)

        # ---- stats (numeric columns from the rows, cameras from a decoded sample)
        data: dict[str, Any] = {}
        for k in self.table_keys:
            spec = self.features[k]
            if spec["dtype"] in _NO_STATS:
                continue
            if spec["dtype"] == "image":
                data[k] = _decode_png_sample(table.column(k), n)
            else:
                data[k] = column_to_numpy(table.column(k), k, int(np.prod(spec["shape"])))
        for k in self.video_keys:
            seg = self._segment(ep.videos[k], k, n, where)
            data[k] = stats_frames(seg, 0.0, n, self.fps)
        stats = compute_episode_stats(data, self.features)

        # ---- data file roll-over (uncompressed arrow size)
        if self._pending and (self._pending_bytes + table.nbytes) / _MB >= self.data_mb:
            self._flush_data()
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        self.rows.append({
            "episode_index": ep_idx,
            "tasks": sorted(set(ep.tasks), key=lambda s: self.tasks[s]),
            "length": n,
            "data/chunk_index": self._data_cf[0],
            "data/file_index": self._data_cf[1],
            "dataset_from_index": start,
            "dataset_to_index": start + n,
        })
        self.ep_stats.append(stats)
        self.total_frames += n
        return ep_idx

    def _segment(self, ref: VideoRef, key: str, n: int, where: str) -> Path:
        """An mp4 holding exactly this episode's ``n`` frames starting at time 0."""
        src = Path(ref.path)
        if not src.is_file():
            raise FileNotFoundError(f"{where}: video file for '{key}' not found: {src}")
        out = self._tmp / f"{key}.{len(self.rows):06d}.mp4"
        codec = probe_video(src).codec
        if self.reencode is not None:
            enc = self.reencode
            reencode_segment(src, ref.from_s, n, self.fps, out, enc["vcodec"], enc)
            self._segments[key].append((out, True))
            return out
        prev = self._codec.setdefault(key, codec)
        if prev != codec:
            raise ValueError(f"{where}: '{key}' video codec {codec!r} differs from earlier episodes' {prev!r}; "
                             "use reencode-videos to unify codecs")
        if ref.whole_file:
            self._segments[key].append((src, False))
            return src
        if not cut_segment_copy(src, ref.from_s, n, self.fps, out):
            reencode_segment(src, ref.from_s, n, self.fps, out, encoder_for_codec(codec))
        self._segments[key].append((out, True))
        return out

    def _next_cf(self, cf: tuple[int, int]) -> tuple[int, int]:
        return (cf[0] + 1, 0) if cf[1] == self.chunks_size - 1 else (cf[0], cf[1] + 1)

    def _flush_data(self) -> None:
        if not self._pending:
            return
        path = self.root / C.DEFAULT_DATA_PATH.format(chunk_index=self._data_cf[0], file_index=self._data_cf[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        feats = json.dumps({"info": {"features": self._hf}})
        fp = hashlib.sha256(f"{self.repo_id}|{feats}|{path.name}".encode()).hexdigest()[:16]
        meta = {b"huggingface": json.dumps({"info": {"features": self._hf}, "fingerprint": fp}).encode()}
        schema = self.schema.with_metadata(meta)
        with pq.ParquetWriter(path, schema, compression="snappy") as pw:
            for t in self._pending:
                pw.write_table(t.replace_schema_metadata(meta))
        self._pending, self._pending_bytes = [], 0
        self._data_cf = self._next_cf(self._data_cf)

    # --------------------------------------------------------------------------------------------- finish

    def _write_videos(self) -> dict[str, dict[str, Any]]:
        infos: dict[str, dict[str, Any]] = {}
        for key in self.video_keys:
            segs = self._segments[key]
            if len(segs) != len(self.rows):
                raise RuntimeError(f"'{key}': {len(segs)} video segments for {len(self.rows)} episodes")
            groups: list[list[int]] = []
            size = 0
            for i, (p, _) in enumerate(segs):
                s = p.stat().st_size
                if groups and (size + s) / _MB < self.video_mb:
                    groups[-1].append(i)
                    size += s
                else:
                    groups.append([i])
                    size = s
            cf = (0, 0)
            for g in groups:
                out = self.root / C.DEFAULT_VIDEO_PATH.format(video_key=key, chunk_index=cf[0], file_index=cf[1])
                out.parent.mkdir(parents=True, exist_ok=True)
                paths = [segs[i][0] for i in g]
                if len(paths) == 1:
                    shutil.copyfile(paths[0], out)
                else:
                    concatenate_video_files(paths, out)
                t0 = 0.0
                for i in g:
                    dur = get_video_duration_s(segs[i][0])
                    row = self.rows[i]
                    row[f"videos/{key}/chunk_index"] = cf[0]
                    row[f"videos/{key}/file_index"] = cf[1]
                    row[f"videos/{key}/from_timestamp"] = t0
                    row[f"videos/{key}/to_timestamp"] = t0 + dur
                    t0 += dur
                if key not in infos:
                    extra = {}
                    if self.reencode is not None:
                        extra = {"video.g": self.reencode.get("g"), "video.crf": self.reencode.get("crf"),
                                 "video.preset": self.reencode.get("preset")}
                    infos[key] = probe_video_info(out, extra)
                cf = self._next_cf(cf)
        return infos

    def _episodes_schema(self) -> pa.Schema:
        i64, f64 = pa.int64(), pa.float64()
        fields = [pa.field("episode_index", i64), pa.field("tasks", pa.list_(pa.field("element", pa.string()))),
                  pa.field("length", i64), pa.field("data/chunk_index", i64), pa.field("data/file_index", i64),
                  pa.field("dataset_from_index", i64), pa.field("dataset_to_index", i64)]
        for key in self.video_keys:
            fields += [pa.field(f"videos/{key}/chunk_index", i64), pa.field(f"videos/{key}/file_index", i64),
                       pa.field(f"videos/{key}/from_timestamp", f64), pa.field(f"videos/{key}/to_timestamp", f64)]
        for key, spec in self.features.items():
            if spec["dtype"] in _NO_STATS:
                continue
            depth = 3 if spec["dtype"] in _CAMERAS else 1
            for stat in STAT_KEYS:
                leaf = i64 if stat == "count" else f64
                typ = leaf
                for _ in range(1 if stat == "count" else depth):
                    typ = pa.list_(pa.field("element", typ))
                fields.append(pa.field(f"stats/{key}/{stat}", typ))
        fields += [pa.field("meta/episodes/chunk_index", i64), pa.field("meta/episodes/file_index", i64)]
        return pa.schema(fields)

    def _write_tasks(self) -> None:
        import pandas as pd

        names = sorted(self.tasks, key=lambda s: self.tasks[s])
        df = pd.DataFrame({"task_index": np.array([self.tasks[s] for s in names], np.int64)},
                          index=pd.Index(names, name="task"))
        df.to_parquet(self.root / C.TASKS_PATH)

    def finish(self) -> Path:
        """Write the remaining data file, the videos, ``meta/episodes``, tasks, stats.json and info.json.

        Returns:
            The output root.

        Raises:
            ValueError: no episode was added.
        """
        if not self.rows:
            shutil.rmtree(self.root, ignore_errors=True)
            raise ValueError(f"{self.root}: no episodes to write")
        try:
            self._flush_data()
            infos = self._write_videos()
            for key, vinfo in infos.items():
                old = self.features[key].get("info") or {}
                if self.reencode is not None:
                    old = {}
                self.features[key]["info"] = {**old, **vinfo}
            schema = self._episodes_schema()
            for row, st in zip(self.rows, self.ep_stats):
                for key, spec in self.features.items():
                    if spec["dtype"] in _NO_STATS:
                        continue
                    for stat in STAT_KEYS:
                        row[f"stats/{key}/{stat}"] = np.asarray(st[key][stat]).tolist()
            # Episodes metadata files roll over at the data size limit (estimated from the arrow size).
            meta_cf, batch = (0, 0), []
            batches = []
            for row in self.rows:
                row_bytes = len(json.dumps(row, default=float))
                if batch and (sum(b[1] for b in batch) + row_bytes) / _MB >= self.data_mb:
                    batches.append((meta_cf, batch))
                    meta_cf, batch = self._next_cf(meta_cf), []
                batch.append((row, row_bytes))
            batches.append((meta_cf, batch))
            for cf, b in batches:
                for row, _ in b:
                    row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = cf
                path = self.root / C.DEFAULT_EPISODES_PATH.format(chunk_index=cf[0], file_index=cf[1])
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist([r for r, _ in b], schema=schema), path, compression="snappy")
            self._write_tasks()
            write_stats(aggregate_stats(self.ep_stats), self.root / C.STATS_PATH)
            info = {
                "codebase_version": C.CODEBASE_VERSION,
                "robot_type": self.robot_type,
                "total_episodes": len(self.rows),
                "total_frames": self.total_frames,
                "total_tasks": len(self.tasks),
                "chunks_size": self.chunks_size,
                "data_files_size_in_mb": self.data_mb,
                "video_files_size_in_mb": self.video_mb,
                "fps": self.fps,
                "splits": {"train": f"0:{len(self.rows)}"},
                "data_path": C.DEFAULT_DATA_PATH,
                "video_path": C.DEFAULT_VIDEO_PATH if self.video_keys else None,
                "features": self.features,
                **self.extra_info,
            }
            with open(self.root / C.INFO_PATH, "w") as f:
                json.dump(info, f, indent=4)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return self.root


def default_feature_order(features: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Features with the 5 default ones moved to the end (lerobot's order), other keys kept in order."""
    out = {k: dict(v) for k, v in features.items() if k not in C.DEFAULT_FEATURES}
    for k in C.DEFAULT_FEATURES:
        out[k] = dict(features[k]) if k in features else dict(C.DEFAULT_FEATURES[k])
    return out

