"""Feature normalization held inside the policy, with its statistics saved as buffers.

The arithmetic is lerobot's (``NormalizerProcessorStep``, eps = 1e-8) so that checkpoints and fixtures agree:

- ``MEAN_STD``: ``(x - mean) / (std + eps)``; inverse ``x * std + mean`` (no eps in the inverse).
- ``MIN_MAX``: ``2 * (x - min) / (max - min) - 1`` maps ``[min, max]`` to ``[-1, 1]``; a zero range is
  replaced by ``eps``; inverse ``(x + 1) / 2 * (max - min) + min``.
- ``IDENTITY``: unchanged.
- ``QUANTILES`` (π0.5): ``2 * (x - q01) / (q99 - q01) - 1`` maps ``[q01, q99]`` to ``[-1, 1]`` (values outside are
  not clipped); a zero range is replaced by ``eps``; inverse ``(x + 1) / 2 * (q99 - q01) + q01``.

Unlike lerobot, a normalized feature whose statistics are missing raises ``KeyError`` naming the feature and
the statistic; nothing is passed through silently. Camera statistics are shaped ``(C, 1, 1)`` and broadcast
over ``(..., C, H, W)``; a camera statistic given as ``(C,)`` is reshaped to ``(C, 1, 1)``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from robolearn.features import FeatureType, NormalizationMode, PolicyFeature

EPS = 1e-8

# ImageNet channel statistics (RGB, values in [0, 1]), used when ``use_imagenet_stats`` is set.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


QUANTILES = NormalizationMode.QUANTILES

_STATS_FOR_MODE = {
    NormalizationMode.MEAN_STD: ("mean", "std"),
    NormalizationMode.MIN_MAX: ("min", "max"),
    NormalizationMode.IDENTITY: (),
    QUANTILES: ("q01", "q99"),
}


def _buffer_name(key: str) -> str:
    """Module names cannot contain dots: ``observation.images.top`` -> ``observation_images_top``."""
    return key.replace(".", "_")


def _stat_shape(feature: PolicyFeature) -> tuple[int, ...]:
    if feature.type is FeatureType.VISUAL:
        return (feature.shape[0], 1, 1)
    return tuple(feature.shape)


def coerce_norm_map(norm_map: Mapping[Any, Any]) -> dict[FeatureType, NormalizationMode]:
    """Turn ``{"VISUAL": "MEAN_STD", ...}`` (strings, enums or a DictConfig) into enum keys and values.

    Raises ``ValueError`` for an unknown type or mode name.
    """
    return {FeatureType(getattr(k, "value", k)): NormalizationMode(getattr(v, "value", v)) for k, v in norm_map.items()}


class _FeatureStats(nn.Module):
    """Holds one feature's statistics as buffers (``mean``/``std`` or ``min``/``max``)."""

    def __init__(self, names: tuple[str, ...], values: Mapping[str, Tensor]):
        super().__init__()
        for name in names:
            self.register_buffer(name, values[name])


