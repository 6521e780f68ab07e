"""LeRobotDataset items vs the parquet rows read independently with pyarrow; windows, subsets, errors."""

import pickle
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from robolearn.datasets.lerobot_dataset import LeRobotDataset

PUSHT = "lerobot_written_pusht_random"
RECORD = "SamueleSandrini__record-test"
ACT = "chenfei-source__ACT-robot-manipulation__dataset"
OPEN50 = "yipiandanxinxiangyangkai__open_50"
CSVIL = "jovaldivieso__csvil__data_lerobot_dataset"
SMOLVLA = "chenfei-source__smolVLA-robot-manipulation__data"
DEFAULT_INTS = ("index", "episode_index", "frame_index", "task_index")


def _rows(root, rel_file):
    """A data parquet file as {column: list of python values}, read independently of robolearn."""
    return pq.read_table(root / rel_file).to_pydict()


def _check_item(item, rows, r, tasks):
    for col, values in rows.items():
        expected = values[r]
        got = item[col]
        if col in DEFAULT_INTS:
            assert got.dtype == torch.int64 and got.ndim == 0 and int(got) == expected, col
        elif col == "timestamp":
            assert got.dtype == torch.float32 and got.ndim == 0
            assert float(got) == pytest.approx(expected, abs=1e-6)
        else:
            assert got.dtype == torch.float32, col
            exp = np.asarray(expected, dtype=np.float32)
            assert tuple(got.shape) == exp.shape, col
            np.testing.assert_array_equal(got.numpy(), exp, err_msg=col)
    assert item["task"] == tasks[rows["task_index"][r]]


def _tasks(root):
    df = pq.read_table(root / "meta" / "tasks.parquet").to_pandas()
    return {int(i): str(t) for t, i in zip(df.index, df["task_index"])}


@pytest.mark.parametrize(
    "name, kwargs, picks",
    [
        # picks: (data file, row in that file)
        (PUSHT, {"video_cache_mb": 0}, [("data/chunk-000/file-000.parquet", r) for r in (0, 99, 100, 257, 499)]),
        (RECORD, {"download_videos": False}, [("data/chunk-000/file-000.parquet", r) for r in (0, 372, 373, 1491)]),
        (ACT, {"download_videos": False}, [(f"data/chunk-000/file-00{f}.parquet", r) for f in range(3) for r in (0, 17, -1)]),
        (CSVIL, {}, [("data/chunk-000/file-000.parquet", r) for r in (0, 18, 19, 2509)]),
    ],
)
def test_items_equal_parquet_rows(shared_datasets, name, kwargs, picks):
    root = shared_datasets / name
    ds = LeRobotDataset(name, root=root, **kwargs)
    tasks = _tasks(root)
    for rel, r in picks:
        rows = _rows(root, rel)
        r = r % len(rows["index"])
        pos = int(np.searchsorted(ds._cols["index"], rows["index"][r]))
        item = ds[pos]
        _check_item(item, rows, r, tasks)
        if name == PUSHT:
            img = item["observation.image"]
            assert img.shape == (3, 96, 96) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
            assert item["next.success"].ndim == 0 and item["next.reward"].ndim == 0
    assert len(ds) == ds.meta.total_frames == ds.num_frames


def test_open50_per_episode_files(shared_datasets):
    root = shared_datasets / OPEN50
    ds = LeRobotDataset("y/open_50", root=root, episodes=[1, 17, 49], download_videos=False)
    assert ds.num_episodes == 3 and ds.episode_indices.tolist() == [1, 17, 49]
    assert set(ds[0]) >= {"actions", "state", "task"} and "image" not in ds[0]
    tasks = _tasks(root)
    for ep in (1, 17, 49):
        rows = _rows(root, f"data/chunk-000/file-{ep:03d}.parquet")
        slot = ds.episode_indices.tolist().index(ep)
        for r in (0, 123, len(rows["index"]) - 1):
            item = ds[int(ds.ep_from[slot]) + r]
            assert item["actions"].shape == (34,)
            _check_item(item, rows, r, tasks)
    assert len(ds) == sum(ds.meta.episodes.loc[[1, 17, 49], "length"])


def test_smolvla_totals_mismatch(shared_datasets):
    root = shared_datasets / SMOLVLA
    with pytest.warns(UserWarning, match="disagrees"):
        ds = LeRobotDataset("c/smolvla", root=root, download_videos=False)
    assert ds.num_episodes == 19 and len(ds) == 4958
    rows = _rows(root, "data/chunk-000/file-000.parquet")
    tasks = _tasks(root)
    assert len(tasks) == 2
    for r in (0, 2000, 4957):
        _check_item(ds[r], rows, r, tasks)
    # the 19 present episodes all use task 0 (the mango episodes are among the 86 missing ones)
    assert {ds[r]["task"] for r in range(0, 4958, 250)} == {"Put the carrot on the plate."}


