"""``StreamingLeRobotDataset``: iterate over a LeRobotDataset v3.0 without loading or downloading it first.

Where :class:`~robolearn.datasets.LeRobotDataset` reads every tabular column of the selected episodes up front
and decodes video frames by seeking, the streaming dataset walks episodes one after the other: it reads one
episode's rows from its parquet file, decodes that episode's stretch of each MP4 sequentially, and yields the
episode's frames as items. Files are opened through a filesystem object, so the same code reads a local folder
or a Hugging Face Hub repository (``huggingface_hub.HfFileSystem``, byte ranges on demand) — nothing is
downloaded apart from ``meta/``.

Items have exactly the layout of the map-style dataset (keys, dtypes, ``<key>_is_pad`` windows for
``delta_timestamps``), so the two are interchangeable in a DataLoader (``LeRobotDataModule(streaming=True)``).

Design points:

- **Windows without random access.** For each episode a sliding buffer keeps the decoded frames between the
  smallest and the largest offset of the current frame's windows (look-back and look-ahead), so memory is bounded
  by the window length, not the episode length. Offsets past the episode's ends repeat the first/last frame and
  are flagged in ``<key>_is_pad``, as in the map-style dataset.
- **Video times.** The frame of row ``i`` of an episode is the one at ``from_timestamp + timestamp[i]`` in the
  episode's MP4 (``meta/episodes`` ``videos/<key>/from_timestamp``), which is correct when several episodes share
  one MP4 — unlike computing ``index / fps``.
- **Shuffling.** Episode order is permuted per epoch (``seed``, ``epoch``); ``max_open_episodes`` episodes are read
  at once and interleaved at random, and items go through a shuffle buffer of ``buffer_size``. With
  ``shuffle=False`` items come in dataset order.
- **Sharding.** Episodes are dealt round-robin to ``world_size × num_workers`` shards (DDP rank from
  ``torch.distributed`` when initialised, DataLoader worker from ``get_worker_info``): every item is produced by
  exactly one worker of one rank. Shards can differ in length by up to one episode.
"""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from robolearn.datasets import parquet_files
from robolearn.datasets.constants import INFO_PATH
from robolearn.datasets.errors import DatasetFormatError
from robolearn.datasets.integrity import check_column_dtype, check_frame_times, find_nonfinite
from robolearn.datasets.lerobot_dataset import _column_to_numpy, check_delta_timestamps, get_delta_indices
from robolearn.datasets.metadata import LeRobotDatasetMetadata
from robolearn.datasets.video import FrameTimestampError, _frame_time, _frame_to_chw
from robolearn.features import camera_shape_chw

__all__ = ["StreamingLeRobotDataset"]


class _Files:
    """Opens dataset files by their path relative to the dataset root, locally or through an fsspec filesystem."""

    def __init__(self, root: Path, fs: Any = None, base: str | None = None) -> None:
        self.root = Path(root)
        self.fs = fs
        self.base = base

    def describe(self, rel: str) -> str:
        return f"{self.base}/{rel}" if self.fs is not None else str(self.root / rel)

    def open(self, rel: str):
        if self.fs is None:
            path = self.root / rel
            if not path.is_file():
                raise FileNotFoundError(f"file {path} not found")
            return open(path, "rb")
        try:
            return self.fs.open(f"{self.base}/{rel}", "rb")
        except FileNotFoundError as err:
            raise FileNotFoundError(f"file {self.base}/{rel} not found") from err