class Normalizer(nn.Module):
    """Normalizes policy inputs/targets and unnormalizes outputs, per feature, with stats as buffers.

    Args:
        features: ``{key: PolicyFeature}`` of every input and output the policy uses.
        stats: ``{key: {"mean", "std", "min", "max", ...: array}}`` as in ``meta/stats.json`` (numpy arrays,
            tensors or lists). ``None`` creates placeholder buffers filled with ``inf``; they must then be
            filled by ``load_state_dict`` (what ``load_from_checkpoint`` and ``load_policy`` do). Using a
            placeholder raises ``RuntimeError``.
        norm_map: ``{FeatureType: NormalizationMode}``; a feature type not in it is ``IDENTITY``.
        use_imagenet_stats: replace every ``VISUAL`` feature's ``mean``/``std`` with ImageNet's (for
            backbones pretrained on ImageNet).
        eps: added to ``std`` (MEAN_STD) and substituted for a zero ``max - min`` (MIN_MAX).

    Raises:
        KeyError: a feature normalized with MEAN_STD/MIN_MAX has no entry in ``stats``, or lacks a needed
            statistic; the message names the feature and the statistic.
        ValueError: a statistic's number of elements does not match the feature's shape.

    The buffers appear in the state dict as ``<prefix>.stats.<key with dots as underscores>.<stat>``.
    """

    def __init__(
        self,
        features: Mapping[str, PolicyFeature],
        stats: Mapping[str, Mapping[str, Any]] | None,
        norm_map: Mapping[Any, Any],
        use_imagenet_stats: bool = False,
        eps: float = EPS,
    ):
        super().__init__()
        self.features = dict(features)
        self.norm_map = coerce_norm_map(norm_map)
        self.eps = eps
        self.modes: dict[str, NormalizationMode] = {}
        self.stats = nn.ModuleDict()
        for key, feature in self.features.items():
            mode = self.norm_map.get(feature.type, NormalizationMode.IDENTITY)
            self.modes[key] = mode
            names = _STATS_FOR_MODE[mode]
            if not names:
                continue
            shape = _stat_shape(feature)
            values: dict[str, Tensor] = {}
            for name in names:
                if use_imagenet_stats and feature.type is FeatureType.VISUAL and name in ("mean", "std"):
                    src = IMAGENET_MEAN if name == "mean" else IMAGENET_STD
                    values[name] = torch.tensor(src, dtype=torch.float32).reshape(3, 1, 1)
                    continue
                if stats is None:
                    values[name] = torch.full(shape, float("inf"), dtype=torch.float32)
                    continue
                if key not in stats:
                    raise KeyError(
                        f"no statistics for feature '{key}' ({feature.type.value}, normalized with {mode.value}): "
                        f"stats has keys {sorted(stats)}; needed stat '{name}'"
                    )
                if name not in stats[key]:
                    raise KeyError(
                        f"statistic '{name}' missing for feature '{key}' (normalized with {mode.value}); "
                        f"available: {sorted(stats[key])}"
                    )
                t = torch.as_tensor(np.asarray(stats[key][name], dtype=np.float32))
                if t.numel() != int(np.prod(shape)):
                    raise ValueError(
                        f"statistic '{name}' of feature '{key}' has shape {tuple(t.shape)}, "
                        f"expected {shape} for a feature of shape {feature.shape}"
                    )
                values[name] = t.reshape(shape).clone()
            self.stats[_buffer_name(key)] = _FeatureStats(names, values)

    # ------------------------------------------------------------------ per tensor
    def _get(self, key: str, name: str) -> Tensor:
        t = getattr(self.stats[_buffer_name(key)], name)
        if torch.isinf(t).any():
            raise RuntimeError(
                f"statistic '{name}' of feature '{key}' was never set (placeholder inf): build the policy with "
                "`stats=` or load a state dict that contains the normalizer buffers"
            )
        return t

    def _range(self, key: str, mode: Any) -> tuple[Tensor, Tensor]:
        """``(low, high)`` statistics of a range mode: ``(min, max)`` for MIN_MAX, ``(q01, q99)`` for QUANTILES."""
        low, high = _STATS_FOR_MODE[mode]
        return self._get(key, low), self._get(key, high)

    def normalize_tensor(self, key: str, x: Tensor) -> Tensor:
        """Normalize ``x`` (``(..., *feature.shape)``, cameras ``(..., C, H, W)``) of feature ``key``."""
        mode = self.modes[key]
        if mode is NormalizationMode.IDENTITY:
            return x
        if mode is NormalizationMode.MEAN_STD:
            mean, std = self._get(key, "mean"), self._get(key, "std")
            return (x - mean) / (std + self.eps)
        lo, hi = self._range(key, mode)
        rng = hi - lo
        rng = torch.where(rng == 0, torch.full_like(rng, self.eps), rng)
        return 2 * (x - lo) / rng - 1

    def unnormalize_tensor(self, key: str, x: Tensor) -> Tensor:
        """Inverse of :meth:`normalize_tensor` (MEAN_STD multiplies by ``std`` without eps, as lerobot)."""
        mode = self.modes[key]
        if mode is NormalizationMode.IDENTITY:
            return x
        if mode is NormalizationMode.MEAN_STD:
            return x * self._get(key, "std") + self._get(key, "mean")
        lo, hi = self._range(key, mode)
        rng = hi - lo
        rng = torch.where(rng == 0, torch.full_like(rng, self.eps), rng)
        return (x + 1) / 2 * rng + lo

    # ------------------------------------------------------------------ per batch
    def normalize(self, batch: Mapping[str, Any], keys: list[str] | None = None) -> dict[str, Any]:
        """Return a shallow copy of ``batch`` with every feature key present in it normalized.

        ``keys`` restricts which features are touched (default: all of ``features``). Keys that are not
        features (``*_is_pad``, ``index``, ``task``, ...) pass through unchanged.
        """
        out = dict(batch)
        for key in self.features if keys is None else keys:
            if key in out:
                out[key] = self.normalize_tensor(key, out[key])
        return out

    def unnormalize(self, batch: Mapping[str, Any], keys: list[str] | None = None) -> dict[str, Any]:
        """Inverse of :meth:`normalize` on a batch dict."""
        out = dict(batch)
        for key in self.features if keys is None else keys:
            if key in out:
                out[key] = self.unnormalize_tensor(key, out[key])
        return out

    def stats_dict(self) -> dict[str, dict[str, list]]:
        """The stored statistics as nested lists, ``{key: {stat: list}}`` (for ``stats.json``)."""
        out: dict[str, dict[str, list]] = {}
        for key in self.features:
            name = _buffer_name(key)
            if name in self.stats:
                out[key] = {n: b.detach().cpu().tolist() for n, b in self.stats[name].named_buffers()}
        return out
