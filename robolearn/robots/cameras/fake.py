"""A synthetic camera for tests and dry runs: deterministic frames, no device, no thread."""

from __future__ import annotations

import time

import numpy as np

from robolearn.robots.cameras.camera import Camera


class FakeCamera(Camera):
    """Frame ``k`` (0-based, counted per delivered frame) is ``uint8 (height, width, 3)`` with
    ``pixel[y, x, c] = (x + 2*y + 50*c + 7*k) % 256``, so tests can compute any frame exactly.

    Args:
        width, height: frame size in pixels.
        fps: nominal frame rate (reported only; frames are produced on demand).
        stop_after: deliver this many frames, then behave like a stalled camera (``None``: never stop).
        name: used in error messages.
    """

    def __init__(self, width: int = 64, height: int = 48, fps: int = 30, stop_after: int | None = None, name: str | None = None) -> None:
        super().__init__(name)
        if width <= 0 or height <= 0:
            raise ValueError(f"FakeCamera {name!r}: width and height must be positive, got {width}x{height}")
        self._width, self._height, self.fps = int(width), int(height), int(fps)
        self.stop_after = stop_after
        self.frames_delivered = 0
        self._connected = False

    @property
    def height(self) -> int:
        return self._height

    @property
    def width(self) -> int:
        return self._width

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True

    def stop(self) -> None:
        """Stop delivering frames from now on (``async_read`` then times out)."""
        self.stop_after = self.frames_delivered

    def frame(self, k: int) -> np.ndarray:
        """Frame number ``k`` as defined in the class docstring."""
        y, x, c = np.meshgrid(np.arange(self._height), np.arange(self._width), np.arange(3), indexing="ij")
        return ((x + 2 * y + 50 * c + 7 * k) % 256).astype(np.uint8)

    def async_read(self, timeout_ms: float = 200.0) -> np.ndarray:
        if not self._connected:
            raise ConnectionError(f"camera {self.name!r} (FakeCamera) is not connected")
        if self.stop_after is not None and self.frames_delivered >= self.stop_after:
            time.sleep(timeout_ms / 1000.0)
            raise TimeoutError(f"camera {self.name!r} (FakeCamera) delivered no new frame within {timeout_ms:.0f} ms "
                               f"(stopped after {self.stop_after} frames)")
        out = self.frame(self.frames_delivered)
        self.frames_delivered += 1
        return out

    def disconnect(self) -> None:
        self._connected = False

    def __repr__(self) -> str:
        return f"FakeCamera(name={self.name!r}, {self._width}x{self._height})"
