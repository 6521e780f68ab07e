"""Per-episode feature statistics and their aggregation, in the layout of lerobot's ``meta/stats.json``.

A stats dict is ``{feature_key: {stat_name: np.ndarray}}`` with stat names ``min, max, mean, std, count`` and
the quantiles ``q01, q10, q50, q90, q99``:

- vector feature of dim ``D``: every stat has shape ``(D,)``; scalar features (shape ``(1,)``) give ``(1,)``;
- camera features (``image``/``video``): shape ``(C, 1, 1)`` per channel, values in [0, 1] (pixels / 255),
  computed on a sample of the episode's frames (see :func:`sample_indices`);
- ``count``: always ``(1,)`` int64 (frames, or sampled frames for cameras);
- ``string``/``language`` features have no stats.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from robolearn.datasets.constants import DEFAULT_QUANTILES, QUANTILE_KEYS

STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)
_NO_STATS_DTYPES = ("string", "language")


def estimate_num_samples(dataset_len: int, min_num_samples: int = 100, max_num_samples: int = 10_000,
                         power: float = 0.75) -> int:
    """How many frames of an episode to use for camera stats (lerobot's heuristic).

    All frames when ``dataset_len < min_num_samples``; otherwise ``dataset_len ** power`` clamped to
    ``[min_num_samples, max_num_samples]``.
    """
    if dataset_len < min_num_samples:
        return int(dataset_len)
    return int(max(min_num_samples, min(int(dataset_len**power), max_num_samples)))


def sample_indices(data_len: int) -> np.ndarray:
    """Evenly spaced frame indices (int64) over ``[0, data_len - 1]``; ``estimate_num_samples(data_len)`` of them."""
    n = estimate_num_samples(data_len)
    return np.round(np.linspace(0, data_len - 1, n)).astype(np.int64)


def auto_downsample_height_width(img: np.ndarray, target_size: int = 150, max_size_threshold: int = 300) -> np.ndarray:
    """Subsample a ``(C, H, W)`` image by an integer stride to about ``target_size`` px on its larger side,
    when that side is ``>= max_size_threshold`` px; smaller images are returned unchanged."""
    _, h, w = img.shape
    if max(h, w) < max_size_threshold:
        return img
    factor = int(max(h, w) / target_size)
    return img[:, ::factor, ::factor]


def sample_images(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Pick the stats sample from an episode's camera frames.

    Args:
        frames: ``T`` frames, each uint8 ``(H, W, C)`` (channel-last, as the writer buffers them).

    Returns:
        uint8 array ``(S, C, H', W')`` of the sampled, possibly downsampled frames
        (``S = estimate_num_samples(T)``).
    """
    idx = sample_indices(len(frames))
    out = [auto_downsample_height_width(np.transpose(np.asarray(frames[int(i)]), (2, 0, 1))) for i in idx]
    return np.stack(out)


def get_feature_stats(array: np.ndarray, axis: int | tuple[int, ...], keepdims: bool) -> dict[str, np.ndarray]:
    """min/max/mean/std/count and quantiles of ``array`` reduced over ``axis`` (computed in float64).

    Quantiles are exact (``np.quantile``, linear interpolation); with fewer than 2 samples every quantile is
    set to the mean (as lerobot does). ``count`` is ``[array.shape[0]]``.
    """
    x = np.asarray(array, dtype=np.float64)
    stats: dict[str, np.ndarray] = {
        "min": np.min(x, axis=axis, keepdims=keepdims),
        "max": np.max(x, axis=axis, keepdims=keepdims),
        "mean": np.mean(x, axis=axis, keepdims=keepdims),
        "std": np.std(x, axis=axis, keepdims=keepdims),
        "count": np.array([x.shape[0]], dtype=np.int64),
    }
    if x.shape[0] < 2:
        for k in QUANTILE_KEYS:
            stats[k] = stats["mean"].copy()
    else:
        qs = np.quantile(x, DEFAULT_QUANTILES, axis=axis, keepdims=keepdims)
        for k, q in zip(QUANTILE_KEYS, qs):
            stats[k] = q
    return stats


def compute_episode_stats(episode_data: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]]
                          ) -> dict[str, dict[str, np.ndarray]]:
    """Stats of one episode, for every feature in ``features`` present in ``episode_data``.

    Args:
        episode_data: ``{key: values}``. Numeric features: array ``(T,)`` or ``(T, D)`` (any numeric or bool
            dtype). Camera features (dtype ``image``/``video``): uint8 frames ``(T, H, W, C)`` (or a list of
            ``(H, W, C)`` arrays); a sample of them is used (:func:`sample_images`) and values are divided by 255.
        features: lerobot feature dicts (``{"dtype", "shape", "names"}``); string/language features are skipped.

    Returns:
        ``{key: {stat: np.ndarray}}`` with shapes ``(D,)`` (``(1,)`` for scalars) or ``(C, 1, 1)`` for cameras.

    Raises:
        ValueError: if a numeric feature has more than 2 dims or no frames.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, spec in features.items():
        dtype = spec.get("dtype")
        if dtype in _NO_STATS_DTYPES or key not in episode_data:
            continue
        values = episode_data[key]
        if dtype in ("image", "video"):
            imgs = sample_images(values).astype(np.float64) / 255.0  # (S, C, H, W)
            st = get_feature_stats(imgs, axis=(0, 2, 3), keepdims=True)
            out[key] = {k: (v if k == "count" else v[0]) for k, v in st.items()}  # -> (C, 1, 1)
            continue
        arr = np.asarray(values)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"stats of '{key}': expected (T,) or (T, D) with T > 0, got shape {tuple(arr.shape)}")
        out[key] = get_feature_stats(arr, axis=0, keepdims=False)
    return out


def aggregate_feature_stats(stats_ft_list: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine one feature's stats over episodes.

    - ``min`` = min of mins, ``max`` = max of maxs, ``count`` = sum of counts;
    - ``mean`` = count-weighted mean;
    - ``std`` = pooled: ``sqrt(sum(count * (var + (mean - global_mean)**2)) / sum(count))``;
    - quantiles ``q01..q99`` = **count-weighted mean of the per-episode quantiles**, as lerobot 0.4.0–0.6.1
      does (lerobot after 2026-08 switched to a min/max envelope; we keep the 0.6.1 rule). This is an
      approximation of the pooled quantile, exact only when episodes share a distribution.

    Raises:
        ValueError: on an empty list.
    """
    if not stats_ft_list:
        raise ValueError("aggregate_feature_stats needs at least one stats dict")
    counts = np.array([int(np.asarray(s["count"]).reshape(-1)[0]) for s in stats_ft_list], dtype=np.int64)
    total = int(counts.sum())
    means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in stats_ft_list])
    # Broadcast the weights over the stat's trailing dims: (N,) -> (N, 1, ..., 1).
    w = counts.reshape((-1,) + (1,) * (means.ndim - 1)).astype(np.float64)
    wsum = max(total, 1)
    mean = (means * w).sum(axis=0) / wsum
    variances = np.stack([np.asarray(s["std"], dtype=np.float64) ** 2 for s in stats_ft_list])
    var = ((variances + (means - mean) ** 2) * w).sum(axis=0) / wsum
    out: dict[str, np.ndarray] = {
        "min": np.min(np.stack([np.asarray(s["min"], dtype=np.float64) for s in stats_ft_list]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"], dtype=np.float64) for s in stats_ft_list]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([total], dtype=np.int64),
    }
    for q in QUANTILE_KEYS:
        if all(q in s for s in stats_ft_list):
            vals = np.stack([np.asarray(s[q], dtype=np.float64) for s in stats_ft_list])
            out[q] = (vals * w).sum(axis=0) / wsum
    return out


def aggregate_stats(stats_list: Sequence[Mapping[str, Mapping[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Aggregate a list of per-episode stats dicts (see :func:`aggregate_feature_stats` for the rules).

    A feature is aggregated over the episodes that have it. Feature order follows first appearance.
    Returns ``{}`` for an empty list.
    """
    keys: list[str] = []
    for s in stats_list:
        for k in s:
            if k not in keys:
                keys.append(k)
    return {k: aggregate_feature_stats([s[k] for s in stats_list if k in s]) for k in keys}


def stats_to_json(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Convert arrays to nested lists (the ``meta/stats.json`` form)."""
    return {k: {s: np.asarray(v).tolist() for s, v in ft.items()} for k, ft in stats.items()}


def stats_from_json(obj: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Inverse of :func:`stats_to_json` (values cast with ``np.atleast_1d``, ``count`` as int64)."""
    return {k: {s: np.atleast_1d(np.asarray(v, dtype=np.int64 if s == "count" else np.float64))
                for s, v in ft.items()} for k, ft in obj.items()}


def write_stats(stats: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> None:
    """Write ``stats.json`` (``json.dump(indent=4)``) atomically: temp file in the same folder + ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(stats_to_json(stats), f, indent=4)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
