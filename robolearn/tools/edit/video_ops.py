"""Video helpers for dataset tools: cut one episode out of an mp4 (stream copy, or decode + re-encode when a copy
is impossible), re-encode a segment, and decode the frames needed for camera stats.

Times are seconds inside the source mp4. An episode of ``n`` frames at ``fps`` that starts at ``from_s`` owns the
frames whose presentation time lies in ``[from_s - 0.5/fps, from_s + (n - 0.5)/fps)`` (half a frame of slack on
both sides, so float rounding of ``from_timestamp`` never moves a frame across an episode boundary).
Encoding and concatenation go through :mod:`robolearn.datasets.video_encode` (PyAV, no ffmpeg binary).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import av
import numpy as np

from robolearn.datasets.stats import sample_indices
from robolearn.datasets.video_encode import encode_video_frames

# Canonical codec names (as probed) -> PyAV encoder used to re-encode a segment in the same codec.
_ENCODER_FOR_CODEC = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265", "mpeg4": "mpeg4"}


def encoder_for_codec(codec: str) -> str:
    """PyAV encoder name that produces streams of the probed ``codec`` (``"av1"`` → ``"libsvtav1"``, ...).

    Raises:
        ValueError: no encoder is known for ``codec``.
    """
    try:
        return _ENCODER_FOR_CODEC[codec]
    except KeyError:
        raise ValueError(f"no encoder known for video codec {codec!r} (known: {sorted(_ENCODER_FOR_CODEC)})") from None


def _window(from_s: float, n_frames: int, fps: int) -> tuple[float, float]:
    half = 0.5 / fps
    return from_s - half, from_s + n_frames / fps - half


def cut_segment_copy(src: str | os.PathLike, from_s: float, n_frames: int, fps: int, out: str | os.PathLike) -> bool:
    """Copy the packets of frames ``[from_s, from_s + n_frames/fps)`` of ``src`` into a new mp4 ``out`` (no
    re-encode); the first copied frame gets time 0.

    A copy is only possible when the first packet of the range is a keyframe and packets come in presentation
    order (no B-frame reordering) and exactly ``n_frames`` packets fall in the range. Otherwise nothing usable is
    written and False is returned (``out`` is removed).

    Returns:
        True when ``out`` holds exactly the episode's ``n_frames`` frames.
    """
    lo, hi = _window(from_s, n_frames, fps)
    out = Path(out)
    ok = True
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        tb = s.time_base
        packets = []
        for p in c.demux(s):
            if p.pts is None:
                continue
            t = float(p.pts * tb)
            if lo <= t < hi:
                packets.append(p)
            elif t >= hi and packets:
                # Packets after the range: stop once presentation order is past it.
                break
        if len(packets) != n_frames or not packets[0].is_keyframe:
            ok = False
        else:
            pts = [p.pts for p in packets]
            if any(b <= a for a, b in zip(pts, pts[1:])):
                ok = False
        if ok:
            off = packets[0].pts
            with av.open(str(out), mode="w", format="mp4", options={"movflags": "faststart"}) as o:
                ostream = o.add_stream_from_template(s, opaque=True)
                for p in packets:
                    p.pts -= off
                    if p.dts is not None:
                        p.dts -= off
                    p.stream = ostream
                    o.mux(p)
    if not ok and out.exists():
        out.unlink()
    return ok


def decode_segment(src: str | os.PathLike, from_s: float, n_frames: int, fps: int,
                   keep: Sequence[int] | None = None) -> dict[int, np.ndarray]:
    """Decode frames of one episode from ``src``.

    Args:
        src: mp4 path.
        from_s: episode start inside the file (s).
        n_frames: episode length (frames).
        fps: frames per second.
        keep: frame indices (0-based within the episode) to return; None → all.

    Returns:
        ``{frame_index: uint8 (H, W, 3) RGB}``.

    Raises:
        ValueError: fewer than ``n_frames`` frames lie in the episode's time range (names the file and range).
    """
    lo, hi = _window(from_s, n_frames, fps)
    wanted = None if keep is None else set(int(i) for i in keep)
    got: dict[int, np.ndarray] = {}
    count = 0
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        tb = s.time_base
        c.seek(max(int(lo / tb), 0) if lo > 0 else 0, stream=s, backward=True, any_frame=False)
        for f in c.decode(s):
            if f.pts is None:
                continue
            t = float(f.pts * tb)
            if t < lo:
                continue
            if t >= hi:
                break
            i = int(round((t - from_s) * fps))
            if wanted is None or i in wanted:
                got[i] = f.to_ndarray(format="rgb24")
            count += 1
    if count != n_frames:
        raise ValueError(f"{src}: expected {n_frames} frames in [{lo:.4f}, {hi:.4f}) s, decoded {count}")
    return got


def reencode_segment(src: str | os.PathLike, from_s: float, n_frames: int, fps: int, out: str | os.PathLike,
                     vcodec: str, encoder: Mapping[str, Any] | None = None) -> Path:
    """Decode the episode's frames from ``src`` and encode them into ``out`` with ``vcodec`` and ``encoder``
    settings (``pix_fmt``, ``g``, ``crf``, ``preset``; see :func:`robolearn.datasets.video_encode.encode_video_frames`).

    Raises:
        ValueError: frame count mismatch (see :func:`decode_segment`) or an unavailable encoder.
    """
    frames = decode_segment(src, from_s, n_frames, fps)
    arr = np.stack([frames[i] for i in range(n_frames)])
    enc = dict(encoder or {})
    return encode_video_frames(arr, out, fps, vcodec=vcodec, pix_fmt=enc.get("pix_fmt", "yuv420p"),
                               g=enc.get("g", 2), crf=enc.get("crf", 30), preset=enc.get("preset"))


class SampledFrames:
    """A length-``n`` frame sequence that holds only the frames used for camera stats.

    ``len()`` is the episode length and ``[i]`` returns uint8 ``(H, W, 3)`` for every ``i`` in
    :func:`robolearn.datasets.stats.sample_indices`\\ ``(n)``, so :func:`compute_episode_stats` gives exactly the
    result it would give on all frames, without holding them all in memory.
    """

    def __init__(self, n: int, frames: Mapping[int, np.ndarray]):
        self._n = int(n)
        self._frames = dict(frames)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> np.ndarray:
        try:
            return self._frames[int(i)]
        except KeyError:
            raise IndexError(f"frame {i} was not decoded (only the stats sample is held)") from None


def stats_frames(src: str | os.PathLike, from_s: float, n_frames: int, fps: int) -> SampledFrames:
    """Decode the stats sample of an episode's frames (see :class:`SampledFrames`)."""
    return SampledFrames(n_frames, decode_segment(src, from_s, n_frames, fps, keep=sample_indices(n_frames)))


def count_frames(path: str | os.PathLike) -> tuple[int, Fraction]:
    """``(number of video packets with a pts, stream time_base)`` of an mp4, by demuxing (no decode)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sum(1 for p in c.demux(s) if p.pts is not None), s.time_base
