"""v2.1 -> v3.0 conversion of the real G1 dataset (tabular-only and video-subset modes) and the failure modes of
lerobot's converter: dropped files, frame counts, missing videos, stats for every feature."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robolearn.datasets import LeRobotDataset
from robolearn.tools.convert.__main__ import main as convert_main
from robolearn.tools.convert.v21 import convert_v21
from robolearn.tools.edit.video_ops import stats_frames
from robolearn.datasets.errors import DatasetFormatError
from robolearn.datasets.stats import aggregate_stats, compute_episode_stats
from robolearn.datasets.validate import validate_dataset

G1 = "YifanTian07__G1-policy-train"
CAM = "observation.images.cam_high"


@pytest.fixture(scope="module")
def g1(shared_datasets) -> Path:
    return shared_datasets / G1


def _src(g1: Path, ep: int):
    return pq.read_table(g1 / f"data/chunk-000/episode_{ep:06d}.parquet")


def _out_rows(root: Path):
    return pq.read_table(sorted((root / "data").glob("*/*.parquet")))


def test_tabular_conversion_preserves_every_row(g1, tmp_path):
    eps = [0, 1, 2, 3, 4, 5]
    rc = convert_main(["v21", str(g1), "--out", str(tmp_path / "out"), "--videos", "skip", "--episodes", "0-5",
                       "--data-file-size-in-mb", "0.3"])
    assert rc == 0
    out = tmp_path / "out"
    assert validate_dataset(out) == []
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and CAM not in info["features"] and info["video_path"] is None
    assert "total_videos" not in info and info["features"]["action"]["fps"] == 30
    assert info["features"]["action"]["names"] == json.loads((g1 / "meta/info.json").read_text())["features"]["action"]["names"]
    assert len(list((out / "data").glob("*/*.parquet"))) > 1  # rolled over at 0.3 MB
    t = _out_rows(out)
    src = [_src(g1, e) for e in eps]
    assert t.num_rows == sum(s.num_rows for s in src)
    ep_col = t.column("episode_index").to_numpy()
    start = 0
    episodes = pq.read_table(sorted((out / "meta/episodes").glob("*/*.parquet"))).to_pylist()
    for e, s in enumerate(src):
        rows = np.nonzero(ep_col == e)[0]
        assert rows.tolist() == list(range(start, start + s.num_rows))
        for col in ("observation.state", "action", "timestamp", "frame_index", "index", "task_index"):
            np.testing.assert_array_equal(np.asarray(t.column(col).take(rows).to_pylist()),
                                          np.asarray(s.column(col).to_pylist()), err_msg=f"episode {e} {col}")
        row = episodes[e]
        assert (row["dataset_from_index"], row["dataset_to_index"], row["length"]) == (start, start + s.num_rows, s.num_rows)
        start += s.num_rows
    # Stats: recomputed from the rows, quantiles included, for every feature.
    feats = {k: v for k, v in info["features"].items()}
    per = []
    for e in range(len(eps)):
        rows = np.nonzero(ep_col == e)[0]
        data = {k: np.asarray(t.column(k).take(rows).to_pylist()) for k in feats}
        per.append(compute_episode_stats(data, feats))
    agg = aggregate_stats(per)
    stats = json.loads((out / "meta/stats.json").read_text())
    assert set(stats) == set(feats)
    for k in feats:
        for s in ("min", "max", "mean", "std", "count", "q01", "q50", "q99"):
            np.testing.assert_allclose(stats[k][s], agg[k][s], rtol=1e-9, err_msg=f"{k}/{s}")
    ds = LeRobotDataset("x", root=out)
    assert len(ds) == t.num_rows and ds.num_episodes == len(eps)
    np.testing.assert_allclose(ds[start - 1]["action"].numpy(), src[-1].column("action")[-1].as_py())


def _packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.pts is not None]


def test_video_subset_conversion(g1, tmp_path):
    # Episode 0 has no mp4 and is left out; source episodes 1 and 2 become 0 and 1, in one concatenated mp4.
    out = convert_v21(g1, tmp_path / "out", videos="subset", episodes=[0, 1, 2])
    assert validate_dataset(out) == []
    t = _out_rows(out)
    s1, s2 = _src(g1, 1), _src(g1, 2)
    assert t.num_rows == s1.num_rows + s2.num_rows
    assert t.column("index").to_pylist() == list(range(t.num_rows))  # renumbered from 0
    np.testing.assert_array_equal(np.asarray(t.column("action").to_pylist()[s1.num_rows:]),
                                  np.asarray(s2.column("action").to_pylist()))
    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert eps[0][f"videos/{CAM}/from_timestamp"] == 0.0
    assert eps[1][f"videos/{CAM}/from_timestamp"] == pytest.approx(s1.num_rows / 30, abs=1e-6)
    assert eps[1][f"videos/{CAM}/to_timestamp"] == pytest.approx((s1.num_rows + s2.num_rows) / 30, abs=1e-6)
    # Stream copy: the converted episode-1 packets are the source mp4's packets.
    mp4 = out / f"videos/{CAM}/chunk-000/file-000.mp4"
    src_mp4 = g1 / f"videos/chunk-000/{CAM}/episode_000002.mp4"
    got, ref = _packets(mp4), _packets(src_mp4)
    assert len(got) == s1.num_rows + s2.num_rows and len(ref) == s2.num_rows
    assert got[s1.num_rows:] == ref  # same compressed frames, byte for byte
    # Camera stats exist, shaped (3, 1, 1), and equal a recomputation from the source mp4.
    stats = json.loads((out / "meta/stats.json").read_text())
    assert np.asarray(stats[CAM]["q10"]).shape == (3, 1, 1)
    feats = {CAM: {"dtype": "video", "shape": [480, 640, 3]}}
    direct = compute_episode_stats({CAM: stats_frames(src_mp4, 0.0, s2.num_rows, 30)}, feats)[CAM]
    for s in ("mean", "std", "q50"):
        np.testing.assert_allclose(eps[1][f"stats/{CAM}/{s}"], direct[s], rtol=1e-9)
    item = LeRobotDataset("x", root=out)[s1.num_rows + 5]
    assert tuple(item[CAM].shape) == (3, 480, 640)


def test_missing_video_is_an_error_naming_it(g1, tmp_path):
    with pytest.raises(FileNotFoundError, match="episode_000000.mp4"):
        convert_v21(g1, tmp_path / "out", videos="all", episodes=[0, 1])
    assert not (tmp_path / "out").exists()


def _mini_v21(g1: Path, dst: Path, eps=(1, 2, 4)) -> Path:
    (dst / "meta").mkdir(parents=True)
    (dst / "data/chunk-000").mkdir(parents=True)
    shutil.copyfile(g1 / "meta/info.json", dst / "meta/info.json")
    shutil.copyfile(g1 / "meta/tasks.jsonl", dst / "meta/tasks.jsonl")
    lines = [json.loads(x) for x in (g1 / "meta/episodes.jsonl").read_text().splitlines() if x.strip()]
    (dst / "meta/episodes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines if x["episode_index"] in eps))
    for e in eps:
        shutil.copyfile(g1 / f"data/chunk-000/episode_{e:06d}.parquet", dst / f"data/chunk-000/episode_{e:06d}.parquet")
    return dst


def test_dropped_and_unlisted_parquet_files_are_errors(g1, tmp_path):
    src = _mini_v21(g1, tmp_path / "src")
    (src / "data/chunk-000/episode_000002.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="episode_000002.parquet"):
        convert_v21(src, tmp_path / "o1", videos="skip")
    shutil.copyfile(g1 / "data/chunk-000/episode_000002.parquet", src / "data/chunk-000/episode_000002.parquet")
    shutil.copyfile(g1 / "data/chunk-000/episode_000007.parquet", src / "data/chunk-000/episode_000007.parquet")
    with pytest.raises(DatasetFormatError, match="episode_000007.parquet"):
        convert_v21(src, tmp_path / "o2", videos="skip")


def test_row_count_mismatch_is_an_error(g1, tmp_path):
    src = _mini_v21(g1, tmp_path / "src")
    lines = [json.loads(x) for x in (src / "meta/episodes.jsonl").read_text().splitlines()]
    lines[1]["length"] += 1
    (src / "meta/episodes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(DatasetFormatError, match="episode_000002.parquet.*length"):
        convert_v21(src, tmp_path / "out", videos="skip")
