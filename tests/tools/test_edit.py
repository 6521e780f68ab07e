"""Dataset edit ops: each writes a new dataset, renumbers indices, recomputes stats and leaves the input untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robolearn.datasets import LeRobotDataset, LeRobotDatasetWriter
from robolearn.tools.edit import ops
from robolearn.tools.edit.__main__ import main as edit_main
from robolearn.tools.edit.video_ops import decode_segment
from robolearn.datasets.stats import compute_episode_stats
from robolearn.datasets.validate import validate_dataset
from robolearn.datasets.video import probe_video

LENGTHS = (5, 6, 7, 8)
TASKS = ("pick", "place")
CAM = "observation.images.top"


def pixel(ep: int, i: int) -> int:
    """Grey level of frame i of episode ep in the tiny dataset (distinct per frame)."""
    return (40 + 50 * ep + 6 * i) % 256


def make_tiny(root: Path, lengths=LENGTHS, with_video: bool = True, extra_feature: bool = False) -> Path:
    """4 short episodes at 10 fps: state (3,) = [ep, frame, 100*ep+frame], action (2,), a 16x16 camera whose
    frame (ep, i) is uniformly ``pixel(ep, i)``, tasks alternating pick/place."""
    feats = {"observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
             "action": {"dtype": "float32", "shape": [2], "names": None}}
    if with_video:
        feats[CAM] = {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]}
    if extra_feature:
        feats["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    with LeRobotDatasetWriter.create("test/tiny", 10, feats, root=root, use_videos=with_video,
                                     vcodec="libsvtav1") as w:
        for ep, n in enumerate(lengths):
            for i in range(n):
                fr = {"observation.state": np.array([ep, i, 100 * ep + i], np.float32),
                      "action": np.array([ep * 0.5, -i], np.float32), "task": TASKS[ep % 2]}
                if with_video:
                    fr[CAM] = np.full((16, 16, 3), pixel(ep, i), np.uint8)
                if extra_feature:
                    fr["next.reward"] = np.array([i / 10], np.float32)
                w.add_frame(fr)
            w.save_episode()
    return root


def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file under root (relative path -> hex)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("edit") / "tiny")


@pytest.fixture()
def untouched(tiny):
    before = tree_hash(tiny)
    yield tiny
    assert tree_hash(tiny) == before, "the input dataset was modified"


def _data(root: Path) -> dict[str, np.ndarray]:
    t = pq.read_table(sorted((root / "data").glob("*/*.parquet")))
    return {c: np.asarray(t.column(c).to_pylist()) for c in t.column_names}


def _clean(root: Path) -> None:
    problems = validate_dataset(root)
    assert problems == [], "\n".join(map(str, problems))


def _stats(root: Path) -> dict:
    return json.loads((root / "meta/stats.json").read_text())


def test_delete_episodes_renumbers_and_recuts_videos(untouched, tmp_path):
    out = ops.delete_episodes(untouched, tmp_path / "out", [1])
    _clean(out)
    d = _data(out)
    lengths = [LENGTHS[0], LENGTHS[2], LENGTHS[3]]
    assert d["index"].tolist() == list(range(sum(lengths)))
    assert d["episode_index"].tolist() == [e for e, n in enumerate(lengths) for _ in range(n)]
    # Output episode 1 is input episode 2: its rows and its task.
    rows = d["episode_index"] == 1
    np.testing.assert_array_equal(d["observation.state"][rows][:, 2], 200 + np.arange(LENGTHS[2]))
    assert set(d["task_index"][rows].tolist()) == {0}  # "pick" (input ep 2) is task 0 in the output
    ds = LeRobotDataset("x", root=out, return_uint8=True)
    assert len(ds) == sum(lengths)
    for pos, (ep, i) in {LENGTHS[0]: (2, 0), LENGTHS[0] + 3: (2, 3), len(ds) - 1: (3, LENGTHS[3] - 1)}.items():
        img = ds[pos][CAM].numpy()
        assert abs(float(img.mean()) - pixel(ep, i)) < 4, (pos, float(img.mean()), pixel(ep, i))
    st = _stats(out)
    assert st["observation.state"]["count"] == [sum(lengths)]
    np.testing.assert_allclose(st["observation.state"]["max"], [3, LENGTHS[3] - 1, 300 + LENGTHS[3] - 1])
    assert np.asarray(st[CAM]["q50"]).shape == (3, 1, 1)
    assert st["episode_index"]["max"] == [2]


def test_delete_unknown_episode_is_an_error(untouched, tmp_path):
    with pytest.raises(KeyError, match=r"\[9\]"):
        ops.delete_episodes(untouched, tmp_path / "out", [9])
    assert not (tmp_path / "out").exists()


def test_split_by_fractions(untouched, tmp_path):
    rc = edit_main(["split", str(untouched), "--splits", "train=0.5,val=0.5", "--out", str(tmp_path / "s")])
    assert rc == 0
    train, val = tmp_path / "s" / "train", tmp_path / "s" / "val"
    for r in (train, val):
        _clean(r)
    dv = _data(val)
    assert dv["index"].tolist() == list(range(LENGTHS[2] + LENGTHS[3]))
    assert sorted(set(dv["episode_index"].tolist())) == [0, 1]
    np.testing.assert_array_equal(dv["observation.state"][:, 0], [2] * LENGTHS[2] + [3] * LENGTHS[3])
    assert json.loads((val / "meta/info.json").read_text())["total_episodes"] == 2
    with pytest.raises(ValueError, match="sum to"):
        ops.split_episodes(4, {"a": 0.7, "b": 0.6})


def test_merge_and_merge_mismatch(untouched, tmp_path):
    other = ops.delete_episodes(untouched, tmp_path / "other", [0, 2])
    out = ops.merge_datasets([untouched, other], tmp_path / "merged")
    _clean(out)
    d = _data(out)
    assert d["index"].tolist() == list(range(sum(LENGTHS) + LENGTHS[1] + LENGTHS[3]))
    assert d["episode_index"].max() == 5
    tail = d["episode_index"] == 5  # last episode = other's episode 1 = input episode 3
    np.testing.assert_array_equal(d["observation.state"][tail][:, 2], 300 + np.arange(LENGTHS[3]))
    assert pq.read_table(out / "meta/tasks.parquet").num_rows == 2
    assert _stats(out)["action"]["count"] == [len(d["index"])]

    tab = make_tiny(tmp_path / "tab", lengths=(3, 3), with_video=False, extra_feature=True)
    with pytest.raises(ValueError) as e:
        ops.merge_datasets([untouched, tab], tmp_path / "bad")
    msg = str(e.value)
    assert CAM in msg and "next.reward" in msg
    assert not (tmp_path / "bad").exists()


def test_remove_feature(untouched, tmp_path):
    out = ops.remove_feature(untouched, tmp_path / "out", [CAM])
    _clean(out)
    info = json.loads((out / "meta/info.json").read_text())
    assert CAM not in info["features"] and info["video_path"] is None
    assert not (out / "videos").exists() and CAM not in _stats(out)
    with pytest.raises(ValueError, match="default"):
        ops.remove_feature(untouched, tmp_path / "o2", ["index"])


def test_rename_camera(untouched, tmp_path):
    new = "observation.images.front"
    rc = edit_main(["rename-feature", str(untouched), "--rename", f"{CAM}={new}", "--out", str(tmp_path / "out")])
    assert rc == 0
    out = tmp_path / "out"
    _clean(out)
    assert (out / "videos" / new).is_dir() and not (out / "videos" / CAM).exists()
    assert new in _stats(out) and CAM not in _stats(out)
    item = LeRobotDataset("x", root=out)[0]
    assert tuple(item[new].shape) == (3, 16, 16)


def test_recompute_stats_matches_data(untouched, tmp_path):
    out = ops.recompute_stats(untouched, tmp_path / "out")
    _clean(out)
    d = _data(out)
    st = _stats(out)
    state = d["observation.state"].astype(np.float64)
    np.testing.assert_allclose(st["observation.state"]["mean"], state.mean(0), rtol=1e-6)
    np.testing.assert_allclose(st["observation.state"]["min"], state.min(0))
    # Per-episode stats of episode 3 against a direct recomputation.
    ep = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()[3]
    rows = d["episode_index"] == 3
    direct = compute_episode_stats({"observation.state": state[rows]},
                                   {"observation.state": {"dtype": "float32", "shape": [3]}})["observation.state"]
    for s in ("mean", "std", "q01", "q50", "q99"):
        np.testing.assert_allclose(ep[f"stats/observation.state/{s}"], direct[s], rtol=1e-9)


def test_reencode_videos(untouched, tmp_path):
    out = ops.reencode_videos(untouched, tmp_path / "out", vcodec="libx264", crf=18, g=4)
    _clean(out)
    assert probe_video(out / f"videos/{CAM}/chunk-000/file-000.mp4").codec == "h264"
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"][CAM]["info"]["video.codec"] == "h264"
    row = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()[2]
    frames = decode_segment(out / f"videos/{CAM}/chunk-000/file-000.mp4",
                            row[f"videos/{CAM}/from_timestamp"], LENGTHS[2], 10)
    assert abs(float(frames[4].mean()) - pixel(2, 4)) < 4
