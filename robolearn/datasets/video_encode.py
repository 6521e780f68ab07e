"""Video encoding for the dataset writer: encode an episode to mp4, append mp4s by stream copy, probe a file.

Everything goes through PyAV (no ``ffmpeg`` binary). The defaults are lerobot's recording defaults
(``libsvtav1``, ``yuv420p``, GOP 2, CRF 30, preset 12), so a robolearn-written video looks like a
lerobot-written one to any reader.

Timestamps: frames of an encoded episode have ``pts = i / fps`` seconds (``i`` = frame index). When mp4s are
concatenated, every later file is shifted by the total duration of the files before it, so frame ``i`` of the
``k``-th appended episode sits at ``from_timestamp_k + i / fps`` in the output.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import av
import numpy as np

# SVT-AV1 prints its whole configuration at info level for every encoder it opens; keep errors only
# unless the user asked for something else.
os.environ.setdefault("SVT_LOG", "1")

DEFAULT_PIX_FMT = "yuv420p"
DEFAULT_G = 2
DEFAULT_CRF = 30
LIBSVTAV1_DEFAULT_PRESET = 12

# User-facing codec names -> PyAV encoder names.
_CODEC_ALIASES = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265"}


def available_encoders() -> set[str]:
    """Names of the video encoders this PyAV build can open (e.g. ``{"libsvtav1", "libx264"}``)."""
    return set(av.codecs_available)


def resolve_vcodec(vcodec: str = "auto") -> str:
    """Map a user codec name to a PyAV encoder name.

    ``"auto"`` → ``libsvtav1`` when PyAV has it, else ``libx264``. ``"av1"`` → ``libsvtav1``,
    ``"h264"`` → ``libx264``, ``"hevc"`` → ``libx265``; any other name is used as is.

    Raises:
        ValueError: if the resulting encoder is not available in this PyAV build.
    """
    have = available_encoders()
    if vcodec == "auto":
        for cand in ("libsvtav1", "libx264"):
            if cand in have:
                return cand
        raise ValueError("vcodec='auto': neither libsvtav1 nor libx264 is available in this PyAV build")
    name = _CODEC_ALIASES.get(vcodec, vcodec)
    if name not in have:
        raise ValueError(f"video encoder '{name}' (from vcodec='{vcodec}') is not available in this PyAV build")
    return name


def encoder_settings(vcodec: str, g: int | None = DEFAULT_G, crf: int | None = DEFAULT_CRF,
                     preset: int | str | None = None, fast_decode: int = 0,
                     extra_options: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build the PyAV ``options`` dict for an encoder, as lerobot sets them.

    - ``libsvtav1``: ``g``, ``crf``, ``preset`` (default 12) and ``svtav1-params=fast-decode=<n>``.
    - ``libx264`` / ``libx265``: ``g``, ``crf``, ``preset`` when given, ``tune=fastdecode`` when
      ``fast_decode`` > 0, and ``bf=0`` (no B-frames, so that packets stay in presentation order and files
      can be appended by stream copy without reordering issues).
    """
    opts: dict[str, str] = {}
    if g is not None:
        opts["g"] = str(g)
    if crf is not None:
        opts["crf"] = str(crf)
    if vcodec == "libsvtav1":
        opts["preset"] = str(LIBSVTAV1_DEFAULT_PRESET if preset is None else preset)
        opts["svtav1-params"] = f"fast-decode={int(fast_decode)}"
    elif vcodec in ("libx264", "libx265"):
        if preset is not None:
            opts["preset"] = str(preset)
        if fast_decode:
            opts["tune"] = "fastdecode"
        opts["bf"] = "0"
    elif preset is not None:
        opts["preset"] = str(preset)
    if extra_options:
        opts.update({str(k): str(v) for k, v in extra_options.items()})
    return opts