def test_episode_subset_reads_only_needed_files(shared_datasets, monkeypatch, tmp_path):
    root = shared_datasets / ACT
    read = []
    orig = pq.read_table

    def spy(path, *a, **k):
        read.append(str(path))
        return orig(path, *a, **k)

    monkeypatch.setattr(pq, "read_table", spy)
    # an empty cache folder: the first load reads parquet (a later one maps the Arrow cache file, reading none)
    ds = LeRobotDataset("c/act", root=root, episodes=[52, 3], download_videos=False, cache_dir=tmp_path)
    data_reads = [p for p in read if "/data/" in p]
    assert sorted(p.rsplit("/", 1)[1] for p in data_reads) == ["file-000.parquet", "file-002.parquet"]
    monkeypatch.setattr(pq, "read_table", orig)
    lengths = ds.meta.episodes.loc[[3, 52], "length"].tolist()
    assert ds.episode_indices.tolist() == [3, 52] and len(ds) == sum(lengths)
    assert ds.ep_from.tolist() == [0, lengths[0]] and ds.ep_to.tolist() == [lengths[0], sum(lengths)]
    edi = ds.episode_data_index
    assert edi["from"].tolist() == [0, lengths[0]]
    assert int(ds[0]["episode_index"]) == 3 and int(ds[0]["frame_index"]) == 0
    assert int(ds[lengths[0]]["episode_index"]) == 52 and int(ds[len(ds) - 1]["frame_index"]) == lengths[1] - 1
    with pytest.raises(KeyError, match="99"):
        LeRobotDataset("c/act", root=root, episodes=[99], download_videos=False)


def test_delta_windows_and_padding(shared_datasets):
    root = shared_datasets / PUSHT
    rows = _rows(root, "data/chunk-000/file-000.parquet")
    state = np.asarray(rows["observation.state"], dtype=np.float32)
    action = np.asarray(rows["action"], dtype=np.float32)
    dt = {"observation.state": [-0.2, -0.1, 0.0], "action": [i / 10 for i in range(16)], "next.reward": [0.0, 0.1]}
    ds = LeRobotDataset("p", root=root, delta_timestamps=dt, download_videos=False)
    # first frame of episode 1 (global index 100)
    it = ds[100]
    assert it["observation.state"].shape == (3, 2)
    np.testing.assert_array_equal(it["observation.state"].numpy(), state[[100, 100, 100]])
    assert it["observation.state_is_pad"].tolist() == [True, True, False]
    assert it["observation.state_is_pad"].dtype == torch.bool
    assert it["next.reward"].shape == (2,)
    # second frame of episode 1: one pad
    it = ds[101]
    np.testing.assert_array_equal(it["observation.state"].numpy(), state[[100, 100, 101]])
    assert it["observation.state_is_pad"].tolist() == [True, False, False]
    # frame 95 of episode 0 with a 16-step action window: 5 real, 11 clamped to frame 99
    it = ds[95]
    assert it["action"].shape == (16, 2)
    np.testing.assert_array_equal(it["action"].numpy(), action[[95, 96, 97, 98, 99] + [99] * 11])
    assert it["action_is_pad"].tolist() == [False] * 5 + [True] * 11
    # last frame of the dataset
    it = ds[499]
    np.testing.assert_array_equal(it["action"].numpy(), action[[499] * 16])
    assert it["action_is_pad"].tolist() == [False] + [True] * 15
    # middle of an episode: no pad
    it = ds[250]
    np.testing.assert_array_equal(it["action"].numpy(), action[250:266])
    assert not it["action_is_pad"].any()
    # episode subset: windows are clamped to the selected episode
    sub = LeRobotDataset("p", root=root, episodes=[2], delta_timestamps=dt, download_videos=False)
    it = sub[0]
    np.testing.assert_array_equal(it["observation.state"].numpy(), state[[200, 200, 200]])
    it = sub[99]
    np.testing.assert_array_equal(it["action"].numpy(), action[[299] * 16])


def test_video_window_is_pad(shared_datasets):
    ds = LeRobotDataset(
        "p", root=shared_datasets / PUSHT, delta_timestamps={"observation.image": [-0.1, 0.0]}, video_cache_mb=0
    )
    it = ds[200]
    assert it["observation.image"].shape == (2, 3, 96, 96)
    assert it["observation.image_is_pad"].tolist() == [True, False]
    torch.testing.assert_close(it["observation.image"][0], it["observation.image"][1])
    it = ds[201]
    assert it["observation.image_is_pad"].tolist() == [False, False]
    torch.testing.assert_close(it["observation.image"][0], ds[200]["observation.image"][1])


