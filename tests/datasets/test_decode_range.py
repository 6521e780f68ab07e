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