class _EpisodeVideo:
    """Sequential decoding of one episode's stretch of an MP4, matched to the episode's row times.

    ``get(i)`` returns the uint8 ``(3, H, W)`` frame of row ``i``, decoding forward as needed; ``evict_below(i)``
    drops frames of rows before ``i``. Rows must be requested in non-decreasing order of their lowest index.
    """

    def __init__(self, fileobj, times_s: np.ndarray, tolerance_s: float, where: str, episode_index: int) -> None:
        import av

        self.fileobj = fileobj
        self.container = av.open(fileobj)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.tb = self.stream.time_base
        self.times = times_s
        self.tol = tolerance_s
        self.where = where
        self.ep = episode_index
        start = max(int(float(times_s[0]) / float(self.tb)) - 1, 0)
        self.container.seek(start, backward=True, any_frame=False, stream=self.stream)
        self._decoder = self.container.decode(self.stream)
        self._last2: deque = deque(maxlen=2)  # the last decoded (time, frame) pairs
        self._frames: dict[int, np.ndarray] = {}
        self._next_row = 0

    def _pull(self) -> tuple[float, Any] | None:
        for frame in self._decoder:
            t = _frame_time(frame, self.tb)
            if t is not None:
                return t, frame
        return None

    def _match_next_row(self) -> None:
        i = self._next_row
        want = float(self.times[i])
        # Decode until the first frame at or after `want`; the nearest frame is that one or the one before it.
        while not self._last2 or self._last2[-1][0] < want:
            nxt = self._pull()
            if nxt is None:
                break
            self._last2.append(nxt)
        best = min(self._last2, key=lambda tf: abs(tf[0] - want)) if self._last2 else None
        if best is None or abs(best[0] - want) > self.tol:
            got = "no frame" if best is None else f"nearest decoded frame at {best[0]:.6f} s"
            raise FrameTimestampError(
                f"video {self.where}, episode {self.ep}: row {i} expects a frame at {want:.6f} s "
                f"(from_timestamp + timestamp), {got}; tolerance_s={self.tol}"
            )
        self._frames[i] = _frame_to_chw(best[1])
        self._next_row += 1

    def get(self, i: int) -> np.ndarray:
        while self._next_row <= i:
            self._match_next_row()
        try:
            return self._frames[i]
        except KeyError:
            raise RuntimeError(f"frame of row {i} was evicted (episode {self.ep}, {self.where})") from None

    def evict_below(self, i: int) -> None:
        for k in [k for k in self._frames if k < i]:
            del self._frames[k]

    def close(self) -> None:
        try:
            self.container.close()
        finally:
            self.fileobj.close()


