"""Conversions between a robot's flat dictionaries and LeRobotDataset features/frames.

A robot reports ``{"shoulder_pan.pos": 12.5, ..., "front": uint8 (H, W, 3)}``. A dataset stores one vector
``observation.state`` (float32, ``names`` = the scalar keys in order), one ``observation.images.<camera>``
per camera (``video`` or ``image`` dtype, shape ``(H, W, 3)``, names ``[height, width, channels]``) and one
``action`` vector. These names and layouts are lerobot's, so datasets recorded here train in either project.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from robolearn.features import ACTION, OBS_IMAGES, OBS_STATE


def _is_camera(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 3


def hw_to_dataset_features(hw_features: Mapping[str, Any], prefix: str, use_video: bool = True) -> dict[str, dict]:
    """Dataset features for a robot's ``observation_features`` (``prefix="observation"``) or
    ``action_features`` (``prefix="action"``).

    Args:
        hw_features: ``{key: float}`` scalars and ``{camera: (H, W, 3)}`` cameras, in order.
        prefix: ``"observation"`` or ``"action"``.
        use_video: store cameras as ``video`` (MP4) rather than ``image`` (PNG in parquet).
    Returns:
        lerobot feature specs, e.g. ``{"observation.state": {"dtype": "float32", "shape": [6], "names": [...]}}``.
    Raises:
        ValueError: for a prefix other than ``observation``/``action`` or a camera in ``action_features``.
    """
    if prefix not in ("observation", ACTION):
        raise ValueError(f"prefix must be 'observation' or 'action', got {prefix!r}")
    scalars = [k for k, v in hw_features.items() if not _is_camera(v)]
    cameras = {k: v for k, v in hw_features.items() if _is_camera(v)}
    out: dict[str, dict] = {}
    if scalars:
        key = OBS_STATE if prefix == "observation" else ACTION
        out[key] = {"dtype": "float32", "shape": [len(scalars)], "names": list(scalars)}
    if cameras and prefix == ACTION:
        raise ValueError(f"action features cannot contain cameras: {sorted(cameras)}")
    for cam, shape in cameras.items():
        out[f"{OBS_IMAGES}.{cam}"] = {
            "dtype": "video" if use_video else "image",
            "shape": [int(s) for s in shape],
            "names": ["height", "width", "channels"],
        }
    return out


def build_dataset_frame(ds_features: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Pick the entries of ``values`` (a robot observation or action dict) that make up the dataset
    features starting with ``prefix``: vectors are stacked in the feature's ``names`` order, cameras copied.

    Raises:
        KeyError: naming the missing robot key and the dataset feature that needs it.
    """
    frame: dict[str, Any] = {}
    for key, spec in ds_features.items():
        if not key.startswith(prefix):
            continue
        if spec["dtype"] in ("video", "image"):
            cam = key[len(OBS_IMAGES) + 1:]
            if cam not in values:
                raise KeyError(f"camera '{cam}' needed by dataset feature '{key}' is missing from the robot's values")
            frame[key] = values[cam]
        elif spec["dtype"] == "float32" and spec.get("names"):
            missing = [n for n in spec["names"] if n not in values]
            if missing:
                raise KeyError(f"dataset feature '{key}' needs {missing}, missing from the robot's values")
            frame[key] = np.asarray([values[n] for n in spec["names"]], dtype=np.float32)
    return frame


def vector_to_action(action: Any, names: list[str]) -> dict[str, float]:
    """Inverse of :func:`build_dataset_frame` for ``action``: a ``(A,)`` vector to ``{name: float}``.

    Raises:
        ValueError: when the vector length differs from ``len(names)``.
    """
    arr = np.asarray(action, dtype=np.float32).reshape(-1)
    if arr.shape[0] != len(names):
        raise ValueError(f"action vector has {arr.shape[0]} values, the robot expects {len(names)}: {names}")
    return {n: float(v) for n, v in zip(names, arr)}
