"""Lightning DataModule over a LeRobotDataset v3.0.

The DataModule is built before the policy. It exposes what the policy needs to be constructed
(``features``, ``stats``) and receives, in return, the temporal windows the policy needs as integer
frame offsets (``set_delta_indices``), which it turns into lerobot's ``delta_timestamps`` in seconds
using the dataset's ``fps``. Windows are therefore never written by hand in YAML.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import lightning as L
import numpy as np
from filelock import FileLock
from torch.utils.data import DataLoader, IterableDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from robolearn.datasets.errors import DatasetFormatError
from robolearn.datamodules.augmented import AugmentedDataset, AugmentedIterable, EpochTaggedSampler, build_augment
from robolearn.datamodules.camera_batches import FloatCameraCollate, Uint8CameraItems
from robolearn.datamodules.sampler import EpochShuffleSampler
from robolearn.datamodules.workers import AUTO, resolve_num_workers
from robolearn.features import FeatureType, PolicyFeature, dataset_to_policy_features

log = logging.getLogger(__name__)


def _is_numeric(value) -> bool:
    return np.asarray(value).dtype.kind in "fiub"


class LeRobotDataModule(L.LightningDataModule):
    """Train/val DataLoaders over one LeRobotDataset, split by episode.

    Args:
        repo_id: dataset id (``owner/name``); resolved from the Hugging Face Hub when ``root`` is None.
        root: local dataset folder (holding ``meta/info.json``), or None for the Hub / local cache.
        revision: Hub revision (default: the ``v3.0`` tag).
        episodes: restrict to these episode indices (None = all).
        val_fraction: fraction of the selected episodes held out for validation loss (at least one
            episode when > 0 and the dataset has 2+ episodes; 0 disables validation).
        exclude_features: dataset keys not passed to the policy (e.g. ``observation.environment_state``
            to train a pixels-only policy on a dataset that also has keypoints).
        batch_size, num_workers, persistent_workers, pin_memory, prefetch_factor, drop_last: DataLoader
            settings (``persistent_workers``/``prefetch_factor`` only apply with workers > 0); ``num_workers``
            ``"auto"`` (the default) is one worker per available core, at most 8
            (:func:`robolearn.datamodules.workers.resolve_num_workers`, chosen by measurement).
        tolerance_s: tolerance in seconds for ``delta_timestamps`` alignment and video frame matching.
        video_backend: decoder name passed to the reader (None = default).
        generator: optional callable ``generator(root: Path, repo_id: str)`` that creates the dataset
            when ``root`` does not hold one yet (used by the embedded default dataset).
        seed: seed of the train/val episode split and of the shuffle order (each epoch's permutation depends only
            on it and the epoch: :class:`~robolearn.datamodules.sampler.EpochShuffleSampler`; the streaming shuffle).
        streaming: read with :class:`~robolearn.datasets.streaming.StreamingLeRobotDataset` (sequential episode
            reads, shuffle buffer, no up-front loading or download) instead of the map-style reader.
        buffer_size: shuffle buffer size in items when ``streaming``.
        dataset_kwargs: extra keyword arguments for :class:`~robolearn.datasets.LeRobotDataset`.
        augment: image augmentation of the **training** items (never validation): an
            :class:`~robolearn.augment.ImageAugment` (``conf/augment/``, passed by ``train.py``), a mapping of its
            arguments, or None. Applied per camera in the DataLoader workers, seeded by ``(seed, epoch, index,
            camera)`` (:mod:`robolearn.datamodules.augmented`).

    Raises:
        KeyError: from ``set_delta_indices`` when a windowed key is not a dataset feature.
        ValueError: a bad ``val_fraction`` or ``augment`` value (naming it).
    """

    def __init__(
        self,
        repo_id: str,
        root: str | Path | None = None,
        revision: str | None = None,
        episodes: Sequence[int] | None = None,
        val_fraction: float = 0.1,
        exclude_features: Sequence[str] = (),
        batch_size: int = 32,
        num_workers: int | str = AUTO,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        prefetch_factor: int | None = 2,
        drop_last: bool = True,
        tolerance_s: float = 1e-4,
        video_backend: str | None = None,
        generator: Callable[..., Any] | None = None,
        seed: int = 0,
        streaming: bool = False,
        buffer_size: int = 1000,
        dataset_kwargs: Mapping[str, Any] | None = None,
        augment: Any = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.repo_id = repo_id
        self.root = Path(root).expanduser() if root is not None else None
        self.revision = revision
        self.episodes = list(episodes) if episodes is not None else None
        self.val_fraction = val_fraction
        self.exclude_features = tuple(exclude_features)
        self.batch_size = batch_size
        self.num_workers = resolve_num_workers(num_workers)
        self.persistent_workers = persistent_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.drop_last = drop_last
        self.tolerance_s = tolerance_s
        self.video_backend = video_backend
        self.generator = generator
        self.seed = seed
        self.streaming = bool(streaming)
        self.buffer_size = int(buffer_size)
        self.dataset_kwargs = dict(dataset_kwargs or {})
        self.augment = build_augment(augment)
        self.delta_timestamps: dict[str, list[float]] | None = None
        self._meta = None
        self._finite_stats: dict[str, dict[str, np.ndarray]] | None = None
        self.train_dataset = None
        self.val_dataset = None

    # ------------------------------------------------------------------ metadata
    def prepare_data(self) -> None:
        """Create the dataset with ``generator`` if ``root`` has none yet (runs on one process)."""
        self._ensure_dataset()

    def _ensure_dataset(self) -> None:
        """Generate the dataset when ``root`` holds none. Runs started together on one missing root (a multirun, two
        seeds of a reproduction) take a lock file beside it (``.<root name>.lock``): one generates, the others wait
        and then read what it wrote."""
        if self.root is None or (self.root / "meta" / "info.json").is_file():
            return
        if self.generator is None:
            return  # the reader raises a clear FileNotFoundError naming the missing info.json
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root.parent / f".{self.root.name}.lock"):
            if (self.root / "meta" / "info.json").is_file():  # another process generated it while this one waited
                return
            log.info("Dataset not found at %s: generating it (one-time, then cached).", self.root)
            self.generator(root=self.root, repo_id=self.repo_id)

    @property
    def meta(self):
        """The dataset's :class:`~robolearn.datasets.metadata.LeRobotDatasetMetadata` (loaded once)."""
        if self._meta is None:
            from robolearn.datasets.metadata import LeRobotDatasetMetadata

            self._ensure_dataset()
            self._meta = LeRobotDatasetMetadata(self.repo_id, root=self.root, revision=self.revision)
        return self._meta

    @property
    def fps(self) -> int:
        return int(self.meta.fps)

    @property
    def features(self) -> dict[str, PolicyFeature]:
        """Policy features of the dataset (cameras as ``(C, H, W)``), minus ``exclude_features``."""
        unknown = [k for k in self.exclude_features if k not in self.meta.features]
        if unknown:
            raise KeyError(
                f"exclude_features names keys that are not features of dataset '{self.repo_id}': {unknown}; "
                f"dataset features: {sorted(self.meta.features)}"
            )
        feats = dataset_to_policy_features(self.meta.features)
        return {k: v for k, v in feats.items() if k not in self.exclude_features}

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Normalization statistics from ``meta/stats.json`` (empty dict when the file is absent).

        With ``dataset_kwargs.nonfinite: drop``, the statistics of a feature that holds non-finite values are
        recomputed over its finite frames (of the selected episodes).

        Raises:
            DatasetFormatError: a used feature's statistics hold NaN/inf (and frames are not being dropped).
        """
        stats = dict(self.meta.stats or {})
        used = set(self.features)
        bad = sorted(k for k, s in stats.items() if k in used and not all(
            np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in s.values() if _is_numeric(v)))
        if not bad:
            return stats
        if self.dataset_kwargs.get("nonfinite", "error") != "drop":
            raise DatasetFormatError(
                f"{self.meta.root / 'meta/stats.json'}: non-finite statistics for {bad} (the data holds NaN/inf); "
                "set dataset.dataset_kwargs.nonfinite=drop to leave those frames out, or repair the data")
        if self._finite_stats is None:
            from robolearn.datasets.lerobot_dataset import LeRobotDataset
            from robolearn.datasets.stats import get_feature_stats

            data = LeRobotDataset(self.repo_id, root=self.root, episodes=self.episodes, revision=self.revision,
                                  download_videos=False, nonfinite="drop")
            self._finite_stats = {k: get_feature_stats(np.asarray(data._cols[k], dtype=np.float64), axis=0,
                                                       keepdims=False) for k in bad}
            log.warning("recomputed the statistics of %s over their finite frames (meta/stats.json holds NaN/inf)",
                        bad)
        stats.update(self._finite_stats)
        return stats

    # ------------------------------------------------------------------ windows
    def set_delta_indices(self, delta_indices: Mapping[str, Sequence[int] | None]) -> None:
        """Set temporal windows from integer frame offsets, e.g. ``{"action": [0, 1, ..., 15]}``.

        Offsets become ``delta_timestamps`` in seconds: ``offset / fps``. Keys mapped to None are
        single frames (no window).

        Raises:
            KeyError: if a key is not a feature of the dataset (lists the dataset's features).
        """
        fps = self.fps
        missing = [k for k in delta_indices if k not in self.meta.features]
        if missing:
            raise KeyError(
                f"the policy asks for windows over {missing}, which dataset '{self.repo_id}' does not have; "
                f"dataset features: {sorted(self.meta.features)}"
            )
        self.delta_timestamps = {
            k: [int(i) / fps for i in idx] for k, idx in delta_indices.items() if idx is not None
        } or None
        # Datasets built before the windows were known must be rebuilt.
        self.train_dataset = self.val_dataset = None

    # ------------------------------------------------------------------ datasets
    def split_episodes(self) -> tuple[list[int], list[int]]:
        """Split the selected episodes into (train, val) lists with a seeded permutation."""
        all_eps = self.episodes if self.episodes is not None else [int(e) for e in self.meta.episodes.index]
        n_val = 0
        if self.val_fraction > 0 and len(all_eps) >= 2:
            n_val = max(1, int(round(self.val_fraction * len(all_eps))))
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(all_eps))
        val = sorted(all_eps[i] for i in perm[:n_val])
        train = sorted(all_eps[i] for i in perm[n_val:])
        return train, val

    def _make_dataset(self, episodes: list[int], train: bool = True):
        if self.streaming:
            from robolearn.datasets.streaming import StreamingLeRobotDataset

            return StreamingLeRobotDataset(
                self.repo_id,
                root=self.root,
                episodes=episodes,
                delta_timestamps=self.delta_timestamps,
                buffer_size=self.buffer_size,
                seed=self.seed,
                shuffle=train,
                tolerance_s=self.tolerance_s,
                revision=self.revision,
                **self.dataset_kwargs,
            )
        from robolearn.datasets.lerobot_dataset import LeRobotDataset

        kwargs = dict(self.dataset_kwargs)
        video_keys = set(self.meta.video_keys)
        if video_keys and video_keys <= set(self.exclude_features):
            kwargs.setdefault("download_videos", False)  # every camera is excluded: open no mp4 at all
        return LeRobotDataset(
            self.repo_id,
            root=self.root,
            episodes=episodes,
            delta_timestamps=self.delta_timestamps,
            tolerance_s=self.tolerance_s,
            revision=self.revision,
            video_backend=self.video_backend,
            **kwargs,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        train_eps, val_eps = self.split_episodes()
        self.train_dataset = self._make_dataset(train_eps)
        self.val_dataset = self._make_dataset(val_eps, train=False) if val_eps else None

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        workers = self.num_workers
        kwargs: dict[str, Any] = {}
        if workers > 0:
            kwargs["persistent_workers"] = self.persistent_workers
            if self.prefetch_factor is not None:
                kwargs["prefetch_factor"] = self.prefetch_factor
        train = shuffle
        loader_cls = DataLoader
        sampler = None
        if isinstance(dataset, IterableDataset):
            shuffle = False  # the streaming dataset shuffles itself (episode order + buffer)
        else:
            # Its state (the sampler's epoch and position) is saved in Lightning checkpoints, so a run resumed
            # mid-epoch (a requeued SLURM job) continues with the batches the uninterrupted run would have seen, in
            # this epoch and the next ones (each epoch's order depends only on the seed and the epoch).
            loader_cls = StatefulDataLoader
            if shuffle:
                tagged = train and self.augment is not None  # the epoch travels with each index to the workers
                sampler_cls = EpochTaggedSampler if tagged else EpochShuffleSampler
                sampler, shuffle = sampler_cls(len(dataset), seed=self.seed), False
        from robolearn.datasets.lerobot_dataset import LeRobotDataset

        collate_fn = None
        if train and self.augment is not None:
            wrap = AugmentedIterable if isinstance(dataset, IterableDataset) else AugmentedDataset
            dataset = wrap(dataset, self.augment, self.camera_keys, self.seed)
        elif (isinstance(dataset, LeRobotDataset) and dataset.camera_keys and not dataset.return_uint8
              and dataset.image_transforms is None):
            # the same float32 frames, converted once per batch (robolearn.datamodules.camera_batches)
            dataset, collate_fn = Uint8CameraItems(dataset), FloatCameraCollate(dataset.camera_keys)
        return loader_cls(
            dataset,
            collate_fn=collate_fn,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.pin_memory,
            drop_last=self.drop_last and train and len(dataset) >= self.batch_size,
            **kwargs,
        )

    @property
    def camera_keys(self) -> list[str]:
        """The cameras the policy sees (visual features minus ``exclude_features``): the ones ``augment`` changes."""
        return [k for k, f in self.features.items() if f.type is FeatureType.VISUAL]

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            self.setup("fit")
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self):
        if self.train_dataset is None:
            self.setup("fit")
        if self.val_dataset is None:
            return []
        return self._loader(self.val_dataset, shuffle=False)
