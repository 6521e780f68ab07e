"""One-time hardware setup steps, exposed by ``record.py`` as ``mode=find_port|setup_motors|calibrate|find_cameras``.

Each function takes its user interaction as ``input_fn``/``print_fn`` so it can run in tests.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable


def list_serial_ports() -> list[str]:
    """Serial ports known to pyserial (``/dev/ttyACM0``, ``/dev/tty.usbmodem...``, ``COM3``)."""
    from serial.tools import list_ports

    return sorted(p.device for p in list_ports.comports())


def find_port(input_fn: Callable[[str], Any] = input, print_fn: Callable[..., Any] = print,
              list_ports_fn: Callable[[], Iterable[str]] = list_serial_ports, settle_s: float = 0.5) -> str:
    """Find an arm's port: list ports, ask the user to unplug its USB cable, list again; the port that disappeared.

    Returns:
        The port name.
    Raises:
        OSError: when no port or several ports disappeared (both named).
    """
    before = set(list_ports_fn())
    print_fn(f"Ports found: {sorted(before)}")
    input_fn("Remove the USB cable from the arm's controller board and press ENTER when done.")
    time.sleep(settle_s)
    after = set(list_ports_fn())
    gone = sorted(before - after)
    if len(gone) == 1:
        print_fn(f"The port of this arm is {gone[0]!r}. Reconnect the USB cable.")
        return gone[0]
    if not gone:
        raise OSError(f"no port disappeared (before: {sorted(before)}, after: {sorted(after)}); was the cable unplugged?")
    raise OSError(f"several ports disappeared: {gone}; unplug only one arm")


def setup_motors(device: Any, input_fn: Callable[[str], Any] = input, print_fn: Callable[..., Any] = print,
                 baudrates: Iterable[int] | None = None) -> dict[str, tuple[int, int]]:
    """Give each motor of ``device`` (an ``SOFollower``/``SOLeader``, or anything with a ``bus``) its id and the bus
    baud rate, one motor at a time, starting from the gripper.

    Returns:
        ``{motor: (previous baudrate, previous id)}``.
    Raises:
        MotorBusError: when the port cannot be opened or no / several / a wrong-model motor answers.
    """
    bus = device.bus
    bus.connect(handshake=False)
    found = {}
    try:
        for motor in reversed(list(bus.motors)):
            input_fn(f"Connect the controller board to the '{motor}' motor ONLY and press ENTER.")
            found[motor] = bus.setup_motor(motor, baudrates)
            print_fn(f"'{motor}' motor id set to {bus.motors[motor].id} (was {found[motor][1]} at {found[motor][0]} bit/s)")
    finally:
        bus.disconnect(disable_torque=False)
    return found


def calibrate(device: Any) -> Any:
    """Connect ``device`` without loading a calibration into the motors, run its interactive ``calibrate()``
    (saved to its calibration file), then disconnect. Returns the calibration."""
    device.arm.bus.connect()
    try:
        return device.arm.calibrate()
    finally:
        device.arm.bus.disconnect(disable_torque=True)


def find_cameras(print_fn: Callable[..., Any] = print) -> list[dict[str, Any]]:
    """Print and return the OpenCV cameras that deliver frames (see :func:`robolearn.robots.cameras.find_cameras`)."""
    from robolearn.robots.cameras import find_cameras as _find

    cams = _find()
    if not cams:
        print_fn("No OpenCV camera found.")
    for c in cams:
        print_fn(f"{c['index_or_path']}: {c['width']}x{c['height']} @ {c['fps']:g} fps  ->  "
                 f"{{_target_: robolearn.robots.cameras.OpenCVCamera, index_or_path: {c['index_or_path']}, "
                 f"width: {c['width']}, height: {c['height']}, fps: {int(round(c['fps']))}}}")
    return cams
