"""Video probing and frame decoding with PyAV (encoding lives in ``video_encode.py``).

Times are always seconds inside the mp4 file (``from_timestamp + timestamp`` for a LeRobot v3.0 episode). A frame's
time is ``pts * time_base`` of its stream. Frames are returned as uint8 arrays shaped ``(T, C, H, W)`` with ``C = 3``
(RGB, converted with ``rgb24``).

Two decoding paths return identical frames:

- **seek path** (:func:`decode_video_frames`): seek to the keyframe at or before the earliest query, decode forward
  until the latest query, match each query to the nearest decoded frame;
- **whole-file path** (:func:`decode_all_frames`): decode every frame of the file once, in order; queries are then
  matched by nearest pts in the cached array.

:class:`VideoFrameReader` picks between them per file under a per-process memory budget, keeps open containers in a
small LRU, and is safe to use in DataLoader workers: it never shares PyAV objects across ``fork`` (it checks the
process id) and drops them when pickled.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from robolearn.datasets.errors import FrameTimestampError, VideoDecodeError

__all__ = [
    "VideoInfo",
    "probe_video",
    "decode_video_frames",
    "decode_all_frames",
    "match_frames",
    "VideoFrameReader",
    "FrameTimestampError",
]


@dataclass(frozen=True)
class VideoInfo:
    """What the first video stream of a file really holds (probed, not taken from info.json).

    Attributes:
        codec: canonical decoder name reported by FFmpeg/PyAV (``"av1"``, ``"h264"``, ``"mpeg4"``, ``"hevc"``...).
        width, height: frame size in pixels.
        pix_fmt: pixel format of the stream (e.g. ``"yuv420p"``), or None if unknown.
        fps: average frame rate (frames per second, float), or None if the container does not say.
        num_frames: number of frames declared by the container (0 when unknown).
        duration_s: stream duration in seconds (container duration as a fallback), or None.
        time_base: the stream's time base (seconds per pts tick).
        has_audio: whether the file also has an audio stream.
    """

    codec: str
    width: int
    height: int
    pix_fmt: str | None
    fps: float | None
    num_frames: int
    duration_s: float | None
    time_base: Fraction
    has_audio: bool


def _av():
    import av  # imported lazily: keeps `import robolearn.datasets` light and fork-friendly

    return av


def probe_video(path: str | Path) -> VideoInfo:
    """Probe the first video stream of ``path``.

    The codec is read from the stream's codec descriptor (e.g. ``"mpeg4"`` for MPEG-4 Part 2, even when the
    dataset's info.json claims ``h264``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file has no video stream.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    av = _av()
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        codec = ctx.codec.name
        # PyAV reports the decoder name (e.g. "libdav1d"); map it to the codec descriptor ("av1").
        descriptor = getattr(ctx.codec, "canonical_name", None) or getattr(stream.codec, "canonical_name", None)
        if descriptor:
            codec = descriptor
        elif codec in ("libdav1d", "libaom-av1", "av1_cuvid"):
            codec = "av1"
        fps = float(stream.average_rate) if stream.average_rate else None
        tb = stream.time_base or Fraction(1, 1)
        if stream.duration is not None:
            duration = float(stream.duration * tb)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = None
        pix_fmt = ctx.pix_fmt if ctx.pix_fmt else None
        return VideoInfo(
            codec=codec,
            width=int(ctx.width),
            height=int(ctx.height),
            pix_fmt=pix_fmt,
            fps=fps,
            num_frames=int(stream.frames or 0),
            duration_s=duration,
            time_base=Fraction(tb),
            has_audio=bool(container.streams.audio),
        )


_REFORMATTER: tuple[int, object] | None = None
# PyAV objects inherited from a parent process through fork; see VideoFrameReader.
_INHERITED: list = []


