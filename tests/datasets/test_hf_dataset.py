"""LeRobotDataset's frames through HF ``datasets``: ``hf_dataset`` (lerobot's columns, the selected episodes), items
equal to the previous numpy reader's, frames memory-mapped from the Arrow cache file (not copied per process), the
cache reused and rebuilt, a read-only dataset folder."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from robolearn.datasets.lerobot_dataset import LeRobotDataset

PUSHT = "lerobot_written_pusht_random"
ACT = "chenfei-source__ACT-robot-manipulation__dataset"
OPEN50 = "yipiandanxinxiangyangkai__open_50"
LEROBOT_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def _items_digest(ds, positions) -> str:
    """SHA-256 over the items at ``positions``: every key, dtype, shape and the tensors' bytes (strings by repr)."""
    h = hashlib.sha256()
    for i in positions:
        item = ds[i]
        for k in sorted(item):
            v = item[k]
            if torch.is_tensor(v):
                h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
                h.update(v.contiguous().numpy().tobytes())
            else:
                h.update(f"{k}|{v!r}|".encode())
    return h.hexdigest()


# Digests of the items of the previous reader (pyarrow columns copied into numpy arrays), computed with
# robolearn/datasets/lerobot_dataset.py at commit 2b75771 and _items_digest above. Windows cross episode ends
# (padding), the PushT case has a bool feature (next.success) served as float32, open_50 stores list<float> columns
# without HF metadata, ACT's selection spans two of its three data files.
PREVIOUS_READER = {
    "pusht": (PUSHT, dict(download_videos=False, delta_timestamps={
        "observation.state": [-0.1, 0.0], "action": [i / 10 for i in range(16)], "next.reward": [0.0, 0.1],
        "next.success": [0.0, 0.1]}), [0, 1, 95, 99, 100, 250, 499],
        "895a5107f1157dccf6163d28152a21b8c6fcc44cf3b8a170d67ed63b59c574b5"),
    "act": (ACT, dict(episodes=[52, 3, 17], download_videos=False, delta_timestamps={
        "action": [i / 15 for i in range(16)], "observation.state": [-1 / 15, 0.0]}), [0, 1, 100, -1, -2, -16],
        "4149f4415e5f3b33e7c9e941a99f2a52fbff587b758947dd9a1f683264406253"),
    "open50": (OPEN50, dict(episodes=[17, 1], download_videos=False, delta_timestamps={
        "actions": [i / 30 for i in range(8)], "state": [-2 / 30, 0.0]}), [0, 7, 300, -1],
        "18d5f5b211fea15e99c5ae491ab3e54c7639630c8511144b0f293289cc302fa1"),
}


@pytest.mark.parametrize("case", sorted(PREVIOUS_READER))
def test_items_equal_the_previous_readers(shared_datasets, tmp_path, case):
    folder, kwargs, positions, expected = PREVIOUS_READER[case]
    for _ in range(2):  # the load that builds the Arrow cache file, then one that maps it
        ds = LeRobotDataset(f"t/{case}", root=shared_datasets / folder, cache_dir=tmp_path, **kwargs)
        assert _items_digest(ds, [p % len(ds) for p in positions]) == expected


