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

from robolearn.envs.factory import EnvSpec, make_gym, make_vec_env

__all__ = [
    "EnvSpec",
    "make_gym",
    "make_vec_env",
    "ACTION_NAMES",
    "CAMERAS",
    "ENV_STATE_NAMES",
    "STATE_NAMES",
    "TASK",
    "CameraView",
    "SO101PickPlaceSim",
]
