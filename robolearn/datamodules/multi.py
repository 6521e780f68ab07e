"""Training on several LeRobotDatasets at once (multi-task / multi-embodiment).

Each source dataset is a :class:`~robolearn.datamodules.lerobot.LeRobotDataModule` (its own root, fps, episodes,
train/val split). Feature keys are renamed to common names per dataset (``rename``), only the common keys present
in **every** source are kept, and vector features (state, action, environment state) of different widths are
zero-padded to the widest one (or to ``pad_to[key]``). Each item gains ``<key>_dim_mask`` (bool ``(D_max,)``, True
on the source's real dims) for every padded key and ``dataset_index`` (int). The ``task`` string of each item is
kept, so a language-conditioned policy sees which task each frame belongs to.

Statistics are merged per dimension over the sources that have that dimension, weighted by their frame counts
``n_i``: ``mean = sum n_i mean_i / N``, ``std = sqrt(sum n_i (std_i^2 + mean_i^2) / N - mean^2)``, ``min``/``max``
element-wise, quantiles count-weighted means (as ``meta/stats.json`` aggregates episodes), ``count = N``.
Dims no source has cannot occur (padding only extends to the widest source), except with ``pad_to``: those get
mean 0, std 1, min/max 0 so normalization leaves the zero padding at 0.

Sampling: a ``WeightedRandomSampler`` draws dataset ``d`` with probability ``weight_d / sum(weights)`` and a
uniform frame within it (item weight ``weight_d / len_d``); ``weights=None`` means proportional to frames.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Dataset, WeightedRandomSampler

from robolearn.datamodules.augmented import AugmentedDataset, EpochCountingSampler, build_augment
from robolearn.datamodules.lerobot import LeRobotDataModule
from robolearn.datamodules.workers import AUTO, resolve_num_workers
from robolearn.features import FeatureType, PolicyFeature

log = logging.getLogger(__name__)

PADDED_TYPES = (FeatureType.STATE, FeatureType.ACTION, FeatureType.ENV)
# Per-item keys that are not features and are kept as they are.
ITEM_METADATA = ("task", "index", "episode_index", "frame_index", "timestamp", "task_index")
SOURCE_KEYS = ("repo_id", "root", "revision", "episodes", "rename", "weight", "exclude_features", "val_fraction",
               "tolerance_s", "video_backend", "dataset_kwargs")


def merge_stats(stats_list: Sequence[Mapping[str, Mapping[str, Any]]], counts: Sequence[float],
                widths: Mapping[str, int]) -> dict[str, dict[str, np.ndarray]]:
    """Merge per-source statistics of one feature set (see the module docstring for the formulas).

    Args:
        stats_list: per source ``{key: {stat: array}}`` (already renamed to the common keys; vectors ``(D_i,)``,
            cameras ``(C, 1, 1)``). A key missing from a source's stats is skipped for that source.
        counts: frames per source (the weights ``n_i``).
        widths: ``{key: D_max}`` for vector keys to pad; other keys must have equal shapes across sources.
    Returns:
        ``{key: {stat: array}}`` with vectors ``(D_max,)``.
    Raises:
        ValueError: a non-padded key with different shapes across sources.
    """
    keys = sorted({k for s in stats_list for k in s})
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        entries = [(s[key], float(n)) for s, n in zip(stats_list, counts) if key in s]
        shapes = {np.asarray(e["mean"]).shape for e, _ in entries if "mean" in e}
        if key not in widths and len(shapes) > 1:
            raise ValueError(f"statistics of '{key}' have different shapes across datasets: {sorted(shapes)}")
        width = widths.get(key)
        names = set.intersection(*[set(e) for e, _ in entries]) - {"count"}
        merged: dict[str, np.ndarray] = {}

        def stack(name: str, fill: float) -> tuple[np.ndarray, np.ndarray]:
            vals, ws = [], []
            for e, n in entries:
                v = np.asarray(e[name], dtype=np.float64)
                w = np.full(v.shape, n)
                if width is not None:
                    pad = width - v.shape[-1]
                    v = np.concatenate([v, np.full(v.shape[:-1] + (pad,), fill)], axis=-1)
                    w = np.concatenate([w, np.zeros(w.shape[:-1] + (pad,))], axis=-1)
                vals.append(v)
                ws.append(w)
            return np.stack(vals), np.stack(ws)

        total = None
        if "mean" in names:
            means, w = stack("mean", 0.0)
            total = w.sum(0)
            safe = np.where(total > 0, total, 1.0)
            mean = (w * means).sum(0) / safe
            merged["mean"] = np.where(total > 0, mean, 0.0)
            if "std" in names:
                stds, _ = stack("std", 0.0)
                second = (w * (stds ** 2 + means ** 2)).sum(0) / safe
                merged["std"] = np.where(total > 0, np.sqrt(np.maximum(second - mean ** 2, 0.0)), 1.0)
        if "min" in names:
            mins, w = stack("min", np.inf)
            merged["min"] = np.where(w.sum(0) > 0, mins.min(0), 0.0)
        if "max" in names:
            maxs, w = stack("max", -np.inf)
            merged["max"] = np.where(w.sum(0) > 0, maxs.max(0), 0.0)
        for name in sorted(n for n in names if n.startswith("q")):
            qs, w = stack(name, 0.0)
            tw = w.sum(0)
            merged[name] = np.where(tw > 0, (w * qs).sum(0) / np.where(tw > 0, tw, 1.0), 0.0)
        merged["count"] = np.array([int(sum(n for _, n in entries))])
        out[key] = {k: (v.astype(np.float32) if k != "count" else v) for k, v in merged.items()}
    return out


class _MappedDataset(Dataset):
    """One source dataset seen through the common names: renamed keys, zero-padded vectors, dim masks."""

    def __init__(self, dataset: Dataset, rename: Mapping[str, str], keep: set[str], widths: Mapping[str, int],
                 dims: Mapping[str, int], dataset_index: int):
        self.dataset, self.rename, self.keep = dataset, dict(rename), keep
        self.widths, self.dims, self.dataset_index = widths, dims, dataset_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        item = self.dataset[idx]
        out: dict[str, Any] = {}
        for key, value in item.items():
            base, suffix = (key[: -len("_is_pad")], "_is_pad") if key.endswith("_is_pad") else (key, "")
            common = self.rename.get(base, base)
            if common in self.keep or (not suffix and key in ITEM_METADATA):
                out[common + suffix] = value
        for key, width in self.widths.items():
            d = self.dims[key]
            if d < width:
                out[key] = F.pad(out[key], (0, width - d))
            mask = torch.zeros(width, dtype=torch.bool)
            mask[:d] = True
            out[f"{key}_dim_mask"] = mask
        out["dataset_index"] = torch.tensor(self.dataset_index)
        return out


class MultiLeRobotDataModule(L.LightningDataModule):
    """Train/val DataLoaders over several LeRobotDatasets with common feature names.

    Args:
        datasets: one mapping per source: ``repo_id``, ``root`` (as :class:`LeRobotDataModule`), optional
            ``episodes``, ``exclude_features``, ``revision``, ``val_fraction``, ``tolerance_s``, ``video_backend``,
            ``dataset_kwargs``, ``rename`` (``{source key: common key}``) and ``weight`` (sampling weight).
        pad_to: ``{common key: width}`` to pad vector features to a fixed width (e.g. ``{"observation.state": 32}``)
            instead of the widest source.
        batch_size, num_workers, persistent_workers, pin_memory, drop_last: DataLoader settings (``num_workers``
            ``"auto"``: :func:`robolearn.datamodules.workers.resolve_num_workers`).
        val_fraction: default per-source validation fraction of episodes.
        samples_per_epoch: items drawn per training epoch (default: total training frames).
        seed: episode split and sampler seed.
        augment: image augmentation of the training items (never validation), as
            :class:`~robolearn.datamodules.lerobot.LeRobotDataModule`'s; seeded by ``(seed, epoch, index, camera)``
            with ``index`` the position in the concatenated training set and ``epoch`` the pass over the sampler.
    Raises:
        ValueError: no source, an unknown source key, a negative weight, a camera/other non-vector feature with
            different shapes or types across sources, ``pad_to`` narrower than a source.
        KeyError: ``rename`` names a key the source does not have.
    """

    def __init__(self, datasets: Sequence[Mapping[str, Any]], pad_to: Mapping[str, int] | None = None,
                 batch_size: int = 32, num_workers: int | str = AUTO, persistent_workers: bool = True,
                 pin_memory: bool = False, drop_last: bool = True, val_fraction: float = 0.1,
                 samples_per_epoch: int | None = None, seed: int = 0, augment: Any = None) -> None:
        super().__init__()
        if not datasets:
            raise ValueError("MultiLeRobotDataModule needs at least one dataset")
        self.sources: list[LeRobotDataModule] = []
        self.renames: list[dict[str, str]] = []
        self.weights: list[float | None] = []
        for i, spec in enumerate(datasets):
            spec = dict(spec)
            unknown = sorted(set(spec) - set(SOURCE_KEYS))
            if unknown:
                raise ValueError(f"datasets[{i}]: unknown key(s) {unknown}; expected some of {list(SOURCE_KEYS)}")
            weight = spec.pop("weight", None)
            if weight is not None and weight < 0:
                raise ValueError(f"datasets[{i}].weight must be >= 0, got {weight}")
            self.weights.append(weight)
            self.renames.append(dict(spec.pop("rename", None) or {}))
            spec.setdefault("val_fraction", val_fraction)
            self.sources.append(LeRobotDataModule(batch_size=batch_size, num_workers=0, seed=seed, **spec))
        self.pad_to = dict(pad_to or {})
        self.batch_size, self.num_workers = batch_size, resolve_num_workers(num_workers)
        self.persistent_workers, self.pin_memory, self.drop_last = persistent_workers, pin_memory, drop_last
        self.samples_per_epoch, self.seed = samples_per_epoch, seed
        self.augment = build_augment(augment)
        self.train_dataset = self.val_dataset = None
        self._features: dict[str, PolicyFeature] | None = None

    # ------------------------------------------------------------------ features and stats
    def _source_features(self, i: int) -> dict[str, PolicyFeature]:
        feats = self.sources[i].features
        missing = [k for k in self.renames[i] if k not in feats]
        if missing:
            raise KeyError(f"datasets[{i}] ({self.sources[i].repo_id}): rename names keys it does not have: {missing}; "
                           f"its features: {sorted(feats)}")
        return {self.renames[i].get(k, k): f for k, f in feats.items()}

    @property
    def features(self) -> dict[str, PolicyFeature]:
        """Common features (present in every source), vectors at their padded width."""
        if self._features is None:
            per = [self._source_features(i) for i in range(len(self.sources))]
            common = [k for k in per[0] if all(k in p for p in per[1:])]
            dropped = sorted({k for p in per for k in p} - set(common))
            if dropped:
                log.info("features not in every dataset, dropped: %s", dropped)
            out: dict[str, PolicyFeature] = {}
            for key in common:
                types = {p[key].type for p in per}
                if len(types) > 1:
                    raise ValueError(f"feature '{key}' has different types across datasets: {sorted(t.value for t in types)}")
                ftype = types.pop()
                shapes = [p[key].shape for p in per]
                if ftype in PADDED_TYPES and all(len(s) == 1 for s in shapes):
                    width = max(s[0] for s in shapes)
                    if key in self.pad_to:
                        if self.pad_to[key] < width:
                            raise ValueError(f"pad_to['{key}'] = {self.pad_to[key]} is narrower than a dataset ({width})")
                        width = self.pad_to[key]
                    out[key] = PolicyFeature(ftype, (width,))
                elif len(set(shapes)) > 1:
                    raise ValueError(f"feature '{key}' has different shapes across datasets: {shapes} (only vector "
                                     f"state/action/environment features are padded)")
                else:
                    out[key] = PolicyFeature(ftype, shapes[0])
            self._features = out
        return self._features

    @property
    def widths(self) -> dict[str, int]:
        """``{key: padded width}`` of the padded vector features."""
        return {k: f.shape[0] for k, f in self.features.items() if f.type in PADDED_TYPES and len(f.shape) == 1}

    def _dims(self, i: int) -> dict[str, int]:
        per = self._source_features(i)
        return {k: per[k].shape[0] for k in self.widths}

    @property
    def frame_counts(self) -> list[int]:
        """Frames per source (``meta.total_frames``)."""
        return [int(s.meta.total_frames) for s in self.sources]

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Statistics merged over the sources, weighted by frames (:func:`merge_stats`)."""
        keep = set(self.features)
        per = []
        for i, src in enumerate(self.sources):
            renamed = {self.renames[i].get(k, k): v for k, v in src.stats.items()}
            per.append({k: v for k, v in renamed.items() if k in keep})
        return merge_stats(per, self.frame_counts, self.widths)

    @property
    def fps(self) -> int:
        """The first source's fps (windows are converted to seconds per source with its own fps)."""
        return self.sources[0].fps

    # ------------------------------------------------------------------ windows and data
    def set_delta_indices(self, delta_indices: Mapping[str, Sequence[int] | None]) -> None:
        """Integer frame offsets per common key; each source converts them with its own fps.

        Raises:
            KeyError: a key no source maps to (from the source's :meth:`LeRobotDataModule.set_delta_indices`).
        """
        for i, src in enumerate(self.sources):
            inverse = {v: k for k, v in self.renames[i].items()}
            src.set_delta_indices({inverse.get(k, k): v for k, v in delta_indices.items()})
        self.train_dataset = self.val_dataset = None

    def _mapped(self, train: bool) -> list[_MappedDataset]:
        keep, widths, out = set(self.features), self.widths, []
        for i, src in enumerate(self.sources):
            videos = list(src.meta.video_keys)
            if videos and not any(self.renames[i].get(k, k) in keep for k in videos):
                src.dataset_kwargs.setdefault("download_videos", False)  # no common camera: never open the mp4s
            src.setup("fit")
            ds = src.train_dataset if train else src.val_dataset
            if ds is not None:
                out.append(_MappedDataset(ds, self.renames[i], keep, widths, self._dims(i), i))
        return out

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        self._train_parts = self._mapped(train=True)
        self.train_dataset = ConcatDataset(self._train_parts)
        val = self._mapped(train=False)
        self.val_dataset = ConcatDataset(val) if val else None

    def sample_weights(self) -> torch.Tensor:
        """Per-item sampling weights of the training set, ``weight_d / len_d`` (``(N_train,)`` float64)."""
        if self.train_dataset is None:
            self.setup("fit")
        parts = []
        for part in self._train_parts:
            w = self.weights[part.dataset_index]
            w = float(len(part)) if w is None else float(w)
            parts.append(torch.full((len(part),), w / max(len(part), 1), dtype=torch.float64))
        return torch.cat(parts)

    def _loader_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"batch_size": self.batch_size, "num_workers": self.num_workers,
                                  "pin_memory": self.pin_memory}
        if self.num_workers > 0:
            kwargs["persistent_workers"] = self.persistent_workers
        return kwargs

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            self.setup("fit")
        n = self.samples_per_epoch or len(self.train_dataset)
        sampler = WeightedRandomSampler(self.sample_weights(), num_samples=n, replacement=True,
                                        generator=torch.Generator().manual_seed(self.seed))
        dataset = self.train_dataset
        if self.augment is not None:
            cameras = [k for k, f in self.features.items() if f.type is FeatureType.VISUAL]
            dataset = AugmentedDataset(dataset, self.augment, cameras, self.seed)
            sampler = EpochCountingSampler(sampler)
        return DataLoader(dataset, sampler=sampler, drop_last=self.drop_last and n >= self.batch_size,
                          **self._loader_kwargs())

    def val_dataloader(self):
        if self.train_dataset is None:
            self.setup("fit")
        if self.val_dataset is None:
            return []
        return DataLoader(self.val_dataset, shuffle=False, **self._loader_kwargs())