def test_delta_errors(shared_datasets):
    root = shared_datasets / PUSHT
    with pytest.raises(ValueError, match=r"'action'.*0\.05"):
        LeRobotDataset("p", root=root, delta_timestamps={"action": [0.0, 0.05]}, download_videos=False)
    with pytest.raises(KeyError, match="observation.banana"):
        LeRobotDataset("p", root=root, delta_timestamps={"observation.banana": [0.0]}, download_videos=False)
    with pytest.raises(KeyError, match="download_videos=False"):
        LeRobotDataset("p", root=root, delta_timestamps={"observation.image": [0.0]}, download_videos=False)
    # tolerance is in seconds: 0.04 s accepts 0.13 at 10 fps (lerobot's tests use 0.04)
    ds = LeRobotDataset("p", root=root, delta_timestamps={"action": [0.13]}, tolerance_s=0.04, download_videos=False)
    assert ds.delta_indices["action"].tolist() == [1]


def test_missing_video_file(shared_datasets):
    root = shared_datasets / RECORD
    ds = LeRobotDataset("s/record", root=root)  # the mp4s are absent: constructing works
    with pytest.raises(FileNotFoundError, match=r"observation\.images\.front/chunk-000/file-000\.mp4.*episode 2"):
        ds[800]
    tab = LeRobotDataset("s/record", root=root, download_videos=False)
    item = tab[800]
    assert not any(k.startswith("observation.images") for k in item)
    assert "observation.images.front" not in tab.features and tab.camera_keys == []


def test_pickle_and_return_uint8(shared_datasets):
    ds = LeRobotDataset("p", root=shared_datasets / PUSHT, return_uint8=True, video_cache_mb=0)
    a = ds[42]
    assert a["observation.image"].dtype == torch.uint8
    ds2 = pickle.loads(pickle.dumps(ds))
    b = ds2[42]
    for k in a:
        if torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), k
    # items never alias the dataset's arrays
    a["observation.state"] += 1000
    assert not torch.equal(a["observation.state"], ds[42]["observation.state"])


def test_float_frames_equal_lerobots_conversion_of_the_uint8_frames(shared_datasets):
    u8 = LeRobotDataset("p", root=shared_datasets / PUSHT, return_uint8=True, video_cache_mb=0)[42]["observation.image"]
    f32 = LeRobotDataset("p", root=shared_datasets / PUSHT, video_cache_mb=0)[42]["observation.image"]
    assert f32.dtype == torch.float32 and f32.is_contiguous()
    assert torch.equal(f32, u8.to(torch.float32) / 255)  # bit for bit, as lerobot converts


def test_dataloader_two_workers(shared_datasets):
    ds = LeRobotDataset(
        "p", root=shared_datasets / PUSHT, episodes=[0],
        delta_timestamps={"observation.image": [-0.1, 0.0], "action": [i / 10 for i in range(16)]},
    )
    ds[5]  # open containers / fill the cache in the parent before forking
    dl = torch.utils.data.DataLoader(ds, batch_size=25, num_workers=2, shuffle=False)
    batches = list(dl)
    assert len(batches) == 4
    b = batches[1]
    assert b["observation.image"].shape == (25, 2, 3, 96, 96) and b["action"].shape == (25, 16, 2)
    assert b["index"].tolist() == list(range(25, 50)) and len(b["task"]) == 25
    torch.testing.assert_close(b["observation.image"][3], ds[28]["observation.image"])


def test_no_warnings_on_clean_dataset(shared_datasets):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LeRobotDataset("p", root=shared_datasets / PUSHT)


def test_feature_shape_mismatch_names_file_and_key(shared_datasets, tmp_path):
    """info.json declaring a shape the parquet column does not hold is a format error, not silent garbage."""
    import json
    import shutil

    from robolearn.datasets.errors import DatasetFormatError

    src = shared_datasets / "lerobot_written_pusht_random"
    root = tmp_path / "ds"
    shutil.copytree(src / "meta", root / "meta")
    shutil.copytree(src / "data", root / "data")
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.state"]["shape"] = [3]
    info_path.write_text(json.dumps(info, indent=4))
    with pytest.raises(DatasetFormatError, match=r"file-000\.parquet: column 'observation\.state'.*3 per row"):
        LeRobotDataset("t/shape", root=root, download_videos=False)
