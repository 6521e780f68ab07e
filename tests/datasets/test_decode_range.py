"""``robolearn.datasets.video._decode_range`` (what an episode segment of the decoded-frame cache is filled with):
the same frames and times as the whole-file decode, whether its preallocated array is too small (grown), exact or
too large (trimmed)."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.datasets.video import _decode_range, _open_container, decode_all_frames
from robolearn.datasets.video_encode import encode_video_frames


@pytest.mark.parametrize("expected", [0, 1, 8, 100])
def test_decode_range_matches_whole_file(tmp_path, expected):
    yy, xx = np.mgrid[0:32, 0:48]
    frames = np.stack([np.stack([(xx * 5 + 9 * t) % 256, (yy * 7 + 3 * t) % 256, np.full_like(xx, 20 * t % 256)], -1)
                       for t in range(20)]).astype(np.uint8)
    path = encode_video_frames(frames, tmp_path / "v.mp4", fps=10, vcodec="libx264")
    all_frames, all_times = decode_all_frames(path)
    keep = (all_times >= 0.5 - 1e-4) & (all_times <= 1.2 + 1e-4)
    container, stream = _open_container(str(path))
    with container:
        got, times = _decode_range(container, stream, 0.5 - 1e-4, 1.2 + 1e-4, expected=expected)
    assert got.shape == (8, 3, 32, 48) and got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_allclose(times, all_times[keep])
    np.testing.assert_array_equal(got, all_frames[keep])
    assert got.base is None or got.base.shape[0] <= 8 + 4  # a grown buffer is trimmed, not kept whole


@pytest.mark.parametrize("vcodec", ["libsvtav1", "libx264"])
def test_seek_path_equals_whole_file_for_every_frame(tmp_path, vcodec):
    """The seek path (seek to the keyframe at or before the rounded query, decode forward) returns the frame the
    whole-file decode has at every time of a GOP-2 file, for queries off by float rounding or up to 90 % of the
    tolerance either way, and 2-frame windows decode 2 or 3 frames (keyframe, maybe one before the window)."""
    from robolearn.datasets.video import _frames_from, decode_video_frames

    yy, xx = np.mgrid[0:32, 0:48]
    frames = np.stack([np.stack([(xx * 5 + 9 * t) % 256, (yy * 7 + 3 * t) % 256, np.full_like(xx, 11 * t % 256)], -1)
                       for t in range(24)]).astype(np.uint8)
    path = encode_video_frames(frames, tmp_path / "v.mp4", fps=30, vcodec=vcodec)  # g=2, as lerobot records
    all_frames, all_times = decode_all_frames(path)
    tol = 1e-4
    for i, t in enumerate(all_times):
        for q in (t, float(np.float32(t)), t + 0.9 * tol, max(t - 0.9 * tol, 0.0)):
            np.testing.assert_array_equal(decode_video_frames(path, [q], tolerance_s=tol)[0], all_frames[i])
    container, stream = _open_container(str(path))
    with container:
        for i in range(1, len(all_times)):
            n = 0
            for t, _ in _frames_from(container, stream, float(np.float32(all_times[i - 1]))):
                n += 1
                if t >= all_times[i] - 1e-6:
                    break
            assert n in (2, 3), (i, n)