def encode_video_frames(frames: np.ndarray | Sequence[np.ndarray], path: str | os.PathLike, fps: int,
                        vcodec: str = "auto", pix_fmt: str = DEFAULT_PIX_FMT, g: int | None = DEFAULT_G,
                        crf: int | None = DEFAULT_CRF, preset: int | str | None = None, fast_decode: int = 0,
                        extra_options: Mapping[str, str] | None = None) -> Path:
    """Encode RGB frames to an mp4 file with PyAV.

    Args:
        frames: uint8 array ``(T, H, W, 3)`` (or a sequence of ``(H, W, 3)`` uint8 arrays), ``T >= 1``.
        path: output ``.mp4`` path; its parent must exist. The file is written in place (callers that need
            atomicity write to a temporary name and move it).
        fps: frames per second (int > 0); frame ``i`` gets presentation time ``i / fps`` s.
        vcodec: ``"auto"``, ``"libsvtav1"``/``"av1"``, ``"libx264"``/``"h264"``, ... (see :func:`resolve_vcodec`).
        pix_fmt, g, crf, preset, fast_decode, extra_options: encoder settings (see :func:`encoder_settings`).

    Returns:
        The output path.

    Raises:
        ValueError: empty input, wrong dtype/shape, non-positive fps, or an unavailable encoder.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not isinstance(frames, np.ndarray):
        frames = np.stack([np.asarray(f) for f in frames]) if len(frames) else np.zeros((0,), np.uint8)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be a non-empty uint8 array (T, H, W, 3), got shape {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    codec = resolve_vcodec(vcodec)
    options = encoder_settings(codec, g=g, crf=crf, preset=preset, fast_decode=fast_decode,
                               extra_options=extra_options)
    _, height, width, _ = frames.shape
    path = Path(path)
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream(codec, rate=Fraction(int(fps), 1), options=options)
        stream.pix_fmt = pix_fmt
        stream.width = int(width)
        stream.height = int(height)
        stream.codec_context.time_base = Fraction(1, int(fps))
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, int(fps))
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def get_video_duration_s(path: str | os.PathLike) -> float:
    """Duration in seconds of the first video stream of an mp4: end of the last frame (last pts + its
    duration) minus the first pts. For an episode of ``T`` frames at ``fps`` this is ``T / fps``.

    Raises:
        ValueError: if the file has no video stream or no packets.
    """
    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ValueError(f"{path}: no video stream")
        s = c.streams.video[0]
        first, end = None, None
        for p in c.demux(s):
            if p.pts is None:
                continue
            first = p.pts if first is None else min(first, p.pts)
            e = p.pts + (p.duration or 0)
            end = e if end is None else max(end, e)
        if first is None:
            raise ValueError(f"{path}: video stream has no packets")
        return float((end - first) * s.time_base)


def concatenate_video_files(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> Path:
    """Concatenate mp4 files by stream copy (remux, no re-encode) into ``output``.

    All inputs must hold one video stream with the same codec, size and pixel format (e.g. episodes encoded
    with the same settings). Packet timestamps of input ``k`` are shifted by the summed durations of inputs
    ``0..k-1`` so presentation times continue across files. The result is written to a temporary file next to
    ``output`` and moved over it with ``os.replace``, so ``output`` may also be one of the inputs (appending).

    Args:
        inputs: one or more mp4 paths, in order.
        output: destination mp4 path.

    Returns:
        The output path.

    Raises:
        ValueError: no inputs, an input without a video stream, or mismatched stream parameters.
    """
    if not inputs:
        raise ValueError("concatenate_video_files needs at least one input")
    output = Path(output)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.concat.tmp")
    try:
        with av.open(str(inputs[0])) as first:
            if not first.streams.video:
                raise ValueError(f"{inputs[0]}: no video stream")
            tmpl = first.streams.video[0]
            ref = (tmpl.codec_context.name, tmpl.codec_context.width, tmpl.codec_context.height,
                   tmpl.codec_context.format.name if tmpl.codec_context.format else None)
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
                ostream = out.add_stream_from_template(tmpl, opaque=True)
                offset_s = Fraction(0)  # start time of the current input inside the output, seconds
                for path in inputs:
                    with av.open(str(path)) as c:
                        if not c.streams.video:
                            raise ValueError(f"{path}: no video stream")
                        s = c.streams.video[0]
                        cc = s.codec_context
                        got = (cc.name, cc.width, cc.height, cc.format.name if cc.format else None)
                        if got != ref:
                            raise ValueError(f"{path}: stream {got} differs from the first input's {ref}")
                        tb = s.time_base
                        off = int(round(offset_s / tb))
                        first_pts, end = None, None
                        for p in c.demux(s):
                            if p.pts is None and p.dts is None:
                                continue  # flush packet
                            if p.pts is not None:
                                first_pts = p.pts if first_pts is None else min(first_pts, p.pts)
                                e = p.pts + (p.duration or 0)
                                end = e if end is None else max(end, e)
                                p.pts += off
                            if p.dts is not None:
                                p.dts += off
                            p.stream = ostream
                            out.mux(p)
                        if first_pts is not None:
                            offset_s += Fraction(end - first_pts) * tb
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    return output


def probe_video_info(path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the ``info`` block lerobot stores for a video feature in ``meta/info.json``.

    Keys, in lerobot's order: ``video.height``, ``video.width``, ``video.codec`` (canonical name reported by
    PyAV, e.g. ``"av1"``/``"h264"``), ``video.pix_fmt``, ``video.fps`` (int), ``video.channels``,
    ``has_audio`` (+ ``audio.*`` when there is audio), then ``extra`` (the encoder settings
    ``video.g``/``video.crf``/... that lerobot ≥0.6 records), then ``is_depth_map`` (False).

    Raises:
        ValueError: if the file has no video stream.
    """
    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ValueError(f"{path}: no video stream")
        s = c.streams.video[0]
        cc = s.codec_context
        pix_fmt = cc.format.name if cc.format is not None else None
        channels = 3
        if pix_fmt and pix_fmt.startswith("gray"):
            channels = 1
        elif pix_fmt and pix_fmt.startswith(("rgba", "bgra", "argb", "abgr", "yuva")):
            channels = 4
        rate = s.average_rate or s.base_rate
        info: dict[str, Any] = {
            "video.height": int(cc.height),
            "video.width": int(cc.width),
            "video.codec": cc.codec.canonical_name,
            "video.pix_fmt": pix_fmt,
            "video.fps": int(round(float(rate))) if rate else None,
            "video.channels": channels,
            "has_audio": bool(c.streams.audio),
        }
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio.codec"] = a.codec_context.codec.canonical_name
            info["audio.sample_rate"] = a.codec_context.sample_rate
            info["audio.channels"] = a.codec_context.channels
        if extra:
            info.update(extra)
        info["is_depth_map"] = False
        return info


def iter_decoded_frames(path: str | os.PathLike) -> Iterable[tuple[float, np.ndarray]]:
    """Yield ``(pts_seconds, uint8 (H, W, 3) RGB)`` for every frame of the first video stream (test helper)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            yield float(f.pts * s.time_base), f.to_ndarray(format="rgb24")