def _reformatter():
    """A per-process ``VideoReformatter``: reusing its SwsContext is ~5x faster than ``to_ndarray(format=...)``,
    which builds a new one per frame; the output is identical."""
    global _REFORMATTER
    pid = os.getpid()
    if _REFORMATTER is None or _REFORMATTER[0] != pid:
        from av.video.reformatter import VideoReformatter

        if _REFORMATTER is not None:
            # Inherited through fork: freeing it here could join scaler threads that only existed in the parent.
            _INHERITED.append(_REFORMATTER[1])

        _REFORMATTER = (pid, VideoReformatter())
    return _REFORMATTER[1]


def _frame_to_chw(frame) -> np.ndarray:
    """An ``av.VideoFrame`` as uint8 ``(3, H, W)`` RGB (``rgb24`` conversion by swscale)."""
    return _reformatter().reformat(frame, format="rgb24", threads=1).to_ndarray().transpose(2, 0, 1)


def _frame_time(frame, time_base: Fraction) -> float | None:
    if frame.pts is None:
        return None
    return float(frame.pts * time_base)


def match_frames(
    query_ts: np.ndarray,
    frame_ts: np.ndarray,
    tolerance_s: float,
    path: str | Path,
    episode_index: int | None = None,
) -> np.ndarray:
    """Index of the nearest frame time for each query time.

    Args:
        query_ts: requested times in seconds inside the file, shape ``(T,)``.
        frame_ts: times of the available frames in seconds, sorted ascending, shape ``(N,)``, N >= 1.
        tolerance_s: maximal allowed |query − nearest frame time| in seconds.
        path, episode_index: only used in the error message.

    Returns:
        int64 array ``(T,)`` of indices into ``frame_ts``.

    Raises:
        FrameTimestampError: if a nearest frame is farther than ``tolerance_s`` from its query (or no frame was
            decoded). The message names the file, the episode, and the requested and nearest times.
    """
    query_ts = np.asarray(query_ts, dtype=np.float64)
    frame_ts = np.asarray(frame_ts, dtype=np.float64)
    ep = f", episode {episode_index}" if episode_index is not None else ""
    if frame_ts.size == 0:
        raise FrameTimestampError(
            f"no frame could be decoded from {path}{ep} for the requested timestamps {query_ts.tolist()} s"
        )
    right = np.clip(np.searchsorted(frame_ts, query_ts), 0, len(frame_ts) - 1)
    left = np.clip(right - 1, 0, len(frame_ts) - 1)
    pick_left = np.abs(query_ts - frame_ts[left]) <= np.abs(frame_ts[right] - query_ts)
    idx = np.where(pick_left, left, right)
    dist = np.abs(frame_ts[idx] - query_ts)
    bad = dist > tolerance_s
    if bad.any():
        raise FrameTimestampError(
            f"video {path}{ep}: requested timestamps {query_ts[bad].tolist()} s have no frame within "
            f"tolerance_s={tolerance_s}; nearest decoded frames are at {frame_ts[idx[bad]].tolist()} s "
            f"(decoded range {frame_ts[0]:.6f}..{frame_ts[-1]:.6f} s). The video may be shorter than the episode "
            "or its timestamps may not match the parquet `timestamp` column; a larger tolerance_s may help."
        )
    return idx.astype(np.int64)


def _frames_from(container, stream, t_start: float):
    """Seek to the keyframe at or before ``t_start`` (seconds, rounded to the nearest tick of the stream's time base)
    and yield ``(time in seconds, frame)`` for every decoded frame from there on (a frame without pts gets the
    previous time plus one frame period).

    Rounding, not truncating minus a tick: a query at a keyframe's own time (float rounding either way) starts at
    that keyframe instead of the one before it, which with lerobot's GOP of 2 decodes 2 frames fewer for half of
    the 2-frame windows. The frame nearest ``t_start`` is always decoded: a keyframe after it and at or before the
    rounded target would itself be nearer to ``t_start``."""
    tb = stream.time_base
    target = max(round(Fraction(max(t_start, 0.0)) / tb), 0)
    container.seek(target, backward=True, any_frame=False, stream=stream)
    last = None
    for frame in container.decode(stream):
        t = _frame_time(frame, tb)
        if t is None:
            t = (last + 1.0 / float(stream.average_rate or 30)) if last is not None else 0.0
        last = t
        yield t, frame


