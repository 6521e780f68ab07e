"""Camera frames converted to float32 per batch (robolearn/datamodules/camera_batches.py): the DataModule's batches
are bit-identical to default_collate over float32 items, with and without workers, and the path is left out where
items are transformed per item."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from robolearn.augment import ImageAugment
from robolearn.datamodules.camera_batches import FloatCameraCollate, Uint8CameraItems
from robolearn.datamodules.lerobot import LeRobotDataModule

CAM = "observation.image"


@pytest.fixture()
def pusht_root(shared_datasets):
    return shared_datasets / "lerobot_written_pusht_random"  # a lerobot-written video dataset (96x96, AV1)


def _dm(root, **kw):
    kw.setdefault("num_workers", 0)
    dm = LeRobotDataModule(repo_id="t/pusht", root=root, val_fraction=0.2, batch_size=6, **kw)
    dm.set_delta_indices({CAM: [-1, 0], "action": [0, 1, 2]})
    dm.setup("fit")
    return dm


def _reference(loader, dataset):
    """default_collate over the float32 items of the loader's first batch: the first positions of the sampler's
    epoch-0 order (shuffled, train) or the first positions (val)."""
    sampler = loader.sampler
    order = sampler.permutation(0) if hasattr(sampler, "permutation") else list(range(len(dataset)))
    return default_collate([dataset[i] for i in order[:loader.batch_size]])


def _assert_identical(batch, ref):
    assert list(batch) == list(ref)
    for key, value in ref.items():
        if isinstance(value, torch.Tensor):
            assert batch[key].dtype == value.dtype and torch.equal(batch[key], value), key
        else:
            assert batch[key] == value, key


@pytest.mark.parametrize("workers", [0, 2])
def test_train_and_val_batches_equal_per_item_float_conversion(pusht_root, workers):
    dm = _dm(pusht_root, num_workers=workers, persistent_workers=False)
    for loader, dataset in ((dm.train_dataloader(), dm.train_dataset), (dm.val_dataloader(), dm.val_dataset)):
        assert isinstance(loader.dataset, Uint8CameraItems)
        batch = next(iter(loader))
        assert batch[CAM].dtype == torch.float32 and batch[CAM].shape == (6, 2, 3, 96, 96)
        assert 0.0 <= float(batch[CAM].min()) and float(batch[CAM].max()) <= 1.0
        _assert_identical(batch, _reference(loader, dataset))
    assert dm.train_dataset[0][CAM].dtype == torch.float32  # the dataset itself still serves float32


def test_items_keep_uint8_and_equal_the_float_items_times_255(pusht_root):
    dm = _dm(pusht_root)
    u8 = Uint8CameraItems(dm.train_dataset)
    assert len(u8) == len(dm.train_dataset)
    item, ref = u8[3], dm.train_dataset[3]
    assert item[CAM].dtype == torch.uint8
    assert torch.equal(item[CAM].float() / 255, ref[CAM])
    assert torch.equal(item["action"], ref["action"]) and item["task"] == ref["task"]


def test_not_used_where_items_are_transformed_or_already_uint8(pusht_root):
    aug = _dm(pusht_root, augment=ImageAugment())
    assert not isinstance(aug.train_dataloader().dataset, Uint8CameraItems)  # augmentation works on float items
    assert isinstance(aug.val_dataloader().dataset, Uint8CameraItems)  # validation is never augmented
    raw = _dm(pusht_root, dataset_kwargs={"return_uint8": True})
    batch = next(iter(raw.train_dataloader()))
    assert batch[CAM].dtype == torch.uint8  # asked for uint8: kept
    tr = _dm(pusht_root, dataset_kwargs={"image_transforms": lambda x: x * 2})
    assert not isinstance(tr.train_dataloader().dataset, Uint8CameraItems)
    assert float(next(iter(tr.train_dataloader()))[CAM].max()) > 1.0  # the transform saw float32 frames


def test_collate_leaves_other_keys_and_refuses_mixed_shapes():
    collate = FloatCameraCollate(["cam", "absent"])
    items = [{"cam": torch.full((3, 2, 2), v, dtype=torch.uint8), "x": torch.tensor([float(v)]), "task": "t"}
             for v in (0, 51, 255)]
    batch = collate(items)
    assert list(batch) == ["cam", "x", "task"]
    assert batch["cam"].dtype == torch.float32 and torch.equal(batch["cam"][:, 0, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    assert batch["x"].shape == (3, 1) and batch["task"] == ["t", "t", "t"]
    floats = [{"cam": torch.rand(3, 2, 2)} for _ in range(2)]
    assert torch.equal(collate(floats)["cam"], default_collate(floats)["cam"])  # not uint8: collated as it is
    items[1]["cam"] = torch.zeros((3, 2, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match="'cam'.*different frame shapes"):
        collate(items)
