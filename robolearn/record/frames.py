"""Dataset features and frames of a robot (+ teleoperator) for recording, with the checks ``record.py`` needs.

Real arms use :func:`robolearn.robots.features.hw_to_dataset_features` (all scalars in ``observation.state``);
simulated robots describe their own layout (``dataset_features``), which adds ``observation.environment_state``
and the transition's ``next.*`` columns.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from robolearn.features import ACTION, OBS_IMAGES
from robolearn.robots.features import build_dataset_frame, hw_to_dataset_features


def robot_dataset_features(robot: Any, use_video: bool = True) -> dict[str, dict]:
    """The lerobot features recorded from ``robot`` (observation, action and, for sims, ``next.*``)."""
    if callable(getattr(robot, "dataset_features", None)):
        return robot.dataset_features(use_video)
    feats = hw_to_dataset_features(robot.observation_features, "observation", use_video)
    feats.update(hw_to_dataset_features(robot.action_features, "action"))
    return feats


def check_teleop_matches(teleop: Any, robot: Any) -> None:
    """Raise ``ValueError`` listing both key lists when the teleoperator's action keys differ from the robot's."""
    t, r = list(teleop.action_features), list(robot.action_features)
    if set(t) != set(r):
        raise ValueError(f"teleoperator {type(teleop).__name__} action keys {t} do not match robot "
                         f"{type(robot).__name__} action keys {r} (missing: {sorted(set(r) - set(t))}, "
                         f"unexpected: {sorted(set(t) - set(r))})")


def make_frame(features: Mapping[str, Mapping[str, Any]], observation: Mapping[str, Any],
               action: Mapping[str, Any], task: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One writer frame: the observation features, ``action``, ``extra`` values (e.g. ``next.*``) and ``task``.

    Raises:
        KeyError: a robot key a dataset feature needs is missing (names both).
    """
    frame = build_dataset_frame(features, observation, "observation")
    frame.update(build_dataset_frame(features, action, ACTION))
    for key in features:
        if extra and key in extra:
            frame[key] = extra[key]
    frame["task"] = task
    return frame


def observation_to_batch(features: Mapping[str, Mapping[str, Any]], observation: Mapping[str, Any],
                         keys: list[str] | None = None, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A policy input batch (``B = 1``) from a robot observation.

    Vectors become float32 ``(1, D)``; cameras uint8 ``(H, W, 3)`` become float32 ``(1, 3, H, W)`` in [0, 1].

    Args:
        features: the dataset features of the robot (:func:`robot_dataset_features`).
        observation: ``robot.get_observation()``.
        keys: only these dataset keys (e.g. the policy's input features); None: all observation features.
    """
    frame = build_dataset_frame(features, observation, "observation")
    batch: dict[str, torch.Tensor] = {}
    for key, value in frame.items():
        if keys is not None and key not in keys:
            continue
        if key.startswith(OBS_IMAGES + "."):
            img = torch.from_numpy(np.ascontiguousarray(value)).permute(2, 0, 1).float().div_(255.0)
            batch[key] = img.unsqueeze(0).to(device)
        else:
            batch[key] = torch.as_tensor(np.asarray(value, np.float32)).reshape(1, -1).to(device)
    return batch
