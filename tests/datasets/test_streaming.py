"""StreamingLeRobotDataset yields exactly the map-style dataset's items (as a multiset), with equal windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.datasets import LeRobotDataset
from robolearn.datasets.streaming import StreamingLeRobotDataset

REPO = "lerobot/pusht_random"
DELTAS = {"observation.image": [-0.1, 0.0], "observation.state": [-0.1, 0.0], "action": [0.0, 0.1, 0.2, 0.3]}


@pytest.fixture(scope="module")
def pusht_root(shared_datasets):
    root = shared_datasets / "lerobot_written_pusht_random"
    if not (root / "meta" / "info.json").is_file():
        pytest.skip(f"{root} not found")
    return root


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype, k
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
        else:
            assert a[k] == b[k], k


def _by_index(items) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for it in items:
        i = int(it["index"])
        assert i not in out, f"index {i} produced twice"
        out[i] = it
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_equals_map_style_with_windows(pusht_root, workers):
    eps = [0, 2, 3]
    ref = LeRobotDataset(REPO, root=pusht_root, episodes=eps, delta_timestamps=DELTAS, return_uint8=True)
    ds = StreamingLeRobotDataset(REPO, root=pusht_root, episodes=eps, delta_timestamps=DELTAS, buffer_size=50,
                                 seed=3, max_open_episodes=2, return_uint8=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
    got = _by_index(loader)
    assert len(got) == len(ref) == 300
    for pos in range(len(ref)):
        item = ref[pos]
        _assert_same(got[int(item["index"])], item)
    # Padding at both ends of an episode is flagged exactly as in the map-style dataset.
    first = got[int(ref[0]["index"])]
    assert first["observation.image_is_pad"].tolist() == [True, False]
    assert first["action_is_pad"].tolist() == [False] * 4


def test_shuffle_mixes_episodes_and_is_seeded(pusht_root):
    kw = dict(root=pusht_root, buffer_size=64, seed=7, max_open_episodes=3)
    a = [int(it["index"]) for it in StreamingLeRobotDataset(REPO, **kw)]
    b = [int(it["index"]) for it in StreamingLeRobotDataset(REPO, **kw)]
    assert a == b  # same seed, same epoch → same order
    assert sorted(a) == list(range(500)) and a != sorted(a)
    ds = StreamingLeRobotDataset(REPO, **kw)
    e0 = [int(it["index"]) for it in ds]
    e1 = [int(it["index"]) for it in ds]  # the second pass is the next epoch
    assert e0 == a and e1 != e0 and sorted(e1) == sorted(e0)
    # Episodes are interleaved: the first 100 items come from more than one episode.
    assert len({i // 100 for i in a[:100]}) > 1


def test_ranks_partition_the_items(pusht_root):
    seen = []
    for rank in range(2):
        ds = StreamingLeRobotDataset(REPO, root=pusht_root, rank=rank, world_size=2, shuffle=False)
        seen.append([int(it["index"]) for it in ds])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(500))
    # Unshuffled: each rank yields its episodes in order.
    assert seen[0] == sorted(seen[0])


def test_fsspec_filesystem_reads_the_same(pusht_root):
    """The Hub path goes through an fsspec filesystem; a local fsspec filesystem exercises the same code."""
    import fsspec

    fs = fsspec.filesystem("file")
    ds = StreamingLeRobotDataset(REPO, root=pusht_root, episodes=[1], shuffle=False, filesystem=(fs, str(pusht_root)))
    ref = LeRobotDataset(REPO, root=pusht_root, episodes=[1])
    items = list(ds)
    assert len(items) == 100
    for pos in (0, 57, 99):
        _assert_same(items[pos], ref[pos])


def test_errors_name_the_problem(pusht_root, tmp_path):
    with pytest.raises(KeyError, match="episodes \\[9\\]"):
        StreamingLeRobotDataset(REPO, root=pusht_root, episodes=[9])
    with pytest.raises(ValueError, match="buffer_size"):
        StreamingLeRobotDataset(REPO, root=pusht_root, buffer_size=0)
    # A missing video file is named when the episode is streamed.
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(pusht_root / "meta", copy / "meta")
    shutil.copytree(pusht_root / "data", copy / "data")
    ds = StreamingLeRobotDataset(REPO, root=copy, shuffle=False)
    with pytest.raises(FileNotFoundError, match="videos/observation.image"):
        next(iter(ds))


def test_datamodule_streaming(pusht_root):
    from robolearn.datamodules.lerobot import LeRobotDataModule

    dm = LeRobotDataModule(REPO, root=pusht_root, streaming=True, batch_size=16, num_workers=0, val_fraction=0.2)
    dm.set_delta_indices({"action": list(range(4))})
    dm.setup("fit")
    assert isinstance(dm.train_dataset, StreamingLeRobotDataset)
    batch = next(iter(dm.train_dataloader()))
    assert batch["action"].shape == (16, 4, 2) and batch["observation.image"].shape == (16, 3, 96, 96)
    n_val = sum(len(b["index"]) for b in dm.val_dataloader())
    assert n_val == 100  # one held-out episode, every frame once

