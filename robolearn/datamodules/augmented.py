"""Training-only, seeded image augmentation inside the DataLoader workers.

The DataModules wrap their **training** dataset (never the validation one) when they build the train DataLoader:

- map-style: :class:`EpochTaggedSampler` (the :class:`~robolearn.datamodules.sampler.EpochShuffleSampler`, or any
  sampler through :class:`EpochCountingSampler`) yields ``(epoch, index)`` pairs, and :class:`AugmentedDataset`
  loads ``dataset[index]`` and augments its cameras with the generator
  :func:`~robolearn.augment.sample_generator` ``(seed, epoch, index, camera)``. The epoch travels with the index
  from the main process, so persistent workers, prefetching and the number of workers change nothing, and a run
  resumed mid-epoch (the sampler's state is in the checkpoint) augments as the uninterrupted one did.
- streaming: :class:`AugmentedIterable` keys each item by the streaming dataset's epoch (read when iteration starts,
  as its shuffle does) and the item's global frame ``index``.

Why in the workers rather than batched in the main process (``on_after_batch_transfer``): see
``benchmarks/results/augment_cpu.json`` and docs/augmentation.md.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from torch.utils.data import Dataset, IterableDataset, Sampler

from robolearn.augment import ImageAugment, augment_item
from robolearn.datamodules.sampler import EpochShuffleSampler


def build_augment(augment: Any) -> ImageAugment | None:
    """``augment`` as an :class:`ImageAugment`: an instance is kept, a mapping is its keyword arguments, None (or an
    instance with every weight 0) means no augmentation.

    Raises:
        ValueError: a value :class:`ImageAugment` refuses, or ``augment`` of another type.
    """
    if augment is None:
        return None
    if isinstance(augment, ImageAugment):
        return augment if augment.active else None
    if hasattr(augment, "items"):
        return build_augment(ImageAugment(**dict(augment)))
    raise ValueError(f"augment must be an ImageAugment, a mapping of its arguments or None, got {augment!r}")


class EpochTaggedSampler(EpochShuffleSampler):
    """:class:`EpochShuffleSampler` yielding ``(epoch, index)`` pairs (same order, same state dict)."""

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for index in super().__iter__():
            yield epoch, index


class EpochCountingSampler(Sampler):
    """Wrap any sampler: yields ``(epoch, index)`` where ``epoch`` counts the completed passes over it."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        for index in self.sampler:
            yield epoch, int(index)


class AugmentedDataset(Dataset):
    """``dataset[index]`` with ``camera_keys`` augmented; indexed by ``(epoch, index)`` pairs (or a bare index,
    epoch 0). Shapes and dtypes of the items are kept."""

    def __init__(self, dataset: Dataset, augment: ImageAugment, camera_keys: Sequence[str], seed: int) -> None:
        self.dataset, self.augment = dataset, augment
        self.camera_keys, self.seed = tuple(camera_keys), int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        return augment_item(self.augment, self.dataset[index], self.camera_keys, self.seed, epoch, index)


class AugmentedIterable(IterableDataset):
    """A streaming dataset's items with ``camera_keys`` augmented, keyed by ``(seed, epoch, item["index"])``.

    ``epoch`` is the wrapped dataset's ``epoch`` attribute when iteration starts (0 if it has none).
    """

    def __init__(self, dataset: IterableDataset, augment: ImageAugment, camera_keys: Sequence[str],
                 seed: int) -> None:
        self.dataset, self.augment = dataset, augment
        self.camera_keys, self.seed = tuple(camera_keys), int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[dict]:
        epoch = int(getattr(self.dataset, "epoch", 0))
        for item in self.dataset:
            yield augment_item(self.augment, item, self.camera_keys, self.seed, epoch, int(item["index"]))
