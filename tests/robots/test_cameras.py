"""FakeCamera and OpenCVCamera's reader thread with an injected capture object."""

import contextlib
import threading

import numpy as np
import pytest

from robolearn.robots.cameras import FakeCamera, OpenCVCamera, make_cameras


class FakeCapture:
    """OpenCV ``VideoCapture`` stand-in: BGR frames whose blue channel holds the frame number."""

    def __init__(self, width=8, height=4, fps=30.0, opened=True, refuse_width=False, frames=None):
        self.props = {3: float(width), 4: float(height), 5: float(fps)}  # CAP_PROP_FRAME_WIDTH/HEIGHT/FPS
        self.opened, self.refuse_width = opened, refuse_width
        self.frames = frames  # None = endless; else deliver this many, then fail reads
        self.count = 0
        self.failed = 0
        self.released = False
        self.delivering = threading.Event()
        self.delivering.set()

    def isOpened(self):  # noqa: N802
        return self.opened

    def set(self, prop, value):
        if not (prop == 3 and self.refuse_width):
            self.props[prop] = value
        return True

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def read(self):
        if not self.delivering.is_set() or (self.frames is not None and self.count >= self.frames):
            self.failed += 1
            threading.Event().wait(0.002)
            return False, None
        w, h = int(self.props[3]), int(self.props[4])
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 0] = self.count % 256  # blue
        frame[..., 2] = np.arange(w)[None, :]  # red = column
        self.count += 1
        threading.Event().wait(0.002)
        return True, frame

    def release(self):
        self.released = True


def camera(cap, **kw):
    return OpenCVCamera(0, name="front", warmup_s=0.0, capture_factory=lambda idx, backend: cap, **kw)


def test_fake_camera_frames_and_stop():
    cam = FakeCamera(width=5, height=3, name="top")
    with cam:
        f0, f1 = cam.async_read(), cam.async_read()
        assert f0.shape == (3, 5, 3) and f0.dtype == np.uint8
        assert f0[2, 4, 1] == (4 + 4 + 50) % 256 and f1[2, 4, 1] == (4 + 4 + 50 + 7) % 256
        cam.stop()
        with pytest.raises(TimeoutError, match="camera 'top'.*no new frame within 10 ms"):
            cam.async_read(timeout_ms=10)
    assert not cam.is_connected
    assert FakeCamera(stop_after=1).frame(3)[0, 0, 0] == 21


def test_opencv_rgb_and_latest_frame():
    cap = FakeCapture(width=8, height=4)
    cam = camera(cap, width=8, height=4, fps=30)
    cam.connect()
    try:
        frame = cam.async_read(timeout_ms=500)
        assert frame.shape == (4, 8, 3) and frame.dtype == np.uint8
        assert list(frame[0, :, 0]) == list(range(8))  # red column index moved to channel 0 (RGB)
        n1 = int(frame[0, 0, 2])
        n2 = int(cam.async_read(timeout_ms=500)[0, 0, 2])
        assert n2 > n1  # a new frame each call
    finally:
        cam.disconnect()
    assert cap.released and not cam.is_connected


def test_opencv_bgr_and_rotation():
    cap = FakeCapture(width=8, height=4)
    cam = camera(cap, width=8, height=4, color_mode="bgr", rotation=90)
    assert cam.shape == (8, 4, 3)
    with cam:
        frame = cam.async_read(timeout_ms=500)
    assert frame.shape == (8, 4, 3)
    assert list(frame[:, 0, 2]) == list(range(8))  # clockwise: the top row becomes the right column, read downwards
    cam2 = camera(FakeCapture(width=8, height=4), rotation=-90)
    with cam2:
        f = cam2.async_read(timeout_ms=500)
    assert f.shape == (8, 4, 3) and list(f[:, 0, 0]) == list(range(7, -1, -1))


def test_opencv_timeout_names_camera():
    cap = FakeCapture()
    cam = camera(cap)
    with cam:
        cam.async_read(timeout_ms=500)
        cap.delivering.clear()
        seen = cap.failed
        while cap.failed == seen:  # the reader has seen the camera stall
            threading.Event().wait(0.001)
        with contextlib.suppress(TimeoutError):
            cam.async_read(timeout_ms=1)  # drop a frame captured just before the stall
        with pytest.raises(TimeoutError, match=r"camera 'front' \(0\) delivered no new frame within 50 ms"):
            cam.async_read(timeout_ms=50)


def test_opencv_open_errors():
    with pytest.raises(ConnectionError, match="camera 'front': could not open 0"):
        camera(FakeCapture(opened=False)).connect()
    cap = FakeCapture(refuse_width=True)
    with pytest.raises(ConnectionError, match="camera 'front'.*refused width=640"):
        camera(cap, width=640, height=4).connect()
    assert cap.released
    with pytest.raises(ValueError, match="rotation must be one of"):
        OpenCVCamera(0, rotation=45)
    with pytest.raises(ValueError, match="color_mode"):
        OpenCVCamera(0, color_mode="gray")
    with pytest.raises(RuntimeError, match="width and height are unknown"):
        OpenCVCamera(0).shape


def test_make_cameras_from_configs():
    cams = make_cameras({"a": {"type": "fake", "width": 4, "height": 2},
                         "b": {"_target_": "robolearn.robots.cameras.OpenCVCamera", "index_or_path": "2", "width": 6, "height": 3},
                         "c": FakeCamera(name="mine")})
    assert isinstance(cams["a"], FakeCamera) and cams["a"].name == "a" and cams["a"].shape == (2, 4, 3)
    assert isinstance(cams["b"], OpenCVCamera) and cams["b"].index_or_path == 2 and cams["b"].name == "b"
    assert cams["c"].name == "mine"
    with pytest.raises(ValueError, match="camera 'x'.*'type'"):
        make_cameras({"x": {"type": "realsense"}})
