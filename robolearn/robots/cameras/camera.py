"""The ``Camera`` interface and construction of cameras from configs.

A camera delivers ``uint8`` RGB (or BGR) frames shaped ``(height, width, 3)`` (after rotation). ``async_read``
returns the newest frame captured by a background reader, waiting at most ``timeout_ms`` for a new one.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping

import numpy as np


class Camera(abc.ABC):
    """Abstract camera.

    Args:
        name: used in error messages (set to the robot's camera key by :func:`make_cameras`).
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    @property
    @abc.abstractmethod
    def height(self) -> int:
        """Height of delivered frames in pixels (after rotation)."""

    @property
    @abc.abstractmethod
    def width(self) -> int:
        """Width of delivered frames in pixels (after rotation)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(height, width, 3)``, the robot's ``observation_features`` entry for this camera."""
        return (self.height, self.width, 3)

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool:
        """Whether :meth:`connect` succeeded and :meth:`disconnect` was not called."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device and start delivering frames. Raises ``ConnectionError`` naming the camera."""

    @abc.abstractmethod
    def async_read(self, timeout_ms: float = 200.0) -> np.ndarray:
        """Newest frame ``uint8 (H, W, 3)``; waits up to ``timeout_ms`` for one not returned before.

        Raises:
            TimeoutError: naming the camera when no new frame came in time.
        """

    def read(self) -> np.ndarray:
        """A new frame, waiting up to one second."""
        return self.async_read(timeout_ms=1000.0)

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Stop and release the device. Safe to call twice."""

    def __enter__(self) -> "Camera":
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()


CAMERA_TYPES = {
    "opencv": "robolearn.robots.cameras.opencv.OpenCVCamera",
    "fake": "robolearn.robots.cameras.fake.FakeCamera",
}


def make_camera(spec: Any, name: str | None = None) -> Camera:
    """Build a camera from a ``Camera`` instance, a config with ``_target_`` (Hydra), or a config with
    ``type: opencv|fake`` plus the camera's arguments (lerobot's style).

    Raises:
        ValueError: naming the camera when the config has neither ``_target_`` nor a known ``type``.
        TypeError: when ``spec`` is neither a camera nor a mapping.
    """
    if isinstance(spec, Camera):
        cam = spec
    else:
        try:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(spec, DictConfig):
                spec = OmegaConf.to_container(spec, resolve=True)
        except ImportError:  # pragma: no cover
            pass
        if not isinstance(spec, Mapping):
            raise TypeError(f"camera {name!r}: expected a Camera or a config mapping, got {type(spec).__name__}")
        spec = dict(spec)
        if "_target_" in spec:
            from hydra.utils import instantiate

            cam = instantiate(spec)
        else:
            kind = spec.pop("type", None)
            if kind not in CAMERA_TYPES:
                raise ValueError(f"camera {name!r}: config needs '_target_' or 'type' in {sorted(CAMERA_TYPES)}, got {kind!r}")
            from hydra.utils import get_class

            cam = get_class(CAMERA_TYPES[kind])(**spec)
        if not isinstance(cam, Camera):
            raise TypeError(f"camera {name!r}: config built a {type(cam).__name__}, not a Camera")
    if cam.name is None:
        cam.name = name
    return cam


def make_cameras(cameras: Mapping[str, Any] | None) -> dict[str, Camera]:
    """``{key: Camera}`` from ``{key: Camera | config}`` (see :func:`make_camera`); ``None`` gives ``{}``."""
    return {str(k): make_camera(v, str(k)) for k, v in (cameras or {}).items()}
