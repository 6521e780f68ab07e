"""Policy-facing feature descriptions derived from a LeRobotDataset's ``meta/info.json``.

A dataset describes its columns with lerobot's feature schema
(``{"dtype": "video", "shape": [H, W, C], "names": [...]}``). Policies only need to know, for each key
they consume or produce, its role and its tensor shape as it reaches the model. ``PolicyFeature`` carries
exactly that, with camera shapes always channel-first ``(C, H, W)``.

Key conventions follow lerobot: ``observation.state``, ``observation.environment_state``,
``observation.image`` / ``observation.images.<cam>``, ``action``, ``next.reward``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

ACTION = "action"
OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
OBS_IMAGE = "observation.image"
OBS_IMAGES = "observation.images"
REWARD = "next.reward"

# Columns every LeRobotDataset has and that are bookkeeping, not model inputs.
DEFAULT_FEATURE_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class FeatureType(str, Enum):
    """Role of a feature, as in lerobot's ``FeatureType``; normalization modes are chosen per role."""

    VISUAL = "VISUAL"
    STATE = "STATE"
    ENV = "ENV"
    ACTION = "ACTION"
    REWARD = "REWARD"


class NormalizationMode(str, Enum):
    """How a feature is normalized before it reaches the model (lerobot's ``NormalizationMode``).

    - ``MEAN_STD``: ``(x - mean) / (std + 1e-8)``
    - ``MIN_MAX``: ``2 * (x - min) / (max - min) - 1`` (to [-1, 1])
    - ``IDENTITY``: unchanged
    - ``QUANTILES`` (π0.5): ``2 * (x - q01) / (q99 - q01) - 1`` (``[q01, q99]`` to [-1, 1], not clipped)
    """

    MEAN_STD = "MEAN_STD"
    MIN_MAX = "MIN_MAX"
    IDENTITY = "IDENTITY"
    QUANTILES = "QUANTILES"


@dataclass(frozen=True)
class PolicyFeature:
    """One model input or output: its role and its per-frame shape (cameras as ``(C, H, W)``)."""

    type: FeatureType
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type.value, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolicyFeature":
        return cls(type=FeatureType(d["type"]), shape=tuple(int(s) for s in d["shape"]))


def is_camera(spec: Mapping[str, Any]) -> bool:
    return spec.get("dtype") in ("video", "image")


def camera_shape_chw(key: str, spec: Mapping[str, Any]) -> tuple[int, int, int]:
    """Return a camera feature's shape as ``(C, H, W)``.

    lerobot writes ``(H, W, C)`` with names ``[height, width, channels]``; older datasets use
    ``(C, H, W)`` with names ``[channel(s), height, width]``. Both are accepted.

    Raises:
        ValueError: if the shape is not 3-D or the channel axis cannot be identified.
    """
    shape = tuple(int(s) for s in spec["shape"])
    if len(shape) != 3:
        raise ValueError(f"camera feature '{key}' must have a 3-D shape, got {list(shape)}")
    names = spec.get("names")
    if isinstance(names, (list, tuple)) and len(names) == 3 and all(isinstance(n, str) for n in names):
        first = names[0].lower()
        if first.startswith("channel"):
            return shape  # already (C, H, W)
        if names[2].lower().startswith("channel"):
            return (shape[2], shape[0], shape[1])
    # No usable names: channels are the small axis (1, 3 or 4).
    if shape[2] in (1, 3, 4) and shape[0] not in (1, 3, 4):
        return (shape[2], shape[0], shape[1])
    if shape[0] in (1, 3, 4):
        return shape
    raise ValueError(f"cannot tell the channel axis of camera feature '{key}' with shape {list(shape)}")


def dataset_to_policy_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, PolicyFeature]:
    """Map a dataset's ``info.json`` features to :class:`PolicyFeature` by lerobot's key conventions.

    - ``video`` / ``image`` dtypes → ``VISUAL`` with shape ``(C, H, W)``
    - ``action`` → ``ACTION``; ``next.reward`` → ``REWARD``
    - ``observation.environment_state`` → ``ENV``; any other ``observation.*`` numeric key → ``STATE``
    - the 5 default columns, strings and other keys are not policy features.
    """
    out: dict[str, PolicyFeature] = {}
    for key, spec in features.items():
        if key in DEFAULT_FEATURE_KEYS:
            continue
        dtype = spec.get("dtype")
        if is_camera(spec):
            out[key] = PolicyFeature(FeatureType.VISUAL, camera_shape_chw(key, spec))
        elif dtype in ("string", "language"):
            continue
        elif key == ACTION:
            out[key] = PolicyFeature(FeatureType.ACTION, tuple(int(s) for s in spec["shape"]))
        elif key == REWARD:
            out[key] = PolicyFeature(FeatureType.REWARD, tuple(int(s) for s in spec["shape"]))
        elif key == OBS_ENV_STATE:
            out[key] = PolicyFeature(FeatureType.ENV, tuple(int(s) for s in spec["shape"]))
        elif key.startswith("observation."):
            out[key] = PolicyFeature(FeatureType.STATE, tuple(int(s) for s in spec["shape"]))
    return out
