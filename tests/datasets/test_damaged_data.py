"""Damaged datasets give errors that name the culprit, at load and in the validator (issue: silent disagreements).

Each test starts from the lerobot-written PushT dataset in ``../shared/datasets``, copied to a temp folder and
damaged there: NaN values, a declared dtype that is not the stored one, an ``fps`` edited in ``info.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from robolearn.datamodules.lerobot import LeRobotDataModule
from robolearn.datasets.errors import DatasetFormatError
from robolearn.datasets.lerobot_dataset import LeRobotDataset
from robolearn.datasets.validate import validate_dataset
from tests.eval.helpers import PUSHT_DS

DATA = "data/chunk-000/file-000.parquet"


@pytest.fixture
def pusht_copy(shared_datasets, tmp_path) -> Path:
    root = tmp_path / "pusht"
    shutil.copytree(shared_datasets / PUSHT_DS, root)
    return root


def _poison(root: Path, key: str, rows: list[int], value: float = float("nan")) -> None:
    """Write ``value`` into the first component of ``key`` at data rows ``rows`` (the file keeps its schema)."""
    table = pq.read_table(root / DATA)
    column = table.column(key).to_pylist()
    for r in rows:
        column[r] = [value, *column[r][1:]]
    field = table.schema.field(key)
    table = table.set_column(table.schema.get_field_index(key), field, pa.array(column, type=field.type))
    pq.write_table(table, root / DATA)


def _edit_info(root: Path, edit) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    edit(info)
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))


def _messages(root: Path) -> list[str]:
    return [str(p) for p in validate_dataset(root, check_videos=False)]


def test_nan_in_the_data_is_refused_at_load_and_reported_by_the_validator(pusht_copy):
    table = pq.read_table(pusht_copy / DATA, columns=["episode_index", "frame_index"])
    episode, frame = table.column("episode_index").to_numpy(), table.column("frame_index").to_numpy()
    row = int(np.flatnonzero(episode == 2)[5])
    _poison(pusht_copy, "action", [row, row + 1])
    with pytest.raises(DatasetFormatError, match=rf"'action': 2 frame\(s\) in episodes \[2\], first at episode 2 frame "
                                                 rf"{frame[row]}.*nonfinite='drop'"):
        LeRobotDataset("lerobot/pusht", root=pusht_copy)
    assert any("column action" in m and "non-finite" in m and "episodes [2]" in m for m in _messages(pusht_copy))
    # told to drop them: two frames fewer, every item finite, and nothing else lost
    with pytest.warns(UserWarning, match="dropping 2 frame"):
        dropped = LeRobotDataset("lerobot/pusht", root=pusht_copy, nonfinite="drop", download_videos=False)
    assert len(dropped) == len(episode) - 2
    assert all(torch.isfinite(dropped[i]["action"]).all() for i in range(len(dropped)))


def test_datamodule_refuses_nan_statistics_unless_dropping_then_recomputes_them(pusht_copy):
    _poison(pusht_copy, "observation.state", [3])
    stats = json.loads((pusht_copy / "meta/stats.json").read_text())
    stats["observation.state"]["mean"][0] = float("nan")  # what the writer computes over a NaN frame
    (pusht_copy / "meta/stats.json").write_text(json.dumps(stats))
    kw = dict(root=pusht_copy, num_workers=0, batch_size=4, exclude_features=["observation.image"])
    with pytest.raises(DatasetFormatError, match=r"stats.json: non-finite statistics for \['observation.state'\]"):
        LeRobotDataModule("lerobot/pusht", **kw).stats
    dm = LeRobotDataModule("lerobot/pusht", dataset_kwargs={"nonfinite": "drop"}, **kw)
    with pytest.warns(UserWarning, match="dropping 1 frame"):
        mean = dm.stats["observation.state"]["mean"]
    assert np.all(np.isfinite(mean)) and mean.shape == (2,)
    with pytest.warns(UserWarning, match="dropping 1 frame"):
        batch = next(iter(dm.train_dataloader()))
    assert torch.isfinite(batch["observation.state"]).all()


def test_declared_dtype_that_is_not_the_stored_one_is_refused(pusht_copy):
    _edit_info(pusht_copy, lambda info: info["features"]["action"].__setitem__("dtype", "int64"))
    with pytest.raises(DatasetFormatError, match=rf"{DATA}: column 'action' stores float values but meta/info.json "
                                                 r"declares dtype 'int64'"):
        LeRobotDataset("lerobot/pusht", root=pusht_copy, download_videos=False)
    assert any("column action" in m and "declares dtype 'int64'" in m for m in _messages(pusht_copy))


def test_fps_edited_in_info_json_is_refused_at_load(pusht_copy):
    _edit_info(pusht_copy, lambda info: info.__setitem__("fps", 20))
    with pytest.raises(DatasetFormatError, match=r"not frame_index / fps = .* with fps = 20 from meta/info.json"):
        LeRobotDataset("lerobot/pusht", root=pusht_copy, download_videos=False)


def test_non_finite_training_loss_stops_training_naming_step_and_episodes():
    from robolearn.policies.base import NonFiniteLossError
    from tests.inference.helpers import tiny_act

    policy = tiny_act(chunk_size=4).train()
    batch = {"observation.state": torch.full((2, 3), float("nan")),
             "observation.images.front": torch.rand(2, 3, 16, 16),
             "action": torch.zeros(2, 4, 2), "action_is_pad": torch.zeros(2, 4, dtype=torch.bool),
             "episode_index": torch.tensor([3, 5]), "frame_index": torch.tensor([10, 0])}
    expected = r"at global step 0; batch episode_index \[3, 5\]; frame_index \[0, 10\]"
    with pytest.raises(NonFiniteLossError, match=expected):
        policy.training_step(batch, 0)


def test_corrupt_parquet_is_named_at_load_reported_by_the_validator_and_repair(pusht_copy, capsys):
    from robolearn.datasets.repair import RepairError, check_dataset
    from robolearn.datasets.repair import main as repair_main

    data = bytearray((pusht_copy / DATA).read_bytes())
    data[2000:6000] = bytes(4000)  # damaged pages; the footer still parses
    (pusht_copy / DATA).write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match=rf"{pusht_copy / DATA}: unreadable parquet file"):
        LeRobotDataset("lerobot/pusht", root=pusht_copy, download_videos=False)
    assert any(DATA in m and "error" in m for m in _messages(pusht_copy))  # a finding, not a traceback
    with pytest.raises(RepairError, match=rf"{DATA}: unreadable parquet file.*cannot rebuild a damaged committed file"):
        check_dataset(pusht_copy)
    assert repair_main([str(pusht_copy)]) == 1
    assert "cannot repair" in capsys.readouterr().out
    (pusht_copy / DATA).write_bytes(bytes(data[: len(data) // 2]))  # truncated: no footer
    with pytest.raises(DatasetFormatError, match=rf"{DATA}: unreadable parquet file .*magic bytes"):
        LeRobotDataset("lerobot/pusht", root=pusht_copy, download_videos=False)


def test_corrupt_mp4_names_the_file_and_episode(pusht_copy):
    from robolearn.datasets.errors import VideoDecodeError

    video = next((pusht_copy / "videos").rglob("*.mp4"))
    data = bytearray(video.read_bytes())
    data[len(data) // 3: len(data) // 3 + 20000] = bytes(20000)
    video.write_bytes(bytes(data))
    ds = LeRobotDataset("lerobot/pusht", root=pusht_copy, video_cache_mb=0)
    errors = []
    for i in range(0, len(ds), 5):
        try:
            ds[i]
        except VideoDecodeError as e:
            errors.append(str(e))
    assert errors and all(str(video) in m and "(episode " in m and "truncated or corrupt" in m for m in errors)


def test_empty_or_truncated_weights_file_is_named(tmp_path):
    from robolearn.policies.pretrained import load_policy, save_pretrained
    from robolearn.policies.weights_file import WeightsFileError
    from tests.inference.helpers import tiny_act

    folder = save_pretrained(tiny_act(chunk_size=4), tmp_path / "pretrained_model")
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    for damaged in (b"", whole[: len(whole) // 2]):
        weights.write_bytes(damaged)
        expected = rf"{weights} \({len(damaged)} bytes\) is not a readable safetensors"
        with pytest.raises(WeightsFileError, match=expected):
            load_policy(folder)


def test_train_val_split_with_episode_index_gaps(pusht_copy):
    import pyarrow.compute as pc

    for rel in (DATA, "meta/episodes/chunk-000/file-000.parquet"):  # episode 4 renumbered 7 (a hand-edited dataset)
        table = pq.read_table(pusht_copy / rel)
        column = table.column("episode_index")
        renumbered = pc.if_else(pc.equal(column, 4), pa.scalar(7, column.type), column)
        pq.write_table(table.set_column(table.schema.get_field_index("episode_index"),
                                        table.schema.field("episode_index"), renumbered), pusht_copy / rel)
    dm = LeRobotDataModule("lerobot/pusht", root=pusht_copy, num_workers=0, batch_size=4, val_fraction=0.4,
                           exclude_features=["observation.image"])
    train, val = dm.split_episodes()
    assert sorted(train + val) == [0, 1, 2, 3, 7] and len(val) == 2
    with pytest.warns(UserWarning, match="episode indices are not 0..4 without gaps"):
        dm.setup("fit")
    assert len(dm.train_dataset) + len(dm.val_dataset) == 500


def test_streaming_reader_refuses_the_same_damage_when_it_reaches_the_episode(pusht_copy):
    from robolearn.datasets.streaming import StreamingLeRobotDataset

    table = pq.read_table(pusht_copy / DATA, columns=["episode_index"])
    row = int(np.flatnonzero(table.column("episode_index").to_numpy() == 1)[3])
    _poison(pusht_copy, "action", [row], float("inf"))
    stream = StreamingLeRobotDataset("lerobot/pusht", root=pusht_copy, episodes=[1], shuffle=False)
    with pytest.raises(DatasetFormatError, match=r"\(NaN/inf\): 'action': 1 frame\(s\) in episodes \[1\]"):
        next(iter(stream))
    _edit_info(pusht_copy, lambda info: info.__setitem__("fps", 20))
    stream = StreamingLeRobotDataset("lerobot/pusht", root=pusht_copy, episodes=[0], shuffle=False)
    with pytest.raises(DatasetFormatError, match="with fps = 20 from meta/info.json"):
        next(iter(stream))
