"""``LeRobotDataset``: a map-style reader for LeRobotDataset v3.0 folders (lerobot's item layout).

The tabular frames of the selected episodes go through Hugging Face ``datasets``: the first load reads and checks
their parquet files and writes the rows to a memory-mapped Arrow cache file (:mod:`robolearn.datasets.arrow_cache`),
later loads map that file. :attr:`LeRobotDataset.hf_dataset` is that ``datasets.Dataset``; ``__getitem__`` indexes
zero-copy numpy views of its buffers (with a vectorized window gather for ``delta_timestamps``) plus, for video
features, decodes frames through :class:`robolearn.datasets.video.VideoFrameReader` (lazy per-process containers and
a whole-file decoded-frame cache). The dataset is picklable (the frames travel as the cache file's path) and safe
to use with forked or spawned DataLoader workers, which share the mapped frames instead of copying them.
"""

from __future__ import annotations

import bisect
import io
import math
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from robolearn.datasets import arrow_cache
from robolearn.datasets.constants import INFO_PATH
from robolearn.datasets.errors import DatasetFormatError
from robolearn.datasets.integrity import check_frame_times, find_nonfinite
from robolearn.datasets.metadata import LeRobotDatasetMetadata
from robolearn.datasets.video import VideoFrameReader
from robolearn.features import camera_shape_chw

__all__ = ["LeRobotDataset", "check_delta_timestamps", "get_delta_indices"]

_INDEX_KEYS = ("index", "episode_index", "frame_index", "task_index")
_SUPPORTED_BACKENDS = (None, "pyav", "video_reader")


def check_delta_timestamps(
    delta_timestamps: Mapping[str, Sequence[float]], fps: float, tolerance_s: float, features: Iterable[str] | None = None
) -> None:
    """Validate ``{key: [seconds, ...]}``.

    Raises:
        KeyError: a key that is not in ``features`` (when given); the message names it.
        ValueError: a delta that is not a multiple of ``1/fps`` within ``tolerance_s`` seconds (names key and value),
            or an empty / non-numeric list.
    """
    feats = set(features) if features is not None else None
    for key, deltas in delta_timestamps.items():
        if feats is not None and key not in feats:
            raise KeyError(
                f"delta_timestamps key {key!r} is not a feature of this dataset (features: {sorted(feats)})"
            )
        if isinstance(deltas, (str, bytes)) or not isinstance(deltas, Iterable):
            raise ValueError(f"delta_timestamps[{key!r}] must be a list of seconds, got {deltas!r}")
        deltas = list(deltas)
        if not deltas:
            raise ValueError(f"delta_timestamps[{key!r}] is empty")
        for d in deltas:
            try:
                d = float(d)
            except (TypeError, ValueError):
                raise ValueError(f"delta_timestamps[{key!r}] has a non-numeric value {d!r}") from None
            if not math.isfinite(d) or abs(d - round(d * fps) / fps) > tolerance_s:
                raise ValueError(
                    f"delta_timestamps[{key!r}] value {d} s is not a multiple of 1/fps = {1 / fps:.6g} s "
                    f"(fps={fps}) within tolerance_s={tolerance_s}"
                )


def get_delta_indices(delta_timestamps: Mapping[str, Sequence[float]], fps: float) -> dict[str, np.ndarray]:
    """``{key: round(delta * fps)}`` as int64 arrays (frame offsets)."""
    return {k: np.asarray([round(float(d) * fps) for d in v], dtype=np.int64) for k, v in delta_timestamps.items()}


def _flatten_list_column(col: pa.ChunkedArray, key: str, path: Path, n: int, width: int) -> np.ndarray:
    """Flatten (possibly nested) list / fixed_size_list columns to a 1-D numpy array of n*width values."""
    arr = col
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        lengths = pc.list_value_length(arr)
        if lengths.null_count:
            raise DatasetFormatError(f"{path}: column {key!r} has null rows")
        arr = pc.list_flatten(arr)
    values = arr.to_numpy() if isinstance(arr, pa.Array) else arr.to_numpy()
    if values.shape[0] != n * width:
        raise DatasetFormatError(
            f"{path}: column {key!r} holds {values.shape[0]} values for {n} rows; info.json shape implies {width} per row"
        )
    return values