def test_hf_dataset_has_lerobots_columns_and_the_selected_episodes_rows(shared_datasets, tmp_path):
    import datasets

    root = shared_datasets / ACT
    ds = LeRobotDataset("c/act", root=root, episodes=[52, 3], download_videos=False, cache_dir=tmp_path)
    hf = ds.hf_dataset
    assert isinstance(hf, datasets.Dataset)
    # lerobot's: every feature but the videos (their frames are in the mp4s), in info.json order
    assert hf.column_names == [k for k, f in ds.meta.features.items() if f["dtype"] != "video"]
    assert hf.column_names == ["action", "observation.state", *LEROBOT_COLUMNS]
    assert set(LEROBOT_COLUMNS) <= set(hf.column_names)
    assert hf.features["action"] == datasets.Sequence(datasets.Value("float32"), length=6)
    assert hf.features["timestamp"] == datasets.Value("float32")
    assert hf.features["index"] == datasets.Value("int64")
    assert hf.num_rows == len(ds) == sum(ds.meta.episodes.loc[[3, 52], "length"])
    plain = hf.with_format("numpy")
    assert np.unique(plain["episode_index"]).tolist() == [3, 52]
    # row i is item i; the values are the parquet rows
    expected = pa.concat_tables([pq.read_table(root / f"data/chunk-000/file-00{f}.parquet") for f in (0, 2)])
    expected = expected.filter(pa.compute.is_in(expected["episode_index"], pa.array([3, 52]))).sort_by("index")
    np.testing.assert_array_equal(plain["index"], expected["index"].to_numpy())
    np.testing.assert_array_equal(plain["action"], np.asarray(expected["action"].to_pylist(), dtype=np.float32))
    for i in (0, 17, len(ds) - 1):
        row, item = hf[i], ds[i]  # lerobot's transform: tensors
        assert torch.equal(row["action"], item["action"]) and int(row["index"]) == int(item["index"])
        assert row["timestamp"].dtype == torch.float32 and row["episode_index"].dtype == torch.int64
    # the datasets API: select_columns, filter, map
    assert hf.select_columns(["action", "index"]).column_names == ["action", "index"]
    assert len(hf.filter(lambda b: [e == 52 for e in b["episode_index"]], batched=True)) == len(ds) - ds.ep_to[0]
    doubled = hf.map(lambda b: {"twice": [2 * a for a in b["action"]]}, batched=True)
    assert torch.equal(doubled[5]["twice"], 2 * ds[5]["action"])
    assert ds[5]["action"].shape == (6,)  # items unchanged by the map