class StreamingLeRobotDataset(torch.utils.data.IterableDataset):
    """Iterable LeRobotDataset v3.0 reader for local folders and Hub repositories (see the module docstring).

    Items are those of :class:`~robolearn.datasets.LeRobotDataset`: float32 numeric tensors (vectors ``(D,)``,
    ``(T, D)`` with a window), int64 indices, float32 ``timestamp`` (seconds), cameras float32 ``(C, H, W)`` in
    [0, 1] (uint8 with ``return_uint8``; ``(T, C, H, W)`` with a window), ``<key>_is_pad`` bool ``(T,)``, ``task``.

    Args:
        repo_id: ``"owner/name"``.
        root: local dataset folder; None → ``$HF_LEROBOT_HOME/<repo_id>`` when it exists there, else the Hub
            (metadata downloaded, data and videos read by byte ranges through ``HfFileSystem``).
        episodes: episode indices to stream (None = all).
        delta_timestamps: ``{key: [seconds, ...]}`` windows relative to each frame (multiples of 1/fps).
        buffer_size: shuffle buffer size in items (ignored when ``shuffle=False``).
        seed: base seed of the episode permutation and the buffer draws; the epoch and shard are mixed in.
        shuffle: False yields items in dataset order (per shard).
        max_open_episodes: episodes read at once and interleaved when shuffling (1 = one after the other).
        tolerance_s: seconds; delta alignment and video frame matching tolerance.
        revision: Hub revision (default the ``v3.0`` tag).
        return_uint8: cameras as uint8 instead of float32 in [0, 1].
        image_transforms: callable applied to each camera tensor.
        rank, world_size: DDP shard of this process; None → from ``torch.distributed`` (or 0 / 1).
        filesystem: an fsspec filesystem and base path ``(fs, "datasets/owner/name@rev")`` to read data and videos
            from instead of ``root`` (how the Hub is read; also lets tests use any fsspec filesystem).

    Raises:
        FileNotFoundError: missing metadata (at construction) or data/video files (while iterating), named.
        KeyError: unknown episodes or ``delta_timestamps`` keys. ``ValueError``: misaligned deltas, bad sizes.
        FrameTimestampError: a video has no frame within ``tolerance_s`` of a row's time (names file, episode, time).
    """

    def __init__(
        self,
        repo_id: str,
        root: str | Path | None = None,
        episodes: Sequence[int] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        buffer_size: int = 1000,
        seed: int = 42,
        shuffle: bool = True,
        max_open_episodes: int = 4,
        tolerance_s: float = 1e-4,
        revision: str | None = None,
        return_uint8: bool = False,
        image_transforms: Callable | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        filesystem: tuple[Any, str] | None = None,
    ) -> None:
        super().__init__()
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if max_open_episodes < 1:
            raise ValueError(f"max_open_episodes must be >= 1, got {max_open_episodes}")
        self.repo_id = repo_id
        self.buffer_size = int(buffer_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.max_open_episodes = int(max_open_episodes)
        self.tolerance_s = float(tolerance_s)
        self.return_uint8 = bool(return_uint8)
        self.image_transforms = image_transforms
        self._rank, self._world_size = rank, world_size
        self.epoch = 0

        remote = False
        if root is None and filesystem is None:
            from robolearn.datasets.hub import get_lerobot_home

            remote = not (get_lerobot_home() / repo_id / INFO_PATH).is_file()
        self.meta = LeRobotDatasetMetadata(repo_id, root=root, revision=revision)
        if filesystem is not None:
            fs, base = filesystem
            self._files = _Files(self.meta.root, fs, base.rstrip("/"))
        elif remote:
            from huggingface_hub import HfFileSystem

            from robolearn.datasets.hub import get_safe_version

            rev = revision or get_safe_version(repo_id, revision)
            self._files = _Files(self.meta.root, HfFileSystem(), f"datasets/{repo_id}@{rev}")
        else:
            self._files = _Files(self.meta.root)

        all_eps = self.meta.episodes.index.to_numpy(dtype=np.int64)
        if episodes is None:
            sel = all_eps
        else:
            sel = np.unique(np.asarray([int(e) for e in episodes], dtype=np.int64))
            unknown = np.setdiff1d(sel, all_eps)
            if unknown.size:
                raise KeyError(f"episodes {unknown.tolist()} are not in {self.meta.root / 'meta/episodes'}")
        self.episode_indices = sel
        self._lengths = self.meta.episodes.loc[sel, "length"].to_numpy(dtype=np.int64)
        feats = self.meta.features
        self._video_keys = list(self.meta.video_keys)
        self._image_keys = list(self.meta.image_keys)
        self._tab_keys = [k for k, f in feats.items() if f["dtype"] not in ("video", "language")]
        self._cam_chw = {k: camera_shape_chw(k, feats[k]) for k in self.meta.camera_keys}
        self.delta_timestamps = None
        self.delta_indices: dict[str, np.ndarray] | None = None
        if delta_timestamps is not None:
            check_delta_timestamps(delta_timestamps, self.fps, self.tolerance_s, feats)
            self.delta_timestamps = {k: [float(d) for d in v] for k, v in delta_timestamps.items()}
            self.delta_indices = get_delta_indices(self.delta_timestamps, self.fps)

    # ------------------------------------------------------------------ properties
    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def features(self) -> dict[str, dict]:
        return self.meta.features

    @property
    def stats(self):
        return self.meta.stats

    @property
    def num_frames(self) -> int:
        """Frames of the selected episodes (all shards together)."""
        return int(self._lengths.sum())

    @property
    def num_episodes(self) -> int:
        return len(self.episode_indices)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch mixed into the shuffling seed (each ``__iter__`` also advances it by one)."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ sharding
    def _shard(self) -> tuple[int, int]:
        rank, world = self._rank, self._world_size
        if rank is None or world is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank, world = 0, 1
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * nw + wid, world * nw

    def shard_episodes(self, shard_id: int, num_shards: int, epoch: int) -> list[int]:
        """Episodes streamed by one shard in one epoch: the (permuted, if shuffling) episode list dealt round-robin."""
        eps = self.episode_indices
        if self.shuffle:
            eps = eps[np.random.default_rng([self.seed, epoch]).permutation(len(eps))]
        return [int(e) for e in eps[shard_id::num_shards]]

    def __len__(self) -> int:
        # An estimate for progress bars: items of this process's shard(s) are not known before iterating.
        return self.num_frames

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict]:
        shard_id, num_shards = self._shard()
        epoch = self.epoch
        self.epoch += 1
        eps = self.shard_episodes(shard_id, num_shards, epoch)
        if not self.shuffle:
            for ep in eps:
                yield from self._episode_items(ep)
            return
        rng = np.random.default_rng([self.seed, epoch, shard_id, 1])
        pending = deque(eps)
        open_its: list[Iterator[dict]] = []
        buffer: list[dict] = []
        try:
            while pending or open_its:
                while pending and len(open_its) < self.max_open_episodes:
                    open_its.append(self._episode_items(pending.popleft()))
                j = int(rng.integers(len(open_its)))
                try:
                    item = next(open_its[j])
                except StopIteration:
                    open_its.pop(j)
                    continue
                if len(buffer) < self.buffer_size:
                    buffer.append(item)
                    continue
                k = int(rng.integers(len(buffer)))
                buffer[k], item = item, buffer[k]
                yield item
            order = rng.permutation(len(buffer))
            for k in order:
                yield buffer[k]
        finally:
            for it in open_its:
                it.close()

    def _read_episode_rows(self, ep: int) -> dict[str, np.ndarray]:
        rel = str(self.meta.get_data_file_path(ep))
        with self._files.open(rel) as f:
            table = parquet_files.read_table(f, columns=self._tab_keys, filters=[("episode_index", "==", ep)],
                                             name=self._files.describe(rel))
        if table.num_rows == 0:
            raise DatasetFormatError(f"{self._files.describe(rel)}: no rows for episode {ep}")
        where = Path(self._files.describe(rel))
        for k in self._tab_keys:
            check_column_dtype(table.schema.field(k).type, self.meta.features[k]["dtype"], k, where)
        cols = {k: _column_to_numpy(table.column(k), self.meta.features[k], k, where) for k in self._tab_keys}
        order = np.argsort(cols["index"], kind="stable")
        if np.any(order != np.arange(len(order))):
            cols = {k: v[order] for k, v in cols.items()}
        # the map-style reader refuses these at load; streaming meets each episode only when it reads it
        check_frame_times(cols, self.meta.fps, self.tolerance_s, where)
        bad, summary = find_nonfinite(cols, self.meta.features)
        if bad:
            raise DatasetFormatError(f"{where}: non-finite values (NaN/inf): {summary}")
        return cols

    def _decode_image(self, key: str, value) -> np.ndarray:
        from PIL import Image

        if isinstance(value, (bytes, bytearray, memoryview)):
            img = Image.open(io.BytesIO(bytes(value)))
        elif isinstance(value, str):
            with self._files.open(value) as f:
                img = Image.open(io.BytesIO(f.read()))
        else:
            raise DatasetFormatError(f"image feature {key!r} has an empty value (no bytes, no path)")
        c = self._cam_chw[key][0]
        arr = np.asarray(img.convert("L" if c == 1 else "RGB"))
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return arr.transpose(2, 0, 1)

    def _camera_tensor(self, frames: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(frames))
        return t if self.return_uint8 else t.to(torch.float32).div_(255.0)

    def _episode_items(self, ep: int) -> Iterator[dict]:
        """Items of one episode in frame order, with bounded look-back/look-ahead buffers for windows."""
        cols = self._read_episode_rows(ep)
        n = len(cols["index"])
        deltas = self.delta_indices or {}
        ts = cols["timestamp"].astype(np.float64)
        tasks = self.meta._task_strings
        videos: dict[str, _EpisodeVideo] = {}
        try:
            row = self.meta.episodes.loc[ep]
            for key in self._video_keys:
                rel = str(self.meta.get_video_file_path(ep, key))
                from_ts = float(row[f"videos/{key}/from_timestamp"])
                fobj = self._files.open(rel)
                try:
                    videos[key] = _EpisodeVideo(fobj, from_ts + ts, self.tolerance_s, self._files.describe(rel), ep)
                except Exception:
                    fobj.close()
                    raise
            for i in range(n):
                item: dict[str, Any] = {}
                for key in self._tab_keys:
                    if key in self._image_keys or self.meta.features[key]["dtype"] == "string":
                        continue
                    arr = cols[key]
                    if key in deltas:
                        q, pad = _window(i, n, deltas[key])
                        item[key] = torch.from_numpy(arr[q])
                        item[f"{key}_is_pad"] = torch.from_numpy(pad)
                    else:
                        item[key] = torch.from_numpy(np.array(arr[i]))
                for key in self._tab_keys:
                    if self.meta.features[key]["dtype"] == "string":
                        item[key] = cols[key][i]
                for key in self._image_keys:
                    if key in deltas:
                        q, pad = _window(i, n, deltas[key])
                        frames = np.stack([self._decode_image(key, cols[key][j]) for j in q])
                        item[f"{key}_is_pad"] = torch.from_numpy(pad)
                    else:
                        frames = self._decode_image(key, cols[key][i])
                    item[key] = self._camera_tensor(frames)
                for key, vid in videos.items():
                    if key in deltas:
                        q, pad = _window(i, n, deltas[key])
                        frames = np.stack([vid.get(int(j)) for j in q])
                        item[f"{key}_is_pad"] = torch.from_numpy(pad)
                        vid.evict_below(int(np.clip(i + deltas[key].min(), 0, n - 1)))
                    else:
                        frames = vid.get(i)
                        vid.evict_below(i)
                    item[key] = self._camera_tensor(frames)
                if self.image_transforms is not None:
                    for key in self._cam_chw:
                        item[key] = self.image_transforms(item[key])
                item["task"] = tasks.get(int(cols["task_index"][i]), "") if "task_index" in cols else ""
                yield item
        finally:
            for vid in videos.values():
                vid.close()


def _window(i: int, n: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = i + offsets
    pad = (q < 0) | (q >= n)
    return np.clip(q, 0, n - 1), pad
