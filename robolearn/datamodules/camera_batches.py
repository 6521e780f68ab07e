"""Camera frames converted to float32 once per batch instead of once per item.

A float32 frame is 4x the bytes of its uint8 decode. Converting each item's frames to float32 and then stacking
them (``default_collate``) writes and reads that float copy twice; at 640x480 with two cameras and a 2-frame
window that is ~240 MB per batch of 32, about a fifth of a loader worker's time on the 2-core CPU
(``benchmarks/realistic_loading.py``). Here the items keep their uint8 frames (:class:`Uint8CameraItems`) and
:class:`FloatCameraCollate` divides each one by 255 straight into the float32 batch, allocated in shared memory
inside a DataLoader worker as ``default_collate`` does. The values are bit-identical to the per-item conversion
(float32 division by 255, as lerobot's ``.to(float32) / 255``).

Used by :class:`~robolearn.datamodules.lerobot.LeRobotDataModule` for its map-style loaders when nothing
transforms the frames per item (no ``augment`` for that loader, no ``image_transforms``, ``return_uint8`` off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

if TYPE_CHECKING:
    from robolearn.datasets.lerobot_dataset import LeRobotDataset


class Uint8CameraItems(Dataset):
    """``dataset.get_item(index, uint8=True)``: the items of a :class:`~robolearn.datasets.LeRobotDataset` with
    camera frames as uint8 ``(C, H, W)`` / ``(T, C, H, W)``, everything else unchanged."""

    def __init__(self, dataset: LeRobotDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index) -> dict:
        return self.dataset.get_item(index, uint8=True)


def _float_batch(frames: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(frames).float() / 255`` in one pass: float32 ``(B, *frames[0].shape)``, in shared memory when
    called in a DataLoader worker (so the batch travels to the main process without a copy)."""
    shape = (len(frames), *frames[0].shape)
    if get_worker_info() is not None:
        like = torch.empty(0, dtype=torch.float32)
        storage = like._typed_storage()._new_shared(torch.Size(shape).numel(), device=like.device)
        out = like.new(storage).resize_(shape)
    else:
        out = torch.empty(shape, dtype=torch.float32)
    for i, f in enumerate(frames):
        torch.div(f, 255.0, out=out[i])
    return out


class FloatCameraCollate:
    """Collate function: ``default_collate`` for every key, except the uint8 camera keys, which become one float32
    batch ``(B, C, H, W)`` / ``(B, T, C, H, W)`` in [0, 1].

    Args:
        camera_keys: the keys converted (e.g. ``observation.images.front``); a key absent from the items, or whose
            values are not uint8, is collated as it is.

    Raises:
        ValueError: the items of one camera key differ in shape (from ``out[i]`` assignment), naming the key.
    """

    def __init__(self, camera_keys: Sequence[str]) -> None:
        self.camera_keys = tuple(camera_keys)

    def __call__(self, items: Sequence[dict]) -> dict[str, Any]:
        first = items[0]
        convert = [k for k in self.camera_keys
                   if isinstance(first.get(k), torch.Tensor) and first[k].dtype == torch.uint8]
        if not convert:
            return default_collate(items)
        batch = default_collate([{k: v for k, v in it.items() if k not in convert} for it in items])
        for key in convert:
            frames = [it[key] for it in items]
            shapes = {tuple(f.shape) for f in frames}
            if len(shapes) > 1:
                raise ValueError(f"camera {key!r}: items of one batch have different frame shapes {sorted(shapes)}")
            batch[key] = _float_batch(frames)
        return {k: batch[k] for k in first}  # the items' key order