def _mapping_of(address: int) -> str | None:
    """The file backing the memory at ``address`` in this process (``/proc/self/maps``), or None (anonymous)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if lo <= address < hi:
            return parts[5] if len(parts) == 6 else None
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_frames_are_mapped_from_the_cache_file_not_copied_into_each_process(shared_datasets, tmp_path):
    ds = LeRobotDataset("t/open50", root=shared_datasets / OPEN50, download_videos=False, cache_dir=tmp_path)
    assert ds.cache_file is not None and ds.cache_file.parent.parent == tmp_path
    for key in ("actions", "state", "timestamp", "index"):
        view = ds._cols[key]
        assert not view.flags.owndata and not view.flags.writeable
        assert _mapping_of(view.__array_interface__["data"][0]) == str(ds.cache_file), key
    # what a spawned DataLoader worker receives: the cache file's path, not the frames (20 814 x 68 float32 here)
    blob = pickle.dumps(ds)
    assert len(blob) < ds._cols["actions"].nbytes / 10
    worker_copy = pickle.loads(blob)
    assert _mapping_of(worker_copy._cols["actions"].__array_interface__["data"][0]) == str(ds.cache_file)
    assert torch.equal(worker_copy[1234]["actions"], ds[1234]["actions"])
    # the worker maps the file with pyarrow alone; its hf_dataset opens on first use
    assert worker_copy._hf_dataset is None and len(worker_copy.hf_dataset) == len(ds)
    assert torch.equal(worker_copy.hf_dataset[1234]["actions"], ds[1234]["actions"])


def test_loading_from_the_cache_file_needs_no_datasets_import(shared_datasets, tmp_path):
    """Importing ``datasets`` costs about a second and tens of MiB per process: a load that finds its cache file (a
    training run after the first, each spawned DataLoader worker) maps it with pyarrow alone."""
    import subprocess

    ds = LeRobotDataset("p", root=shared_datasets / PUSHT, download_videos=False, cache_dir=tmp_path)
    code = ("import sys; from robolearn.datasets.lerobot_dataset import LeRobotDataset as D; "
            f"ds = D('p', root={str(shared_datasets / PUSHT)!r}, download_videos=False, cache_dir={str(tmp_path)!r}); "
            "print(str(ds.cache_file), float(ds[42]['action'][0]), 'datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(ds.cache_file), str(float(ds[42]["action"][0])), "False"]


def test_cache_is_reused_then_rebuilt_when_a_data_file_changes(shared_datasets, tmp_path, monkeypatch):
    root = tmp_path / "pusht"
    shutil.copytree(shared_datasets / PUSHT / "meta", root / "meta")
    shutil.copytree(shared_datasets / PUSHT / "data", root / "data")
    cache = tmp_path / "cache"
    first = LeRobotDataset("p", root=root, download_videos=False, cache_dir=cache)
    reads = []
    orig = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, *a, **k: reads.append(str(path)) or orig(path, *a, **k))
    again = LeRobotDataset("p", root=root, download_videos=False, cache_dir=cache)
    assert again.cache_file == first.cache_file and not [p for p in reads if "/data/" in p]
    monkeypatch.setattr(pq, "read_table", orig)
    # rewrite the data file with one action changed: a new cache file, the stale one removed
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    actions = table.column("action").to_pylist()
    actions[7] = [1.5, -2.5]
    table = table.set_column(table.schema.get_field_index("action"), table.schema.field("action"),
                             pa.array(actions, type=table.schema.field("action").type))
    pq.write_table(table, path)
    os.utime(path, ns=(0, first.cache_file.stat().st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    changed = LeRobotDataset("p", root=root, download_videos=False, cache_dir=cache)
    assert changed.cache_file != first.cache_file and not first.cache_file.exists()
    assert changed[7]["action"].tolist() == [1.5, -2.5]


def test_dropped_non_finite_frames_are_reported_again_when_the_cache_is_reused(shared_datasets, tmp_path):
    root = tmp_path / "pusht"
    shutil.copytree(shared_datasets / PUSHT / "meta", root / "meta")
    shutil.copytree(shared_datasets / PUSHT / "data", root / "data")
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    state = table.column("observation.state").to_pylist()
    state[150] = [float("nan"), 0.0]
    table = table.set_column(table.schema.get_field_index("observation.state"), table.schema.field("observation.state"),
                             pa.array(state, type=table.schema.field("observation.state").type))
    pq.write_table(table, path)
    for _ in range(2):
        with pytest.warns(UserWarning, match="dropping 1 frame") as record:
            ds = LeRobotDataset("p", root=root, download_videos=False, nonfinite="drop", cache_dir=tmp_path / "c")
        assert not [w for w in record if "meta/episodes length" in str(w.message)]
        assert len(ds) == len(ds.hf_dataset) == 499 and 150 not in ds.hf_dataset.with_format("numpy")["index"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_read_only_dataset_folder(shared_datasets, tmp_path):
    root = tmp_path / "pusht"
    shutil.copytree(shared_datasets / PUSHT / "meta", root / "meta")
    shutil.copytree(shared_datasets / PUSHT / "data", root / "data")
    for p in [root, *root.rglob("*")]:
        p.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
                                                              if p.is_dir() else 0))
    before = _snapshot(root)
    try:
        ds = LeRobotDataset("p", root=root, download_videos=False, delta_timestamps={"action": [0.0, 0.1]},
                            cache_dir=tmp_path / "cache")
        loader = torch.utils.data.DataLoader(ds, batch_size=50, num_workers=2)
        assert sum(len(b["index"]) for b in loader) == 500
        assert ds.cache_file.is_relative_to(tmp_path / "cache")
        assert _snapshot(root) == before  # nothing written in the dataset folder (root ignores the mode bits)
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(stat.S_IRWXU)
    # the shared datasets folder: nothing written there either (the cache goes to HF_DATASETS_CACHE)
    shared = shared_datasets / PUSHT
    before = _snapshot(shared)
    ds = LeRobotDataset("p", root=shared, download_videos=False)
    assert not ds.cache_file.is_relative_to(shared_datasets.parent)
    assert _snapshot(shared) == before


def test_unwritable_cache_folder_keeps_the_frames_in_memory_with_a_warning(shared_datasets, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="cannot write the Arrow cache file"):
        ds = LeRobotDataset("p", root=shared_datasets / PUSHT, download_videos=False, cache_dir=blocker / "cache")
    assert ds.cache_file is None and len(ds.hf_dataset) == len(ds) == 500
    again = pickle.loads(pickle.dumps(ds))
    assert torch.equal(again[42]["action"], ds[42]["action"])
