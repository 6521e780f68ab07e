"""Cameras for real robots: ``OpenCVCamera`` (threaded reader), ``FakeCamera`` (synthetic frames),
``find_cameras()``, and ``make_cameras`` to build them from configs. OpenCV is imported only when a camera connects.
"""

from robolearn.robots.cameras.camera import Camera, make_camera, make_cameras
from robolearn.robots.cameras.fake import FakeCamera
from robolearn.robots.cameras.opencv import OpenCVCamera, find_cameras

__all__ = ["Camera", "FakeCamera", "OpenCVCamera", "find_cameras", "make_camera", "make_cameras"]