def _column_to_numpy(col: pa.ChunkedArray, spec: dict, key: str, path: Path) -> np.ndarray:
    dtype = spec["dtype"]
    n = len(col)
    if dtype == "image":
        if not pa.types.is_struct(col.type):
            raise DatasetFormatError(f"{path}: image column {key!r} must be struct<bytes, path>, got {col.type}")
        combined = col.combine_chunks()
        names = [combined.type.field(i).name for i in range(combined.type.num_fields)]
        raw = combined.field("bytes").to_pylist() if "bytes" in names else [None] * n
        paths = combined.field("path").to_pylist() if "path" in names else [None] * n
        out = np.empty(n, dtype=object)
        for i, (b, p) in enumerate(zip(raw, paths)):
            out[i] = b if b is not None else p
        return out
    if dtype in ("string", "language"):
        out = np.empty(n, dtype=object)
        out[:] = col.to_pylist()
        return out
    shape = tuple(spec["shape"])
    width = int(np.prod(shape))
    t = col.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        values = _flatten_list_column(col, key, path, n, width)
    else:
        if width != 1:
            raise DatasetFormatError(f"{path}: column {key!r} is a scalar column but info.json shape is {list(shape)}")
        values = col.to_numpy()
    if key in _INDEX_KEYS:
        target = np.int64
    else:
        target = np.float32  # numeric features (float, int, bool) are served as float32
    values = np.asarray(values, dtype=target)
    if width == 1 and len(shape) == 1:
        return values.reshape(n)
    return values.reshape((n, *shape))


