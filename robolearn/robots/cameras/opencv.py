"""USB/V4L2 cameras through OpenCV, read in a background thread that keeps the newest frame.

Arguments follow lerobot's ``opencv`` camera config: ``index_or_path``, ``width``/``height``/``fps`` (asked of
the device and checked), ``color_mode`` (``rgb`` or ``bgr``), ``rotation`` (0, 90 clockwise, 180, −90) and
``warmup_s`` (seconds of frames discarded after opening, while exposure settles). ``width``/``height`` are the
capture size; with a ±90° rotation delivered frames are ``(width, height, 3)``.
"""

from __future__ import annotations

import glob
import logging
import platform
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robolearn.robots.cameras.camera import Camera

log = logging.getLogger(__name__)

ROTATIONS = (0, 90, 180, -90)


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - opencv is a project dependency
        raise ImportError("OpenCVCamera needs opencv: pip install opencv-python") from e
    return cv2


class OpenCVCamera(Camera):
    """An OpenCV camera with a background reader thread.

    Args:
        index_or_path: device index (``0``) or path (``/dev/video0``, a video file, a stream URL).
        width, height: capture size in pixels (``None``: the device's default).
        fps: capture frame rate (``None``: the device's default).
        color_mode: ``"rgb"`` (default, what datasets store) or ``"bgr"``.
        rotation: 0, 90 (clockwise), 180 or −90 (counter-clockwise) degrees; 270 means −90.
        warmup_s: seconds of frames read and dropped after connecting.
        fourcc: optional 4-letter codec asked of the device (e.g. ``"MJPG"``, for 30 fps at 1080p on USB 2).
        backend: OpenCV API preference (``cv2.CAP_*``), ``None`` for auto.
        name: used in error messages.
        capture_factory: ``(index_or_path, backend) -> capture`` with OpenCV's ``VideoCapture`` interface
            (``isOpened/read/set/get/release``); tests inject a fake one.
    Raises:
        ValueError: for a bad ``color_mode`` or ``rotation``.
    """

    def __init__(self, index_or_path: int | str | Path = 0, width: int | None = None, height: int | None = None,
                 fps: float | None = None, color_mode: str = "rgb", rotation: int = 0, warmup_s: float = 1.0,
                 fourcc: str | None = None, backend: int | None = None, name: str | None = None,
                 capture_factory: Callable[[Any, Any], Any] | None = None) -> None:
        super().__init__(name)
        color_mode = str(color_mode).lower()
        if color_mode not in ("rgb", "bgr"):
            raise ValueError(f"camera {name or index_or_path!r}: color_mode must be 'rgb' or 'bgr', got {color_mode!r}")
        rotation = -90 if int(rotation) == 270 else int(rotation)
        if rotation not in ROTATIONS:
            raise ValueError(f"camera {name or index_or_path!r}: rotation must be one of {ROTATIONS}, got {rotation}")
        if fourcc is not None and len(fourcc) != 4:
            raise ValueError(f"camera {name or index_or_path!r}: fourcc must have 4 characters, got {fourcc!r}")
        if isinstance(index_or_path, str) and index_or_path.isdigit():
            index_or_path = int(index_or_path)
        self.index_or_path = index_or_path
        self.capture_width, self.capture_height, self.fps = width, height, fps
        self.color_mode, self.rotation, self.warmup_s = color_mode, rotation, float(warmup_s)
        self.fourcc, self.backend = fourcc, backend
        self._factory = capture_factory
        self._cap = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._new_frame = threading.Event()
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._error: BaseException | None = None
        self.frames_read = 0

    def __repr__(self) -> str:
        return f"OpenCVCamera(name={self.name!r}, index_or_path={self.index_or_path!r})"

    # ---------------------------------------------------------------- geometry
    def _size(self) -> tuple[int, int]:
        if self.capture_width is None or self.capture_height is None:
            raise RuntimeError(f"camera {self.name!r} ({self.index_or_path!r}): width and height are unknown until "
                               "connect(); set them in the camera config")
        w, h = int(self.capture_width), int(self.capture_height)
        return (h, w) if self.rotation in (90, -90) else (w, h)

    @property
    def width(self) -> int:
        return self._size()[0]

    @property
    def height(self) -> int:
        return self._size()[1]

    @property
    def is_connected(self) -> bool:
        return self._cap is not None

    # ---------------------------------------------------------------- lifecycle
    def connect(self) -> None:
        """Open the device, apply and check width/height/fps, start the reader thread and warm up.

        Raises:
            ConnectionError: naming the camera when it cannot be opened or refuses the asked size/fps.
            TimeoutError: when no frame arrives during warm-up (at least one second).
        """
        if self.is_connected:
            raise ConnectionError(f"camera {self.name!r} ({self.index_or_path!r}) is already connected")
        cv2 = _cv2()
        if self._factory is not None:
            cap = self._factory(self.index_or_path, self.backend)
        else:
            target = str(self.index_or_path) if isinstance(self.index_or_path, Path) else self.index_or_path
            cap = cv2.VideoCapture(target) if self.backend is None else cv2.VideoCapture(target, self.backend)
        if not cap.isOpened():
            cap.release()
            raise ConnectionError(f"camera {self.name!r}: could not open {self.index_or_path!r} "
                                  "(`python record.py mode=find_cameras` lists the available cameras)")
        try:
            self._configure(cap, cv2)
        except BaseException:
            cap.release()
            raise
        self._cap = cap
        self._stop.clear()
        self._new_frame.clear()
        self._error = None
        self._thread = threading.Thread(target=self._read_loop, name=f"camera-{self.name or self.index_or_path}", daemon=True)
        self._thread.start()
        try:
            self.async_read(timeout_ms=max(1000.0, self.warmup_s * 1000.0 + 500.0))
            deadline = time.monotonic() + self.warmup_s
            while time.monotonic() < deadline:
                self.async_read(timeout_ms=1000.0)
        except BaseException:
            self.disconnect()
            raise

    def _configure(self, cap: Any, cv2: Any) -> None:
        if self.fourcc is not None:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        asked = {"width": (cv2.CAP_PROP_FRAME_WIDTH, self.capture_width),
                 "height": (cv2.CAP_PROP_FRAME_HEIGHT, self.capture_height),
                 "fps": (cv2.CAP_PROP_FPS, self.fps)}
        for prop, value in asked.values():
            if value is not None:
                cap.set(prop, float(value))
        actual = {k: cap.get(prop) for k, (prop, _) in asked.items()}
        for k, (_, value) in asked.items():
            if value is None:
                continue
            ok = abs(actual[k] - float(value)) < (1e-3 if k == "fps" else 0.5)
            if not ok:
                raise ConnectionError(f"camera {self.name!r} ({self.index_or_path!r}) refused {k}={value}: it gives "
                                      f"{actual[k]:g}. Use a supported value (see `record.py mode=find_cameras`).")
        self.capture_width = int(round(actual["width"])) if self.capture_width is None else self.capture_width
        self.capture_height = int(round(actual["height"])) if self.capture_height is None else self.capture_height
        self.fps = actual["fps"] if self.fps is None else self.fps

    def _process(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"camera {self.name!r} delivered a frame of shape {frame.shape}, expected (H, W, 3)")
        h, w = frame.shape[:2]
        if (w, h) != (int(self.capture_width), int(self.capture_height)):
            raise ValueError(f"camera {self.name!r} delivered {w}x{h}, expected {self.capture_width}x{self.capture_height}")
        if self.color_mode == "rgb":
            frame = frame[..., ::-1]  # OpenCV delivers BGR
        if self.rotation == 90:
            frame = np.rot90(frame, k=-1)
        elif self.rotation == -90:
            frame = np.rot90(frame, k=1)
        elif self.rotation == 180:
            frame = frame[::-1, ::-1]
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def _read_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    failures += 1
                    time.sleep(0.005 if failures < 100 else 0.05)
                    continue
                failures = 0
                out = self._process(frame)
            except Exception as e:  # reported by async_read
                self._error = e
                self._new_frame.set()
                return
            with self._lock:
                self._latest = out
                self.frames_read += 1
            self._new_frame.set()

    def async_read(self, timeout_ms: float = 200.0) -> np.ndarray:
        """The newest frame not returned before, ``uint8 (H, W, 3)``.

        Raises:
            ConnectionError: not connected. RuntimeError: the reader thread failed (the cause is chained).
            TimeoutError: naming the camera and its device when no new frame arrived within ``timeout_ms``.
        """
        if self._cap is None:
            raise ConnectionError(f"camera {self.name!r} ({self.index_or_path!r}) is not connected")
        if not self._new_frame.wait(timeout_ms / 1000.0):
            alive = self._thread is not None and self._thread.is_alive()
            raise TimeoutError(f"camera {self.name!r} ({self.index_or_path!r}) delivered no new frame within "
                               f"{timeout_ms:.0f} ms (reader thread {'alive' if alive else 'stopped'})")
        if self._error is not None:
            raise RuntimeError(f"camera {self.name!r} ({self.index_or_path!r}) reader failed: {self._error}") from self._error
        with self._lock:
            self._new_frame.clear()
            return self._latest

    def disconnect(self) -> None:
        """Stop the reader thread and release the device. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None
        if self._cap is not None:
            try:
                self._cap.release()
            finally:
                self._cap = None


def find_cameras(max_index: int = 10) -> list[dict[str, Any]]:
    """OpenCV cameras that open and deliver a frame.

    On Linux the candidates are ``/dev/video*``; elsewhere the indices ``0..max_index-1``.

    Returns:
        ``[{"type": "opencv", "index_or_path", "width", "height", "fps"}]`` (empty when none is found).
    """
    cv2 = _cv2()
    candidates: list[int | str] = sorted(glob.glob("/dev/video*")) if platform.system() == "Linux" else list(range(max_index))
    found = []
    for target in candidates:
        cap = cv2.VideoCapture(target)
        try:
            if not cap.isOpened():
                continue
            ok, _ = cap.read()
            if not ok:
                continue
            found.append({"type": "opencv", "index_or_path": target,
                          "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                          "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                          "fps": float(cap.get(cv2.CAP_PROP_FPS))})
        finally:
            cap.release()
    return found
