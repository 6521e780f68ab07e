"""Observation conversions on both sides of the async inference link.

Client side, :func:`robot_to_wire`: a robot's dict (``{"shoulder_pan.pos": 12.5, ..., "front": uint8 (H, W, 3)}``)
becomes dataset keys with ``robolearn.robots.features``: ``observation.state`` float32 ``(D,)`` and
``observation.images.<cam>`` kept as uint8 ``(H, W, 3)`` (4x smaller on the wire than float32).

Server side, :func:`wire_to_policy`: those single frames become what a policy's ``select_action`` takes
(``docs/architecture.md``): states float32 ``(1, D)``, cameras float32 ``(1, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from robolearn.features import FeatureType, PolicyFeature
from robolearn.robots.features import build_dataset_frame


def robot_to_wire(values: Mapping[str, Any], ds_features: Mapping[str, Mapping[str, Any]]) -> dict[str, Tensor]:
    """Robot observation -> ``{dataset key: tensor}`` (state float32 ``(D,)``, cameras uint8 ``(H, W, 3)``).

    Args:
        values: ``robot.get_observation()``.
        ds_features: ``hw_to_dataset_features(robot.observation_features, "observation")``.
    Raises:
        KeyError: a robot key needed by a feature is missing (from ``build_dataset_frame``).
    """
    frame = build_dataset_frame(ds_features, values, "observation")
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in frame.items()}


def wire_to_policy(observation: Mapping[str, Any], input_features: Mapping[str, PolicyFeature]) -> dict[str, Tensor]:
    """Wire observation -> a batch of one frame for ``select_action`` / ``predict_action_chunk``.

    Cameras may arrive as uint8 ``(H, W, 3)`` (scaled by 1/255 and made channel-first) or float ``(3, H, W)``
    in [0, 1]; other features as ``(D,)`` numbers. Keys the policy does not use are ignored.

    Raises:
        KeyError: a policy input is missing (naming it and the keys received).
        ValueError: a value is not a tensor or has the wrong shape (naming key, shape received and expected).
    """
    out: dict[str, Tensor] = {}
    for key, feat in input_features.items():
        if key not in observation:
            raise KeyError(f"observation lacks '{key}' needed by the policy; received {sorted(observation)}")
        value = observation[key]
        if not isinstance(value, Tensor):
            raise ValueError(f"observation '{key}' must be a tensor, got {type(value).__name__}")
        if feat.type is FeatureType.VISUAL:
            c, h, w = feat.shape
            if value.dtype == torch.uint8 and tuple(value.shape) == (h, w, c):
                value = value.permute(2, 0, 1).float().div_(255.0)
            elif value.is_floating_point() and tuple(value.shape) == (c, h, w):
                value = value.float()
            else:
                raise ValueError(f"camera '{key}' must be uint8 {(h, w, c)} or float {(c, h, w)}, got "
                                 f"{value.dtype} {tuple(value.shape)}")
        else:
            if tuple(value.shape) != tuple(feat.shape):
                raise ValueError(f"'{key}' has shape {tuple(value.shape)}, the policy expects {tuple(feat.shape)}")
            value = value.float()
        out[key] = value.unsqueeze(0)
    return out
