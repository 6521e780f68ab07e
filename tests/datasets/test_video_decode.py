"""Video decoding: robolearn frames vs frames decoded directly with PyAV; whole-file cache vs seek path."""

import os
import pickle

import av
import numpy as np
import pytest
import torch

from robolearn.datasets.errors import FrameTimestampError
from robolearn.datasets.lerobot_dataset import LeRobotDataset
from robolearn.datasets.video import VideoFrameReader, decode_all_frames, decode_video_frames, probe_video

PUSHT_MP4 = "lerobot_written_pusht_random/videos/observation.image/chunk-000/file-000.mp4"
OPEN50_MP4 = "yipiandanxinxiangyangkai__open_50/videos/image/chunk-000/file-003.mp4"


def _pyav_frame(path, t, tol=1e-4):
    """Reference: decode sequentially with plain PyAV and return the frame whose pts time is t, as (3, H, W)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            if abs(float(f.pts * s.time_base) - t) <= tol:
                return f.to_ndarray(format="rgb24").transpose(2, 0, 1)
    raise AssertionError(f"no frame at {t}")


def test_probe_real_codec(shared_datasets):
    p = probe_video(shared_datasets / PUSHT_MP4)
    assert p.codec == "av1" and (p.width, p.height) == (96, 96) and p.num_frames == 500 and p.fps == 10
    q = probe_video(shared_datasets / OPEN50_MP4)
    assert q.codec == "mpeg4"  # info.json claims h264
    assert (q.width, q.height) == (640, 480) and q.pix_fmt == "yuv420p"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        probe_video(shared_datasets / "nope.mp4")


def test_pusht_frame_equals_pyav(shared_datasets):
    ds = LeRobotDataset("p", root=shared_datasets / "lerobot_written_pusht_random", return_uint8=True, video_cache_mb=0)
    pos = 237  # episode 2, frame 37: 20 s + 3.7 s in the mp4
    item = ds[pos]
    assert int(item["episode_index"]) == 2 and int(item["frame_index"]) == 37
    ref = _pyav_frame(shared_datasets / PUSHT_MP4, 23.7)
    np.testing.assert_array_equal(item["observation.image"].numpy(), ref)
    f = ds[pos]
    ds2 = LeRobotDataset("p", root=shared_datasets / "lerobot_written_pusht_random")  # float path, episode cache
    torch.testing.assert_close(ds2[pos]["observation.image"], f["observation.image"].float() / 255)
    assert ds2._video_reader.cached_segments(ds2._vid_path["observation.image"][2]) == [20.0]  # episode 2 only


def test_open50_mpeg4_frame_equals_pyav(shared_datasets):
    root = shared_datasets / "yipiandanxinxiangyangkai__open_50"
    ds = LeRobotDataset("y/open_50", root=root, episodes=[3], return_uint8=True, video_cache_mb=0)
    item = ds[150]
    assert item["image"].shape == (3, 480, 640)
    np.testing.assert_array_equal(item["image"].numpy(), _pyav_frame(shared_datasets / OPEN50_MP4, 150 / 30))
    # the last frame of the episode: to_timestamp is (length-1)/fps in this dataset
    last = ds[len(ds) - 1]
    t_last = float(last["timestamp"])
    np.testing.assert_array_equal(last["image"].numpy(), _pyav_frame(shared_datasets / OPEN50_MP4, t_last))


def test_whole_file_cache_equals_seek(shared_datasets):
    path = shared_datasets / PUSHT_MP4
    times = np.array([0.0, 0.1, 0.5, 9.9, 10.0, 23.7, 23.8, 49.9, 12.3])
    seek = VideoFrameReader(cache_mb=0)
    cached = VideoFrameReader(cache_mb=64)
    a = seek.get_frames(path, times)
    b = cached.get_frames(path, times)
    assert cached.is_cached(path) and not seek.is_cached(path)
    assert a.shape == (9, 3, 96, 96) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, decode_video_frames(path, times))
    frames, ts = decode_all_frames(path)
    assert frames.shape == (500, 3, 96, 96) and np.allclose(ts, np.arange(500) / 10)
    np.testing.assert_array_equal(a, frames[np.round(times * 10).astype(int)])
    # the same across every frame of one episode, through the dataset
    kw = dict(root=shared_datasets / "lerobot_written_pusht_random", episodes=[4], return_uint8=True)
    d_seek = LeRobotDataset("p", video_cache_mb=0, **kw)
    d_cache = LeRobotDataset("p", video_cache_mb=64, **kw)
    for i in range(0, 100, 7):
        assert torch.equal(d_seek[i]["observation.image"], d_cache[i]["observation.image"])


def test_budget_too_small_uses_seek(shared_datasets):
    r = VideoFrameReader(cache_mb=1)  # 500 x 96 x 96 x 3 = 13.8 MB does not fit
    r.get_frames(shared_datasets / PUSHT_MP4, [1.0])
    assert not r.is_cached(shared_datasets / PUSHT_MP4) and r.cached_bytes == 0


def test_timestamp_beyond_tolerance(shared_datasets):
    path = shared_datasets / PUSHT_MP4
    with pytest.raises(FrameTimestampError, match=r"file-000\.mp4.*0\.05"):
        decode_video_frames(path, [0.05])
    with pytest.raises(FrameTimestampError, match="file-000.mp4"):
        VideoFrameReader(cache_mb=64).get_frames(path, [60.0])
    ds = LeRobotDataset("p", root=shared_datasets / "lerobot_written_pusht_random", video_cache_mb=0)
    ds._vid_from["observation.image"][1] += 0.05  # pretend episode 1 starts half a frame later in the mp4
    with pytest.raises(FrameTimestampError, match=r"file-000\.mp4, episode 1.*10\.05"):
        ds[100]
    assert ds[0]["observation.image"].shape == (3, 96, 96)  # other episodes unaffected


def test_reader_fork_and_pickle_safety(shared_datasets):
    path = shared_datasets / PUSHT_MP4
    r = VideoFrameReader(cache_mb=0)
    a = r.get_frames(path, [3.0])
    assert len(r._containers) == 1
    r2 = pickle.loads(pickle.dumps(r))
    assert r2._containers == {} and r2.cache_mb == 0
    np.testing.assert_array_equal(r2.get_frames(path, [3.0]), a)
    pid = os.fork()
    if pid == 0:  # child: inherited containers are set aside, a fresh one is opened
        try:
            ok = np.array_equal(r.get_frames(path, [3.0]), a) and len(r._containers) == 1
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_an_episode_subset_decodes_only_its_episodes(shared_datasets):
    """The decoded-frame cache holds the selected episodes' segments of the concatenated MP4, not the whole file, and
    serves the same frames as the seek path; a query outside its segment still resolves by seeking."""
    root = shared_datasets / "lerobot_written_pusht_random"
    path = shared_datasets / PUSHT_MP4
    sub = LeRobotDataset("p", root=root, episodes=[1, 3], return_uint8=True, video_cache_mb=64)
    seek = LeRobotDataset("p", root=root, episodes=[1, 3], return_uint8=True, video_cache_mb=0)
    for i in range(0, len(sub), 9):
        assert torch.equal(sub[i]["observation.image"], seek[i]["observation.image"])
    reader = sub._video_reader
    assert reader.cached_segments(path) == [10.0, 30.0] and not reader.is_cached(path)
    assert reader.cached_bytes <= 2 * 102 * 96 * 96 * 3  # two 100-frame episodes (+ a frame at each end), not 500
    # the whole-file path without a segment, and the fallback for a query outside the cached segment
    r = VideoFrameReader(cache_mb=64)
    seg = r.get_frames(path, [10.0, 19.9], segment=(10.0, 20.0))
    outside = r.get_frames(path, [25.0], segment=(10.0, 20.0))
    np.testing.assert_array_equal(seg, decode_video_frames(path, [10.0, 19.9]))
    np.testing.assert_array_equal(outside, decode_video_frames(path, [25.0]))
    assert r.cached_segments(path) == [10.0]
    tiny = VideoFrameReader(cache_mb=0.1)  # 100 frames of 96x96 do not fit: seek path, nothing held
    np.testing.assert_array_equal(tiny.get_frames(path, [12.0], segment=(10.0, 20.0)), decode_video_frames(path, [12.0]))
    assert tiny.cached_bytes == 0 and tiny.cached_segments(path) == []
