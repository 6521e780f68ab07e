"""Simulation environments used to generate demonstrations and to evaluate policies."""

from robolearn.envs.so101 import (
    ACTION_NAMES,
    CAMERAS,
    ENV_STATE_NAMES,
    STATE_NAMES,
    TASK,
    CameraView,
    SO101PickPlaceSim,
)

__all__ = [
    "ACTION_NAMES",
    "CAMERAS",
    "ENV_STATE_NAMES",
    "STATE_NAMES",
    "TASK",
    "CameraView",
    "SO101PickPlaceSim",
]