def _seek_decode(
    container, stream, query_ts: np.ndarray, tolerance_s: float, path, episode_index
) -> tuple[np.ndarray, np.ndarray]:
    """Seek path on an open container: see :func:`decode_video_frames`."""
    t_min = float(query_ts.min())
    t_max = float(query_ts.max())
    times: list[float] = []
    frames: list = []
    for t, frame in _frames_from(container, stream, t_min):
        if t < t_min and times and times[-1] < t_min:
            # Queries are all >= t_min: a later frame before t_min is always closer than an earlier one.
            times[-1], frames[-1] = t, frame
            continue
        times.append(t)
        frames.append(frame)
        if t >= t_max:
            break
    if not times:
        return np.empty((0, 3, stream.codec_context.height, stream.codec_context.width), np.uint8), np.empty(0)
    order = np.argsort(np.asarray(times), kind="stable")
    times_arr = np.asarray(times)[order]
    idx = match_frames(query_ts, times_arr, tolerance_s, path, episode_index)
    out = np.empty((len(query_ts), 3, frames[0].height, frames[0].width), dtype=np.uint8)
    converted: dict[int, np.ndarray] = {}
    for j, i in enumerate(idx):
        k = int(order[i])
        if k not in converted:
            converted[k] = _frame_to_chw(frames[k])
        out[j] = converted[k]
    return out, times_arr


def decode_video_frames(
    path: str | Path,
    timestamps,
    tolerance_s: float = 1e-4,
    episode_index: int | None = None,
) -> np.ndarray:
    """Decode the frames nearest to ``timestamps`` (seconds inside the file) by seeking.

    Seeks to the keyframe at or before the earliest query, decodes forward until a frame at or after the latest
    query, and matches each query to the nearest decoded frame by pts.

    Args:
        path: mp4 (or any FFmpeg-readable) file.
        timestamps: sequence or array of T query times in seconds inside the file.
        tolerance_s: maximal allowed distance (seconds) between a query and its frame.
        episode_index: only used in error messages.

    Returns:
        uint8 array ``(T, 3, H, W)`` (RGB).

    Raises:
        FileNotFoundError: if the file does not exist.
        FrameTimestampError: if a query has no frame within ``tolerance_s``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    query = np.atleast_1d(np.asarray(timestamps, dtype=np.float64))
    container, stream = _open_container(str(path))
    with container:
        frames, _ = _seek_decode(container, stream, query, tolerance_s, path, episode_index)
    return frames


def decode_all_frames(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode every frame of the first video stream, in presentation order.

    Returns:
        ``(frames, times)``: uint8 ``(N, 3, H, W)`` RGB frames and float64 ``(N,)`` times in seconds (pts ×
        time_base), sorted ascending.

    Raises:
        FileNotFoundError: if the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    container, stream = _open_container(str(path))
    with container:
        return _decode_all(container, stream)


def _decode_all(container, stream) -> tuple[np.ndarray, np.ndarray]:
    tb = stream.time_base
    h, w = stream.codec_context.height, stream.codec_context.width
    cap = int(stream.frames or 0)
    buf = np.empty((max(cap, 1), 3, h, w), dtype=np.uint8)
    times: list[float] = []
    n = 0
    last = None
    container.seek(0, backward=True, any_frame=False, stream=stream)
    for frame in container.decode(stream):
        if n >= buf.shape[0]:  # container under-declared its frame count: grow
            buf = np.concatenate([buf, np.empty_like(buf)], axis=0)
        buf[n] = _frame_to_chw(frame)
        t = _frame_time(frame, tb)
        if t is None:
            t = (last + 1.0 / float(stream.average_rate or 30)) if last is not None else 0.0
        last = t
        times.append(t)
        n += 1
    times_arr = np.asarray(times, dtype=np.float64)
    buf = buf[:n]
    if n > 1 and np.any(np.diff(times_arr) < 0):
        order = np.argsort(times_arr, kind="stable")
        buf, times_arr = buf[order], times_arr[order]
    return np.ascontiguousarray(buf), times_arr


def _decode_range(container, stream, t_start: float, t_end: float,
                  expected: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every frame with ``t_start <= time <= t_end`` (seconds), in presentation order: seek to the keyframe at or
    before ``t_start`` and decode forward until a frame after ``t_end``. Returns uint8 ``(N, 3, H, W)`` frames and
    float64 ``(N,)`` times.

    Frames are written into one array allocated for ``expected`` frames (grown by doubling if more come), not
    collected in a list and stacked, so filling a segment needs its size once, not twice (a 5 s segment at 640x480
    is 138 MB)."""
    h, w = stream.codec_context.height, stream.codec_context.width
    buf = np.empty((max(int(expected), 1), 3, h, w), dtype=np.uint8)
    times: list[float] = []
    n = 0
    for t, frame in _frames_from(container, stream, t_start):
        if t > t_end:
            break
        if t >= t_start:
            if n >= buf.shape[0]:  # more frames than expected: grow
                buf = np.concatenate([buf, np.empty_like(buf)], axis=0)
            buf[n] = _frame_to_chw(frame)
            times.append(t)
            n += 1
    if n == 0:
        return np.empty((0, 3, h, w), np.uint8), np.empty(0)
    times_arr = np.asarray(times, dtype=np.float64)
    out = buf[:n] if buf.shape[0] <= n + 4 else buf[:n].copy()  # a few spare frames are kept, not a grown half
    if n > 1 and np.any(np.diff(times_arr) < 0):
        order = np.argsort(times_arr, kind="stable")
        out, times_arr = out[order], times_arr[order]
    return np.ascontiguousarray(out), times_arr


