"""LeRobotDatasetWriter: round trip, byte-level format vs lerobot's own output, roll-over, validation, crash safety."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robolearn.datasets import writer as writer_mod
from robolearn.datasets.constants import DEFAULT_FEATURES
from robolearn.datasets.lerobot_dataset import LeRobotDataset
from robolearn.datasets.stats import aggregate_stats, compute_episode_stats
from robolearn.datasets.video_encode import (
    concatenate_video_files,
    encode_video_frames,
    get_video_duration_s,
    iter_decoded_frames,
)
from robolearn.datasets.writer import LeRobotDatasetWriter

FIXTURE = "lerobot_written_pusht_random"
TASKS = ["Pick the cube", "Place the cube"]
FPS = 10
TOL = 3 / 255 + 1e-6  # max abs pixel error of the near-lossless setting (libx264 crf 0, yuv444p)


def features(h=32, w=32):
    return {
        "observation.images.front": {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
    }


def smooth_frames(n, seed, h=32, w=32):
    """Frames that survive 4:2:0 chroma subsampling well: 2×2-constant blocks of a moving gradient."""
    yy, xx = np.mgrid[0 : h // 2, 0 : w // 2]
    out = []
    for i in range(n):
        r = (xx * 12 + i * 7 + seed * 31) % 256
        g = (yy * 12 + i * 5) % 256
        b = np.full_like(r, (seed * 60 + i * 3) % 256)
        img = np.stack([r, g, b], -1).astype(np.uint8)
        out.append(img.repeat(2, 0).repeat(2, 1))
    return np.stack(out)


def make_episodes(lengths, seed=0):
    rng = np.random.default_rng(seed)
    eps = []
    for e, n in enumerate(lengths):
        eps.append({
            "observation.images.front": smooth_frames(n, e),
            "observation.state": rng.normal(size=(n, 3)).astype(np.float32),
            "action": rng.normal(size=(n, 2)).astype(np.float32),
            "next.reward": rng.random((n, 1)).astype(np.float32),
            "next.success": rng.random((n, 1)) > 0.5,
            "task": [TASKS[e % 2]] * n,
        })
    return eps


def add_episode(w, ep):
    for i in range(len(ep["task"])):
        w.add_frame({k: v[i] for k, v in ep.items()})


def write(root, eps, **kw):
    kw.setdefault("vcodec", "libx264")
    kw.setdefault("crf", 0)  # near-lossless for value checks: lossless h264 on full-resolution chroma
    kw.setdefault("pix_fmt", "yuv444p")
    with LeRobotDatasetWriter.create("local/test", FPS, features(), root=root, **kw) as w:
        for ep in eps:
            add_episode(w, ep)
            w.save_episode()
    return w


def episode_rows(root: Path) -> list[dict]:
    return [r for p in sorted(root.glob("meta/episodes/*/*.parquet")) for r in pq.read_table(p).to_pylist()]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ video helpers


def test_encode_and_concatenate(tmp_path):
    a, b = smooth_frames(5, 0), smooth_frames(3, 1)
    encode_video_frames(a, tmp_path / "a.mp4", FPS, vcodec="auto")
    encode_video_frames(b, tmp_path / "b.mp4", FPS, vcodec="auto")
    assert get_video_duration_s(tmp_path / "a.mp4") == pytest.approx(0.5)
    concatenate_video_files([tmp_path / "a.mp4", tmp_path / "b.mp4"], tmp_path / "c.mp4")
    concatenate_video_files([tmp_path / "c.mp4", tmp_path / "a.mp4"], tmp_path / "c.mp4")  # append in place
    frames = list(iter_decoded_frames(tmp_path / "c.mp4"))
    assert [round(t, 6) for t, _ in frames] == [round(i / FPS, 6) for i in range(13)]
    ref = np.concatenate([a, b, a]).astype(int)
    err = np.mean([np.abs(f.astype(int) - r).mean() for (_, f), r in zip(frames, ref)])
    assert err < 8  # default AV1 crf 30 on a tiny frame


# -------------------------------------------------------------------------------------------------- round trip


def test_round_trip_values_and_stats(tmp_path):
    root = tmp_path / "ds"
    eps = make_episodes([15, 12, 20])
    write(root, eps)
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 47, 2)
    assert info["splits"] == {"train": "0:3"}
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"

    ds = LeRobotDataset("local/test", root=root)
    assert len(ds) == 47
    g = 0
    for e, ep in enumerate(eps):
        for i in range(len(ep["task"])):
            item = ds[g]
            assert item["index"].item() == g and item["episode_index"].item() == e
            assert item["frame_index"].item() == i
            assert item["timestamp"].item() == pytest.approx(i / FPS)
            assert item["task"] == ep["task"][i]
            assert item["task_index"].item() == TASKS.index(ep["task"][i])
            for k in ("observation.state", "action"):
                np.testing.assert_array_equal(item[k].numpy(), ep[k][i])
            assert item["next.reward"].item() == ep["next.reward"][i, 0]
            assert bool(item["next.success"].item()) == bool(ep["next.success"][i, 0])
            img = item["observation.images.front"].numpy()
            assert img.shape == (3, 32, 32)
            ref = ep["observation.images.front"][i].transpose(2, 0, 1) / 255.0
            assert np.abs(img - ref).max() <= TOL  # RGB<->YUV rounding only
            g += 1

    # Windows with padding at the episode boundaries.
    ds = LeRobotDataset("local/test", root=root,
                        delta_timestamps={"action": [-0.1, 0.0, 0.1], "observation.images.front": [-0.1, 0.0]})
    item = ds[15]  # first frame of episode 1
    assert item["action_is_pad"].tolist() == [True, False, False]
    np.testing.assert_array_equal(item["action"][1].numpy(), eps[1]["action"][0])
    assert item["observation.images.front"].shape == (2, 3, 32, 32)

    # stats.json = aggregate of per-episode stats of exactly what was written.
    stats = json.loads((root / "meta/stats.json").read_text())
    per_ep = []
    start = 0
    for e, ep in enumerate(eps):
        n = len(ep["task"])
        cols = {k: v for k, v in ep.items() if k != "task"}
        cols.update({"timestamp": np.arange(n, dtype=np.float32) / FPS, "frame_index": np.arange(n),
                     "episode_index": np.full(n, e), "index": np.arange(start, start + n),
                     "task_index": np.array([TASKS.index(t) for t in ep["task"]])})
        per_ep.append(compute_episode_stats(cols, info["features"]))
        start += n
    agg = aggregate_stats(per_ep)
    assert set(stats) == set(info["features"])
    for key, st in agg.items():
        for s, v in st.items():
            np.testing.assert_allclose(np.asarray(stats[key][s]), v, rtol=1e-6, atol=1e-6, err_msg=f"{key}/{s}")
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert stats["index"]["count"] == [47]

    # Per-episode stats columns in meta/episodes match too.
    ep_table = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    np.testing.assert_allclose(ep_table[1]["stats/action/mean"], per_ep[1]["action"]["mean"], rtol=1e-6)
    assert ep_table[2]["tasks"] == [TASKS[0]]


def test_float_and_chw_images_accepted(tmp_path):
    eps = make_episodes([4])
    with LeRobotDatasetWriter.create("local/t", FPS, features(), root=tmp_path / "ds", vcodec="libx264", crf=0,
                                     pix_fmt="yuv444p") as w:
        for i in range(4):
            frame = {k: v[i] for k, v in eps[0].items()}
            img = frame["observation.images.front"]
            frame["observation.images.front"] = (img.transpose(2, 0, 1) / 255.0).astype(np.float32) if i % 2 else img
            w.add_frame(frame)
        w.save_episode()
    ds = LeRobotDataset("local/t", root=tmp_path / "ds")
    ref = eps[0]["observation.images.front"][1].transpose(2, 0, 1) / 255.0
    assert np.abs(ds[1]["observation.images.front"].numpy() - ref).max() <= TOL


def test_image_and_string_features_in_parquet(tmp_path):
    feats = {"observation.images.wrist": {"dtype": "image", "shape": [8, 8, 3], "names": ["height", "width", "channels"]},
             "note": {"dtype": "string", "shape": [1], "names": None},
             "action": {"dtype": "float32", "shape": [2], "names": None}}
    imgs = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    with LeRobotDatasetWriter.create("l/img", FPS, feats, root=tmp_path / "ds", use_videos=False) as w:
        for i in range(5):
            w.add_frame({"observation.images.wrist": imgs[i], "note": f"n{i}", "action": np.zeros(2, np.float32),
                         "task": "t"})
        w.save_episode()
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["video_path"] is None
    schema = pq.ParquetFile(tmp_path / "ds/data/chunk-000/file-000.parquet").schema_arrow
    assert str(schema.field("observation.images.wrist").type) == "struct<bytes: binary, path: string>"
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.wrist"] == {"_type": "Image"} and hf["note"] == {"dtype": "string", "_type": "Value"}
    item = LeRobotDataset("l/img", root=tmp_path / "ds")[3]
    assert item["note"] == "n3"
    np.testing.assert_array_equal((item["observation.images.wrist"].numpy() * 255).round(), imgs[3].transpose(2, 0, 1))
    stats = json.loads((tmp_path / "ds/meta/stats.json").read_text())
    assert np.shape(stats["observation.images.wrist"]["mean"]) == (3, 1, 1) and "note" not in stats


# ------------------------------------------------------------------------------------ format vs lerobot's output


def test_format_matches_lerobot_written_fixture(tmp_path, shared_datasets):
    ref_root = shared_datasets / FIXTURE
    ref_info = json.loads((ref_root / "meta/info.json").read_text())
    feats = {k: {kk: vv for kk, vv in v.items() if kk != "info"} for k, v in ref_info["features"].items()
             if k not in DEFAULT_FEATURES}
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    with LeRobotDatasetWriter.create("local/pusht", 10, feats, root=root, robot_type="pusht_sim") as w:
        for _ in range(2):
            for _ in range(5):
                w.add_frame({"observation.image": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
                             "observation.state": rng.random(2, dtype=np.float32),
                             "action": rng.random(2, dtype=np.float32),
                             "next.reward": np.float32(0.5), "next.success": False,
                             "task": "Push the T-shaped block onto the target."})
            w.save_episode()
    info = json.loads((root / "meta/info.json").read_text())
    assert list(info) == list(ref_info)  # key order
    assert list(info["features"]) == list(ref_info["features"])
    for k, v in ref_info["features"].items():
        assert {kk: vv for kk, vv in info["features"][k].items()} == v or k == "observation.image", k
    ref_vinfo = ref_info["features"]["observation.image"]["info"]
    vinfo = info["features"]["observation.image"]["info"]
    assert list(vinfo) == list(ref_vinfo)
    if "libsvtav1" in writer_mod.resolve_vcodec("auto"):
        assert {k: v for k, v in vinfo.items() if k not in ("video.height", "video.width")} == \
            {k: v for k, v in ref_vinfo.items() if k not in ("video.height", "video.width")}
    # info.json text formatting: json.dump(indent=4), no trailing newline, like lerobot's.
    assert (root / "meta/info.json").read_text() == json.dumps(info, indent=4)

    for rel in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet"):
        ref_pf, pf = pq.ParquetFile(ref_root / rel), pq.ParquetFile(root / rel)
        assert pf.schema_arrow.remove_metadata().equals(ref_pf.schema_arrow.remove_metadata()), rel
        assert set((pf.schema_arrow.metadata or {})) == set((ref_pf.schema_arrow.metadata or {})), rel
        assert pf.metadata.row_group(0).column(0).compression == "SNAPPY"
    hf = json.loads(pq.ParquetFile(root / "data/chunk-000/file-000.parquet").schema_arrow.metadata[b"huggingface"])
    ref_hf = json.loads(pq.ParquetFile(ref_root / "data/chunk-000/file-000.parquet").schema_arrow.metadata[b"huggingface"])
    assert hf["info"] == ref_hf["info"] and len(hf["fingerprint"]) == 16
    pmeta = json.loads(pq.ParquetFile(root / "meta/tasks.parquet").schema_arrow.metadata[b"pandas"])
    ref_pmeta = json.loads(pq.ParquetFile(ref_root / "meta/tasks.parquet").schema_arrow.metadata[b"pandas"])
    assert {k: v for k, v in pmeta.items() if k not in ("creator", "pandas_version")} == \
        {k: v for k, v in ref_pmeta.items() if k not in ("creator", "pandas_version")}
    assert pq.ParquetFile(root / "data/chunk-000/file-000.parquet").metadata.num_row_groups == 2  # one per episode

    stats, ref_stats = (json.loads((r / "meta/stats.json").read_text()) for r in (root, ref_root))
    assert set(stats) == set(ref_stats)
    for k in ref_stats:
        assert list(stats[k]) == list(ref_stats[k])
        for s in ref_stats[k]:
            assert np.shape(stats[k][s]) == np.shape(ref_stats[k][s]), (k, s)
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(r["videos/observation.image/from_timestamp"], r["videos/observation.image/to_timestamp"]) for r in rows] \
        == [(0.0, 0.5), (0.5, 1.0)]


# ---------------------------------------------------------------------------------------------------- roll-over


def test_rollover_data_and_video_files(tmp_path):
    root = tmp_path / "ds"
    eps = make_episodes([10, 12, 8, 9])
    # Data: a tiny limit puts every episode in its own file, chunks of 2 files. Videos: one file.
    write(root, eps, data_files_size_in_mb=0.0001, chunks_size=2)
    rows = episode_rows(root)
    assert [(r["data/chunk_index"], r["data/file_index"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # meta/episodes rolls over at the same size limit.
    assert [(r["meta/episodes/chunk_index"], r["meta/episodes/file_index"]) for r in rows] == \
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert sorted(str(p.relative_to(root)) for p in root.glob("data/*/*.parquet")) == [
        "data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet",
        "data/chunk-001/file-000.parquet", "data/chunk-001/file-001.parquet"]
    assert [(r["videos/observation.images.front/file_index"], r["videos/observation.images.front/from_timestamp"],
             r["videos/observation.images.front/to_timestamp"]) for r in rows] == \
        [(0, 0.0, 1.0), (0, 1.0, 2.2), (0, 2.2, 3.0), (0, 3.0, 3.9)]
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in rows] == [(0, 10), (10, 22), (22, 30), (30, 39)]
    ds = LeRobotDataset("local/test", root=root)
    assert len(ds) == 39
    np.testing.assert_array_equal(ds[25]["action"].numpy(), eps[2]["action"][3])
    ref = eps[3]["observation.images.front"][4].transpose(2, 0, 1) / 255.0
    assert np.abs(ds[34]["observation.images.front"].numpy() - ref).max() <= TOL

    # Videos roll over by size: with a limit just above one episode's mp4, every episode starts a new file.
    root2 = tmp_path / "ds2"
    write(root2, eps[:3], video_files_size_in_mb=0.00001)
    rows = episode_rows(root2)
    key = "videos/observation.images.front"
    assert [(r[f"{key}/file_index"], r[f"{key}/from_timestamp"], r[f"{key}/to_timestamp"]) for r in rows] == \
        [(0, 0.0, 1.0), (1, 0.0, 1.2), (2, 0.0, 0.8)]
    assert [r["data/file_index"] for r in rows] == [0, 0, 0]
    ds = LeRobotDataset("local/test", root=root2)
    ref = eps[2]["observation.images.front"][7].transpose(2, 0, 1) / 255.0
    assert np.abs(ds[29]["observation.images.front"].numpy() - ref).max() <= TOL


def test_video_frames_at_from_timestamp_plus_t(tmp_path):
    root = tmp_path / "ds"
    eps = make_episodes([6, 7])
    write(root, eps)
    frames = list(iter_decoded_frames(root / "videos/observation.images.front/chunk-000/file-000.mp4"))
    assert len(frames) == 13
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    f1 = rows[1]["videos/observation.images.front/from_timestamp"]
    for i in range(7):
        t, img = frames[6 + i]
        assert t == pytest.approx(f1 + i / FPS, abs=1e-6)
        assert np.abs(img.astype(int) - eps[1]["observation.images.front"][i]).max() <= 3


# --------------------------------------------------------------------------------------------------- validation


def test_validation_errors(tmp_path):
    with pytest.raises(ValueError, match="must not contain '/'"):
        LeRobotDatasetWriter.create("l/t", FPS, {"a/b": {"dtype": "float32", "shape": [1], "names": None}},
                                    root=tmp_path / "x")
    with pytest.raises(ValueError, match="default feature"):
        LeRobotDatasetWriter.create("l/t", FPS, {"timestamp": {"dtype": "float32", "shape": [1], "names": None}},
                                    root=tmp_path / "x")
    with pytest.raises(ValueError, match="use_videos=False"):
        LeRobotDatasetWriter.create("l/t", FPS, features(), root=tmp_path / "x", use_videos=False)
    assert not (tmp_path / "x").exists()
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        LeRobotDatasetWriter.create("l/t", FPS, features(), root=tmp_path / "exists")

    w = LeRobotDatasetWriter.create("l/t", FPS, features(), root=tmp_path / "ds")
    good = {k: v[0] for k, v in make_episodes([1])[0].items()}
    cases = [
        ({"observation.state": np.zeros(3, np.float64)}, r"'observation.state'.*expected dtype float32, got float64"),
        ({"observation.state": np.zeros(4, np.float32)}, r"'observation.state'.*expected shape \[3\], got \[4\]"),
        ({"observation.images.front": np.zeros((16, 16, 3), np.uint8)},
         r"'observation.images.front'.*expected shape.*\(32, 32, 3\).*got \(16, 16, 3\)"),
        ({"observation.images.front": np.full((32, 32, 3), 2.0, np.float32)},
         r"'observation.images.front'.*expected float values in \[0, 1\], got range"),
        ({"task": 3}, r"'task'.*expected a non-empty str, got int"),
        ({"next.success": 0.7}, r"'next.success'.*expected dtype bool, got float"),
        ({"timestamp": 0.0}, r"default features \['timestamp'\]"),
        ({"extra": 1.0}, r"unexpected \['extra'\]"),
    ]
    for patch, msg in cases:
        with pytest.raises(ValueError, match=msg):
            w.add_frame({**good, **patch})
    missing = dict(good)
    del missing["action"]
    with pytest.raises(ValueError, match=r"missing \['action'\]"):
        w.add_frame(missing)
    assert w.num_buffered_frames == 0
    with pytest.raises(ValueError, match="empty"):
        w.save_episode()
    w.add_frame(good)
    w.finalize()
    w.finalize()  # idempotent
    with pytest.raises(RuntimeError):
        w.add_frame(good)


# ------------------------------------------------------------------------------------------------- crash safety


def test_exception_mid_episode_keeps_saved_episodes(tmp_path):
    root = tmp_path / "ds"
    eps = make_episodes([8, 9, 10])
    with pytest.raises(KeyboardInterrupt):
        with LeRobotDatasetWriter.create("local/test", FPS, features(), root=root, vcodec="libx264") as w:
            for ep in eps[:2]:
                add_episode(w, ep)
                w.save_episode()
            before = snapshot(root)
            for i in range(5):  # partial third episode, then "Ctrl-C"
                w.add_frame({k: v[i] for k, v in eps[2].items()})
            raise KeyboardInterrupt
    assert snapshot(root) == before
    assert w.finalized and w.num_buffered_frames == 0
    ds = LeRobotDataset("local/test", root=root)
    assert len(ds) == 17 and ds.num_episodes == 2
    np.testing.assert_array_equal(ds[16]["action"].numpy(), eps[1]["action"][-1])


def test_failure_mid_save_leaves_dataset_byte_identical(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    eps = make_episodes([8, 9, 10])
    w = LeRobotDatasetWriter.create("local/test", FPS, features(), root=root, vcodec="libx264")
    for ep in eps[:2]:
        add_episode(w, ep)
        w.save_episode()
    before = snapshot(root)
    add_episode(w, eps[2])

    real_encode = writer_mod.encode_video_frames

    def broken_encoder(frames, path, *a, **kw):
        Path(path).write_bytes(b"half-written mp4")  # leaves a partial temp file behind, like a real crash
        raise OSError("encoder died")

    monkeypatch.setattr(writer_mod, "encode_video_frames", broken_encoder)
    with pytest.raises(OSError, match="encoder died"):
        w.save_episode()
    assert snapshot(root) == before  # same files, same bytes, no temp files left
    ds = LeRobotDataset("local/test", root=root)
    assert len(ds) == 17 and ds.num_episodes == 2

    # The buffer was kept: once the encoder works again the same episode saves normally.
    monkeypatch.setattr(writer_mod, "encode_video_frames", real_encode)
    assert w.num_buffered_frames == 10
    assert w.save_episode() == 2
    w.finalize()
    ds = LeRobotDataset("local/test", root=root)
    assert len(ds) == 27
    np.testing.assert_array_equal(ds[20]["observation.state"].numpy(), eps[2]["observation.state"][3])
    for rel in ("meta/episodes/chunk-000/file-000.parquet",):
        assert pq.read_table(root / rel).num_rows == 3


def test_failure_inside_with_during_save(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    eps = make_episodes([5, 6])

    def broken(*a, **kw):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with LeRobotDatasetWriter.create("local/test", FPS, features(), root=root, vcodec="libx264") as w:
            add_episode(w, eps[0])
            w.save_episode()
            before = snapshot(root)
            monkeypatch.setattr(writer_mod, "concatenate_video_files", broken)  # fails while appending the mp4
            add_episode(w, eps[1])
            w.save_episode()
    assert snapshot(root) == before
    assert len(LeRobotDataset("local/test", root=root)) == 5