class LeRobotDataset(torch.utils.data.Dataset):
    """Map-style dataset over a LeRobotDataset v3.0 folder (or Hub repo), returning lerobot's item layout.

    Item (``dataset[i]``), ``i`` in ``[0, len(dataset))`` over the frames of the selected episodes in global
    ``index`` order:

    - numeric features (float, int or bool in the files): float32 tensors; shape ``(1,)`` features are 0-d,
      vectors ``(D,)``;
    - ``index``, ``episode_index``, ``frame_index``, ``task_index``: int64 0-d; ``timestamp``: float32 0-d (seconds);
    - camera features (``video`` and ``image``): float32 ``(C, H, W)`` in [0, 1], or uint8 if ``return_uint8``;
    - ``task``: the task string;
    - for each key of ``delta_timestamps``: a leading time dim ``T`` (vectors ``(T, D)``, cameras ``(T, C, H, W)``)
      and ``<key>_is_pad``: bool ``(T,)``, True where the requested frame lies outside the episode (the value there
      repeats the first / last frame of the episode).

    Args:
        repo_id: ``"owner/name"``.
        root: local dataset folder; None → ``$HF_LEROBOT_HOME/<repo_id>`` or the Hub (see :mod:`.hub`), downloading
            only ``meta/`` and the data / video files of the selected episodes.
        episodes: episode indices to load (only their data files are read); None → all.
        delta_timestamps: ``{key: [seconds, ...]}`` offsets relative to the current frame; each must be a multiple
            of ``1/fps`` within ``tolerance_s``.
        tolerance_s: seconds; tolerance for delta checks and for matching decoded video frames to their times.
        revision: Hub revision (default tag ``"v3.0"``).
        video_backend: ``None`` / ``"pyav"`` (``"video_reader"`` is an alias); ``"torchcodec"`` falls back to PyAV with
            a warning.
        image_transforms: callable applied to each camera tensor (float ``(C,H,W)`` or ``(T,C,H,W)``).
        download_videos: False drops the video features: no mp4 is downloaded or opened and items have no video keys
            (tabular-only loading, e.g. for datasets whose mp4s are absent).
        return_uint8: return camera frames as uint8 instead of float32 in [0, 1].
        video_cache_mb: per-process budget (MiB) of the whole-file decoded-frame cache; 0 disables it (seek path
            only). See :class:`~robolearn.datasets.video.VideoFrameReader`.
        nonfinite: a NaN or inf in a float feature is an error (``"error"``, naming the key, episodes and first
            frame) or the frame is left out (``"drop"``: windows then skip it; the statistics in ``meta/stats.json``
            may be non-finite too, :class:`~robolearn.datamodules.lerobot.LeRobotDataModule` recomputes them).
        cache_dir: folder of the Arrow cache files (see :mod:`robolearn.datasets.arrow_cache`); None →
            ``$HF_DATASETS_CACHE/robolearn_lerobot`` (``~/.cache/huggingface/datasets/robolearn_lerobot``). The
            dataset folder itself is only read (it may be read-only). The first load of a file set and episode
            selection writes the file (about the size of the uncompressed columns); later loads map it. If it cannot
            be written, a warning says so and the frames are held in memory.

    Attributes:
        episode_indices: int64 ``(E,)`` selected episode indices, in dataset order.
        ep_from, ep_to: int64 ``(E,)`` positions ``[from, to)`` of each selected episode in this dataset (0..len).
        episode_data_index: ``{"from": LongTensor (E,), "to": LongTensor (E,)}``, the same as tensors.
        hf_dataset: the frames as a ``datasets.Dataset`` (lerobot's columns and types; see the property).
        cache_file: the Arrow file ``hf_dataset`` maps (None when held in memory).

    Raises:
        FileNotFoundError: a metadata or data file is missing (names it). A missing *video* file only raises when an
            item needs it (naming the file and the episode).
        KeyError: an unknown episode, or a ``delta_timestamps`` key that is not a feature.
        ValueError: a misaligned delta; ``DatasetFormatError`` / ``BackwardCompatibilityError`` (ValueErrors) for
            malformed or old datasets: unreadable parquet, a column whose stored dtype or shape disagrees with
            ``info.json``, timestamps that are not ``frame_index / fps``, NaN/inf with ``nonfinite="error"`` (each
            message names the file or folder, the key and the first episode/frame concerned).
            ``FrameTimestampError`` (ValueError) from ``__getitem__`` when a decoded frame is farther than
            ``tolerance_s`` from the requested time.
    """

    def __init__(
        self,
        repo_id: str,
        root: str | Path | None = None,
        episodes: Sequence[int] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        tolerance_s: float = 1e-4,
        revision: str | None = None,
        video_backend: str | None = None,
        image_transforms: Callable | None = None,
        download_videos: bool = True,
        return_uint8: bool = False,
        video_cache_mb: float = 512,
        nonfinite: str = "error",
        cache_dir: str | Path | None = None,
    ):
        super().__init__()
        if nonfinite not in ("error", "drop"):
            raise ValueError(f"nonfinite must be 'error' or 'drop', got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.repo_id = repo_id
        self.revision = revision
        self.tolerance_s = float(tolerance_s)
        self.image_transforms = image_transforms
        self.download_videos = bool(download_videos)
        self.return_uint8 = bool(return_uint8)
        if video_backend not in _SUPPORTED_BACKENDS:
            if video_backend == "torchcodec":
                warnings.warn("video_backend='torchcodec' is not supported by robolearn; using PyAV", stacklevel=2)
            else:
                raise ValueError(f"video_backend must be one of None, 'pyav', 'video_reader'; got {video_backend!r}")
        self.video_backend = "pyav"

        from_hub = False
        if root is None:
            from robolearn.datasets.hub import get_lerobot_home

            from_hub = not (get_lerobot_home() / repo_id / INFO_PATH).is_file()
        self.meta = LeRobotDatasetMetadata(repo_id, root=root, revision=revision)
        self.root = self.meta.root

        # ---- episode selection
        all_eps = self.meta.episodes.index.to_numpy(dtype=np.int64)
        self.episodes = None if episodes is None else [int(e) for e in episodes]
        if episodes is None:
            sel = all_eps
        else:
            sel = np.unique(np.asarray([int(e) for e in episodes], dtype=np.int64))
            unknown = np.setdiff1d(sel, all_eps)
            if unknown.size:
                raise KeyError(
                    f"episodes {unknown.tolist()} are not in {self.root / 'meta/episodes'} "
                    f"({len(all_eps)} episodes, {int(all_eps.min())}..{int(all_eps.max())})"
                )
            if sel.size == 0:
                raise ValueError("episodes=[] selects nothing")
        ep_rows = self.meta.episodes.loc[sel]

        self._video_keys = list(self.meta.video_keys) if self.download_videos else []
        self._dropped_keys = [] if self.download_videos else list(self.meta.video_keys)
        self._image_keys = list(self.meta.image_keys)

        # ---- Hub: fetch exactly the files the selected episodes reference
        data_rel = {}
        for e in sel:
            data_rel.setdefault(str(self.meta.get_data_file_path(int(e))), []).append(int(e))
        if from_hub:
            from robolearn.datasets.hub import ensure_files

            rel = list(data_rel)
            for key in self._video_keys:
                rel += [str(self.meta.get_video_file_path(int(e), key)) for e in sel]
            self.root = ensure_files(repo_id, self.root, rel, revision=revision)

        # ---- tabular data
        self._load_tabular(data_rel, sel, cache_dir)

        # ---- per-episode video lookup
        self._vid_path: dict[str, list[str]] = {}
        self._vid_from: dict[str, np.ndarray] = {}
        self._vid_to: dict[str, np.ndarray | None] = {}
        ep_rows = self.meta.episodes.loc[self.episode_indices]
        for key in self._video_keys:
            col = f"videos/{key}/from_timestamp"
            if col not in ep_rows.columns:
                raise DatasetFormatError(
                    f"{self.meta.root / 'meta/episodes'}: no column {col!r} for video feature {key!r}; load with "
                    "download_videos=False to skip videos"
                )
            self._vid_path[key] = [
                str(self.root / self.meta.get_video_file_path(int(e), key)) for e in self.episode_indices
            ]
            self._vid_from[key] = ep_rows[col].to_numpy(dtype=np.float64, copy=True)
            # the episode's segment of the file: what the reader decodes and caches (None: the whole file)
            to_col = f"videos/{key}/to_timestamp"
            self._vid_to[key] = (ep_rows[to_col].to_numpy(dtype=np.float64, copy=True)
                                 if to_col in ep_rows.columns else None)
        self._video_reader = VideoFrameReader(cache_mb=video_cache_mb)

        self._cam_chw = {k: camera_shape_chw(k, self.meta.features[k]) for k in self.meta.camera_keys}
        self.delta_timestamps = None
        self.delta_indices: dict[str, np.ndarray] | None = None
        if delta_timestamps is not None:
            self.set_delta_timestamps(delta_timestamps)

    # ------------------------------------------------------------------ loading
    def _load_tabular(self, data_rel: dict[str, list[int]], sel: np.ndarray, cache_dir: str | Path | None) -> None:
        """Open (or first build) the Arrow cache file of the selected episodes' frames and set the numpy views."""
        feats = self.meta.features
        keys = [k for k, f in feats.items() if f["dtype"] not in ("video", "language")]
        for k in ("index", "episode_index", "timestamp"):
            if k not in keys:
                raise DatasetFormatError(f"{self.meta.root / INFO_PATH}: required feature {k!r} is not declared")
        spec = {k: feats[k] for k in keys}
        subset = self.episodes is not None
        paths = []
        for rel, eps in data_rel.items():
            path = self.root / rel
            if not path.is_file():
                raise FileNotFoundError(f"data file {path} not found (holds episodes {eps[:10]})")
            paths.append(path)
        cache_root = Path(cache_dir).expanduser() if cache_dir is not None else arrow_cache.default_cache_dir()
        target = arrow_cache.cache_file(cache_root, self.repo_id, self.root, paths, sel if subset else None, sel,
                                        self.nonfinite, spec)
        opened = arrow_cache.open_cached(target)
        self.cache_file: Path | None = target
        if opened is not None:
            table, info = opened
            for message in info.get("warnings", []):  # what the build of this file warned about
                warnings.warn(message, UserWarning, stacklevel=3)
        else:
            hf = arrow_cache.hf_features(spec)
            table, info = self._build_table(data_rel, sel, spec, hf)
            try:
                arrow_cache.write_cache_file(table, target, hf, info)
                table = arrow_cache.map_table(target)
            except OSError as e:
                warnings.warn(f"cannot write the Arrow cache file {target} ({type(e).__name__}: {e}): the frames of "
                              f"{self.root} stay in this process's memory and are copied to spawned DataLoader "
                              "workers; pass cache_dir or set HF_DATASETS_CACHE to a writable folder",
                              UserWarning, stacklevel=3)
                table = arrow_cache.with_info(table, hf, info)
                self.cache_file = None
        self._table = table  # memory-mapped from cache_file (in memory when None)
        self._hf_dataset = None  # opened on first use of hf_dataset: items need only the numpy views
        self._tab_keys = keys
        self._set_columns()
        cols = self._cols
        check_frame_times(cols, self.meta.fps, self.tolerance_s, self.root / "data")
        dropped = {int(e): int(c) for e, c in info.get("dropped", {}).items()}
        n = len(cols["index"])

        ep = cols["episode_index"]
        starts = np.r_[0, np.flatnonzero(np.diff(ep)) + 1]
        ends = np.r_[starts[1:], n]
        run_eps = ep[starts]
        if len(np.unique(run_eps)) != len(run_eps):
            raise DatasetFormatError(f"{self.root / 'data'}: the rows of some episode are not contiguous in index order")
        absent = np.setdiff1d(sel, run_eps)
        if absent.size:
            raise DatasetFormatError(
                f"episodes {absent[:10].tolist()} are listed in meta/episodes but have no rows in their data file"
            )
        lengths = self.meta.episodes.loc[run_eps, "length"].to_numpy(dtype=np.int64)
        lengths = lengths - np.asarray([dropped.get(int(e), 0) for e in run_eps], dtype=np.int64)
        if not np.array_equal(lengths, ends - starts):
            bad = np.flatnonzero(lengths != ends - starts)[0]
            warnings.warn(
                f"episode {int(run_eps[bad])}: meta/episodes length {int(lengths[bad])} but the data file has "
                f"{int(ends[bad] - starts[bad])} rows; using the data rows",
                UserWarning,
                stacklevel=3,
            )
        self.episode_indices = run_eps.astype(np.int64)
        self.ep_from = starts.astype(np.int64)
        self.ep_to = ends.astype(np.int64)
        self._ep_ends = self.ep_to.tolist()  # bisect finds a position's episode slot (no per-frame array)
        self._task_strings = self.meta._task_strings

    def _build_table(self, data_rel: dict[str, list[int]], sel: np.ndarray, spec: dict[str, dict],
                     hf) -> tuple[pa.Table, dict]:
        """The rows this dataset serves, read from parquet and checked: selected episodes, global ``index`` order,
        frame times that match ``fps``, finite floats (or those frames dropped). Returns ``(table, info)``; ``info``
        holds the warnings given and ``{episode: frames dropped}``, kept in the cache file for later loads."""
        info: dict = {"warnings": [], "dropped": {}}

        def warn(message: str) -> None:
            info["warnings"].append(message)
            warnings.warn(message, UserWarning, stacklevel=4)

        subset = self.episodes is not None
        tables = [arrow_cache.read_data_file(self.root / rel, spec, hf, eps, only_episodes=subset)
                  for rel, eps in data_rel.items()]
        table = pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0].combine_chunks()
        del tables
        ep = arrow_cache.column_values(table.column("episode_index"), [1])
        keep = np.isin(ep, sel)
        if not keep.all():
            if not subset:
                extra = np.unique(ep[~keep])[:10].tolist()
                warn(f"{self.root / 'data'} holds rows of episodes {extra} that meta/episodes does not list; "
                     "ignoring them")
            table = table.filter(pa.array(keep)).combine_chunks()
        index = arrow_cache.column_values(table.column("index"), [1])
        if index.size > 1 and np.any(np.diff(index) <= 0):
            table = table.take(pa.array(np.argsort(index, kind="stable"))).combine_chunks()
        if table.num_rows == 0:
            raise DatasetFormatError(f"no frame rows found for episodes {sel[:10].tolist()} under {self.root / 'data'}")
        numeric = [k for k, f in spec.items() if f["dtype"] not in ("image", "string", "language")]
        cols = {k: arrow_cache.column_values(table.column(k), spec[k]["shape"]) for k in numeric}
        where = self.root / "data"
        check_frame_times(cols, self.meta.fps, self.tolerance_s, where)
        bad, summary = find_nonfinite(cols, self.meta.features)
        if bad:
            if self.nonfinite == "error":
                raise DatasetFormatError(
                    f"{where}: non-finite values (NaN/inf): {summary}. Training on them gives NaN weights; drop those "
                    f"frames with nonfinite='drop' (dataset.dataset_kwargs.nonfinite=drop) or repair the data")
            rows = np.logical_or.reduce(list(bad.values()))
            episodes, counts = np.unique(cols["episode_index"][rows], return_counts=True)
            warn(f"{where}: dropping {int(rows.sum())} frame(s) with non-finite values (nonfinite='drop'): {summary}")
            info["dropped"] = {str(int(e)): int(c) for e, c in zip(episodes, counts)}
            del cols
            table = table.filter(pa.array(~rows)).combine_chunks()
            if table.num_rows == 0:
                raise DatasetFormatError(f"{where}: every frame of episodes {sel[:10].tolist()} has non-finite values")
        return table, info

    def _set_columns(self) -> None:
        """``self._cols`` from the Arrow table under ``hf_dataset``: numeric features as numpy views of its buffers
        (memory-mapped, not copied; bool columns are copied), image features as their ``bytes`` / ``path`` Arrow
        arrays, string features as object arrays."""
        if self._table is None:  # unpickled (e.g. in a spawned DataLoader worker): map the file again
            self._table = arrow_cache.map_table(self.cache_file)
        table = self._table
        feats = self.meta.features
        cols: dict = {}
        for key in self._tab_keys:
            dtype = feats[key]["dtype"]
            col = table.column(key)
            if dtype == "image":
                arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
                cols[key] = tuple(arr.flatten())  # (bytes, path)
            elif dtype in ("string", "language"):
                out = np.empty(len(col), dtype=object)
                out[:] = col.to_pylist()
                cols[key] = out
            else:
                cols[key] = arrow_cache.column_values(col, feats[key]["shape"])
        self._cols = cols
        self._numeric_keys = [k for k in cols
                              if k not in self._image_keys and feats[k]["dtype"] not in ("string", "language")]
        self._string_keys = [k for k in cols if feats[k]["dtype"] in ("string",)]
        # served dtypes: the index columns int64, every other numeric feature float32 (float, int and bool alike);
        # a key is listed only when its stored dtype differs (then each item's values are converted)
        served = {k: np.dtype(np.int64 if k in _INDEX_KEYS else np.float32) for k in self._numeric_keys}
        self._convert = {k: d for k, d in served.items() if cols[k].dtype != d}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cols"] = state["_hf_dataset"] = None  # rebuilt from the table (the views) or on use (hf_dataset)
        if self.cache_file is not None:
            state["_table"] = None  # only the file's path travels: the unpickled dataset maps the file again
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._set_columns()

    # ------------------------------------------------------------------ public API
    def set_delta_timestamps(self, delta_timestamps: Mapping[str, Sequence[float]] | None) -> None:
        """Set (or clear with None) the temporal windows; validated as in the constructor.

        Raises:
            KeyError: unknown key, or a video key dropped by ``download_videos=False``.
            ValueError: a delta that is not a multiple of 1/fps within ``tolerance_s``.
        """
        if delta_timestamps is None:
            self.delta_timestamps = None
            self.delta_indices = None
            return
        for key in delta_timestamps:
            if key in self._dropped_keys:
                raise KeyError(
                    f"delta_timestamps key {key!r} is a video feature dropped by download_videos=False"
                )
        check_delta_timestamps(delta_timestamps, self.fps, self.tolerance_s, self.features)
        self.delta_timestamps = {k: [float(d) for d in v] for k, v in delta_timestamps.items()}
        self.delta_indices = get_delta_indices(self.delta_timestamps, self.fps)

    @property
    def fps(self) -> int:
        """Frames per second of the dataset."""
        return self.meta.fps

    @property
    def features(self) -> dict[str, dict]:
        """info.json features, without the video features dropped by ``download_videos=False``."""
        return {k: v for k, v in self.meta.features.items() if k not in self._dropped_keys}

    @property
    def camera_keys(self) -> list[str]:
        """Camera keys present in items (video keys only when ``download_videos``)."""
        return [k for k in self.meta.camera_keys if k not in self._dropped_keys]

    @property
    def video_keys(self) -> list[str]:
        return list(self._video_keys)

    @property
    def num_frames(self) -> int:
        """Number of frames of the selected episodes (== ``len(self)``)."""
        return int(self.ep_to[-1])

    @property
    def hf_dataset(self):
        """The frames as a Hugging Face ``datasets.Dataset``, as lerobot's ``LeRobotDataset.hf_dataset``.

        One row per frame of the selected episodes, in this dataset's order (row ``i`` is frame ``i``; frames
        dropped by ``nonfinite="drop"`` are absent). Columns: every non-video feature with lerobot's HF types
        (vectors ``Sequence(Value(dtype), length=D)``, ``(1,)`` features ``Value(dtype)``, images ``Image()``),
        including ``timestamp`` (seconds), ``frame_index``, ``episode_index``, ``index`` and ``task_index``. It is
        memory-mapped from :attr:`cache_file` (in memory when that could not be written), opened on first use (items
        do not need it, so a training run never imports ``datasets`` once the file exists), and formatted by lerobot's
        transform: ``hf_dataset[i]`` gives tensors (images float ``(C, H, W)`` in [0, 1]). ``map``, ``filter``,
        ``select_columns``, ``with_format("numpy")``... return new datasets (``map`` caches beside
        :attr:`cache_file`); they do not change what ``self[i]`` returns.
        """
        if self._hf_dataset is None:
            self._hf_dataset = arrow_cache.open_dataset(self.cache_file, self._table)
        return self._hf_dataset

    @property
    def num_episodes(self) -> int:
        return len(self.episode_indices)

    @property
    def episode_data_index(self) -> dict[str, torch.Tensor]:
        """``{"from": (E,), "to": (E,)}`` int64 positions of each selected episode in this dataset."""
        return {"from": torch.from_numpy(self.ep_from.copy()), "to": torch.from_numpy(self.ep_to.copy())}

    @property
    def stats(self):
        return self.meta.stats

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset(repo_id={self.repo_id!r}, root='{self.root}', episodes={self.num_episodes}, "
            f"frames={self.num_frames}, fps={self.fps}, keys={list(self.features)})"
        )

    # ------------------------------------------------------------------ items
    def _window(self, pos: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        slot = bisect.bisect_right(self._ep_ends, pos)
        lo, hi = self.ep_from[slot], self.ep_to[slot]
        q = pos + offsets
        pad = (q < lo) | (q >= hi)
        return np.clip(q, lo, hi - 1), pad

    def _decode_image(self, key: str, value) -> np.ndarray:
        from PIL import Image

        if isinstance(value, (bytes, bytearray, memoryview)):
            img = Image.open(io.BytesIO(bytes(value)))
        elif isinstance(value, str):
            p = Path(value)
            img = Image.open(p if p.is_absolute() else self.root / p)
        else:
            raise DatasetFormatError(f"image feature {key!r} has an empty value (no bytes, no path)")
        c = self._cam_chw[key][0]
        arr = np.asarray(img.convert("L" if c == 1 else "RGB"))
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return arr.transpose(2, 0, 1)

    @staticmethod
    def _camera_tensor(frames: np.ndarray, uint8: bool) -> torch.Tensor:
        frames = np.ascontiguousarray(frames)
        if uint8:
            return torch.from_numpy(frames)
        # One pass, float32 division: the same values as torch's ``.to(float32).div_(255)`` (lerobot's conversion),
        # about 2x faster at 640x480 (0.5 vs 1.1 ms for two frames on the 2-core CPU).
        return torch.from_numpy(np.divide(frames, np.float32(255.0), dtype=np.float32))

    def _image_value(self, key: str, pos: int):
        """The PNG bytes (or, when absent, the path) of image feature ``key`` at frame ``pos``."""
        data, where = self._cols[key]
        value = data[pos]
        if value.is_valid:
            return value.as_py()
        value = where[pos]
        return value.as_py() if value.is_valid else None

    def __getitem__(self, idx) -> dict:
        return self.get_item(idx)

    def get_item(self, idx, *, uint8: bool | None = None) -> dict:
        """Item ``idx`` (see the class docstring), camera frames as uint8 ``(C, H, W)`` / ``(T, C, H, W)`` when
        ``uint8`` is True, float32 in [0, 1] when False, ``return_uint8`` when None. The float32 frames are the
        uint8 ones divided by 255 in float32, so a loader may convert a whole batch at once with the same values
        (:class:`~robolearn.datamodules.camera_batches.FloatCameraCollate`).

        Raises:
            IndexError: ``idx`` outside ``[-num_frames, num_frames)``.
            FrameTimestampError: a video frame farther than ``tolerance_s`` from its time.
        """
        uint8 = self.return_uint8 if uint8 is None else bool(uint8)
        idx = int(idx)
        n = self.num_frames
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError(f"index {idx} out of range for a dataset of {n} frames")
        cols = self._cols
        deltas = self.delta_indices or {}
        item: dict = {}
        convert = self._convert
        for key in self._numeric_keys:
            arr = cols[key]
            if key in deltas:
                q, pad = self._window(idx, deltas[key])
                values = arr[q]
                item[f"{key}_is_pad"] = torch.from_numpy(pad)
            else:
                values = np.array(arr[idx])
            item[key] = torch.from_numpy(values if key not in convert else values.astype(convert[key]))
        for key in self._string_keys:
            item[key] = cols[key][idx]
        for key in self._image_keys:
            if key in deltas:
                q, pad = self._window(idx, deltas[key])
                frames = np.stack([self._decode_image(key, self._image_value(key, int(i))) for i in q])
                item[f"{key}_is_pad"] = torch.from_numpy(pad)
            else:
                frames = self._decode_image(key, self._image_value(key, idx))
            item[key] = self._camera_tensor(frames, uint8)
        if self._video_keys:
            slot = bisect.bisect_right(self._ep_ends, idx)
            ep_idx = int(self.episode_indices[slot])
            ts = cols["timestamp"]
            for key in self._video_keys:
                if key in deltas:
                    q, pad = self._window(idx, deltas[key])
                    times = ts[q].astype(np.float64) + self._vid_from[key][slot]
                    item[f"{key}_is_pad"] = torch.from_numpy(pad)
                else:
                    times = np.asarray([float(ts[idx]) + self._vid_from[key][slot]])
                ends = self._vid_to[key]
                segment = None if ends is None else (float(self._vid_from[key][slot]), float(ends[slot]))
                frames = self._video_reader.get_frames(
                    self._vid_path[key][slot], times, self.tolerance_s, episode_index=ep_idx, segment=segment
                )
                if key not in deltas:
                    frames = frames[0]
                item[key] = self._camera_tensor(frames, uint8)
        if self.image_transforms is not None:
            for key in self.camera_keys:
                item[key] = self.image_transforms(item[key])
        item["task"] = self._task_strings.get(int(cols["task_index"][idx]), "") if "task_index" in cols else ""
        return item