# Containers opened by a parent process and inherited by a forked child are moved to _INHERITED and never closed
# there: closing a decoder or scaler that owns threads joins threads that do not exist after fork, which hangs.
_READERS: "weakref.WeakSet[VideoFrameReader]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reader in list(_READERS):
        reader._forget_containers()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _open_container(path: str):
    """Open ``path`` and return ``(container, first video stream)`` with single-threaded decoding (parallelism
    comes from DataLoader workers; this also keeps forked children free of decoder threads)."""
    container = _av().open(path)
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1
    return container, stream


class VideoFrameReader:
    """Per-process frame server with an open-container LRU and a decoded-frame cache.

    A query names its file and, when the caller knows it, the *segment* of the file it falls in (an episode's
    ``[from_timestamp, to_timestamp]`` in a v3.0 concatenated MP4). On the first query of a segment, its decoded size
    (``frames × H × W × 3`` bytes, from its duration and the stream's rate) is compared with what is left of
    ``cache_mb`` (MiB, per process): if it fits, only that segment is decoded (seek to the keyframe at or before its
    start, decode to its end) into a uint8 ``(N, 3, H, W)`` array and later queries are served by nearest pts, so a
    dataset loaded with a subset of ``episodes`` decodes only those episodes, never the whole file. A query without a
    segment caches the whole file the same way. What does not fit uses the seek path with a cached open container.
    Cached frames are never evicted, so the memory used stays below the budget and random access never re-decodes
    a segment repeatedly. ``cache_mb=0`` disables the cache.

    Safe with DataLoader workers: PyAV containers are dropped when the process id changes (fork) and when the object
    is pickled; decoded arrays survive ``fork`` (plain numpy) but are not pickled.

    Args:
        cache_mb: decoded-frame budget in MiB for this process.
        max_open: maximal number of simultaneously open containers (LRU).
    """

    def __init__(self, cache_mb: float = 512, max_open: int = 8):
        self.cache_mb = float(cache_mb)
        self.max_open = int(max_open)
        self._reset(keep_frames=False)

    def _forget_containers(self) -> None:
        """Drop (without closing) containers inherited from another process."""
        if self._containers and os.getpid() != self._pid:
            _INHERITED.extend(self._containers.values())
        self._containers = OrderedDict()
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def _reset(self, keep_frames: bool) -> None:
        _READERS.add(self)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._containers: OrderedDict[str, tuple] = OrderedDict()
        if not keep_frames:
            self._frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            self._segments: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}
            self._cached_bytes = 0
            self._seek_only: set[str] = set()
            self._seek_only_segments: set[tuple[str, float]] = set()

    def __getstate__(self):
        return {"cache_mb": self.cache_mb, "max_open": self.max_open}

    def __setstate__(self, state):
        self.cache_mb = state["cache_mb"]
        self.max_open = state["max_open"]
        self._reset(keep_frames=False)

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded frames currently held by the whole-file cache in this process."""
        return self._cached_bytes

    def is_cached(self, path: str | Path) -> bool:
        """Whether ``path`` is currently served from the whole-file cache in this process."""
        return str(path) in self._frames

    def cached_segments(self, path: str | Path) -> list[float]:
        """Start times (seconds in the file) of the segments of ``path`` held decoded in this process, sorted."""
        key = str(path)
        return sorted(start for p, start in self._segments if p == key)

    def close(self) -> None:
        """Close the open containers of this process (decoded frames are kept)."""
        if os.getpid() == self._pid:
            for container, _ in self._containers.values():
                try:
                    container.close()
                except Exception:  # pragma: no cover - best effort
                    pass
        self._containers.clear()

    def _check_pid(self) -> None:
        if os.getpid() != self._pid:
            # Forked: the parent's PyAV objects must not be touched (nor closed) here.
            self._forget_containers()

    def _open(self, path: str):
        entry = self._containers.get(path)
        if entry is not None:
            self._containers.move_to_end(path)
            return entry
        entry = _open_container(path)
        self._containers[path] = entry
        while len(self._containers) > self.max_open:
            _, (old, _) = self._containers.popitem(last=False)
            try:
                old.close()
            except Exception:  # pragma: no cover
                pass
        return entry

    def _drop_container(self, path: str) -> None:
        entry = self._containers.pop(path, None)
        if entry is not None:
            try:
                entry[0].close()
            except Exception:  # pragma: no cover
                pass

    def get_frames(
        self,
        path: str | Path,
        timestamps,
        tolerance_s: float = 1e-4,
        episode_index: int | None = None,
        segment: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """Frames nearest to ``timestamps`` (seconds inside the file).

        Args:
            segment: ``(start, end)`` seconds of the part of the file the queries fall in (an episode's
                ``from_timestamp`` / ``to_timestamp``); it is what gets decoded and cached. None: the whole file.

        Returns:
            uint8 array ``(T, 3, H, W)``. It never aliases the cache (safe to modify).

        Raises:
            FileNotFoundError: if ``path`` does not exist (names the file and ``episode_index``).
            FrameTimestampError: if a query has no frame within ``tolerance_s``.
            VideoDecodeError: the decoder failed (a truncated or corrupt file); names the file, the episode and the
                requested times.
        """
        try:
            return self._get_frames(path, timestamps, tolerance_s, episode_index, segment)
        except (FileNotFoundError, FrameTimestampError):
            raise
        except Exception as e:  # noqa: BLE001 - PyAV/FFmpeg errors do not name the file
            ep = f" (episode {episode_index})" if episode_index is not None else ""
            times = np.atleast_1d(np.asarray(timestamps, dtype=np.float64))[:4].round(4).tolist()
            raise VideoDecodeError(f"{path}{ep}: cannot decode frames at {times} s (truncated or corrupt video?): "
                                   f"{type(e).__name__}: {str(e)[:300]}") from e

    def _get_frames(self, path: str | Path, timestamps, tolerance_s: float, episode_index: int | None,
                    segment: tuple[float, float] | None = None) -> np.ndarray:
        self._check_pid()
        key = str(path)
        query = np.atleast_1d(np.asarray(timestamps, dtype=np.float64))
        with self._lock:
            cached = self._frames.get(key)
            whole_file = cached is not None
            if cached is None and segment is not None:
                seg_key = (key, float(segment[0]))
                cached = self._segments.get(seg_key)
                if cached is None and seg_key not in self._seek_only_segments:
                    cached = self._maybe_cache_segment(key, seg_key, segment, tolerance_s, episode_index)
            elif cached is None and key not in self._seek_only:
                cached = self._maybe_cache(key, episode_index)
                whole_file = cached is not None
            if cached is not None:
                frames, times = cached
                try:
                    return frames[match_frames(query, times, tolerance_s, key, episode_index)]
                except FrameTimestampError:
                    if whole_file:
                        raise
                    # a query outside its segment (episode metadata off by a frame): the seek path decides
            try:
                container, stream = self._open(key)
            except FileNotFoundError:
                raise self._missing(key, episode_index) from None
            try:
                frames, _ = _seek_decode(container, stream, query, tolerance_s, key, episode_index)
            except FrameTimestampError:
                raise
            except Exception:
                # A decoder left in a bad state must not poison later calls: reopen next time.
                self._drop_container(key)
                raise
            return frames

    @staticmethod
    def _missing(path: str, episode_index) -> FileNotFoundError:
        ep = f" (needed by episode {episode_index})" if episode_index is not None else ""
        return FileNotFoundError(f"video file not found: {path}{ep}")

    def _maybe_cache_segment(self, key: str, seg_key: tuple[str, float], segment: tuple[float, float],
                             tolerance_s: float, episode_index):
        if not os.path.isfile(key):
            raise self._missing(key, episode_index)
        start, end = float(segment[0]), float(segment[1])
        if self.cache_mb <= 0 or not end >= start:
            self._seek_only_segments.add(seg_key)
            return None
        container, stream = self._open(key)
        ctx = stream.codec_context
        rate = float(stream.average_rate or 0) or 30.0
        n = int(round((end - start) * rate)) + 2  # both ends, and a rounding margin
        if self._cached_bytes + n * ctx.width * ctx.height * 3 > self.cache_mb * 1024 * 1024:
            self._seek_only_segments.add(seg_key)
            return None
        try:
            frames, times = _decode_range(container, stream, start - tolerance_s, end + tolerance_s, expected=n)
        except Exception:
            self._drop_container(key)  # a decoder left in a bad state must not poison later calls
            raise
        self._segments[seg_key] = (frames, times)
        self._cached_bytes += frames.nbytes
        return frames, times

    def _maybe_cache(self, key: str, episode_index):
        if not os.path.isfile(key):
            raise self._missing(key, episode_index)
        if self.cache_mb <= 0:
            self._seek_only.add(key)
            return None
        container, stream = self._open(key)
        ctx = stream.codec_context
        n = int(stream.frames or 0)
        if n <= 0 and stream.duration is not None and stream.average_rate:
            n = int(round(float(stream.duration * stream.time_base) * float(stream.average_rate))) + 1
        nbytes = n * ctx.width * ctx.height * 3
        if n <= 0 or self._cached_bytes + nbytes > self.cache_mb * 1024 * 1024:
            self._seek_only.add(key)
            return None
        frames, times = _decode_all(container, stream)
        self._frames[key] = (frames, times)
        self._cached_bytes += frames.nbytes
        # The whole file is in memory: the container is no longer needed.
        self._drop_container(key)
        return frames, times
