"""Per-motor calibration: the record, its JSON file and lerobot-compatible file locations.

A calibration file is ``{motor_name: {"id", "drive_mode", "homing_offset", "range_min", "range_max"}}``
(lerobot's ``MotorCalibration`` fields; ticks are raw encoder units, 0..4095 on an STS3215). It lives at
``$HF_LEROBOT_CALIBRATION/{robots|teleoperators}/<class folder>/<id>.json`` where ``HF_LEROBOT_CALIBRATION``
defaults to ``$HF_LEROBOT_HOME/calibration`` and ``HF_LEROBOT_HOME`` to ``~/.cache/huggingface/lerobot``,
so files written by lerobot load here and the other way round.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

CALIBRATION_FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


@dataclass
class MotorCalibration:
    """Calibration of one motor (lerobot's field names).

    Attributes:
        id: bus id of the motor (1..252).
        drive_mode: 0 normal, 1 inverted direction of the normalized value.
        homing_offset: ticks written to ``Homing_Offset``; the servo reports ``actual - homing_offset``.
        range_min, range_max: raw tick limits recorded while sweeping the joint (also written to
            ``Min/Max_Position_Limit``).
    """

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


def calibration_root() -> Path:
    """``$HF_LEROBOT_CALIBRATION``, else ``$HF_LEROBOT_HOME/calibration``, else
    ``~/.cache/huggingface/lerobot/calibration`` (lerobot's resolution order)."""
    if os.environ.get("HF_LEROBOT_CALIBRATION"):
        return Path(os.environ["HF_LEROBOT_CALIBRATION"]).expanduser()
    home = os.environ.get("HF_LEROBOT_HOME") or Path("~/.cache/huggingface/lerobot")
    return Path(home).expanduser() / "calibration"


def calibration_path(kind: str, class_folder: str, id: str | None, calibration_dir: str | Path | None = None) -> Path:
    """File of a device's calibration.

    Args:
        kind: ``"robots"`` or ``"teleoperators"``.
        class_folder: lerobot's class folder name (``"so_follower"``, ``"so_leader"``).
        id: the device's ``id`` (file stem); ``None`` gives ``"None.json"`` like lerobot.
        calibration_dir: a folder that replaces ``<root>/<kind>/<class_folder>``.
    Raises:
        ValueError: for a ``kind`` other than robots/teleoperators.
    """
    if kind not in ("robots", "teleoperators"):
        raise ValueError(f"calibration kind must be 'robots' or 'teleoperators', got {kind!r}")
    folder = Path(calibration_dir).expanduser() if calibration_dir is not None else calibration_root() / kind / class_folder
    return folder / f"{id}.json"


def save_calibration(calibration: Mapping[str, MotorCalibration], path: str | Path) -> Path:
    """Write ``{motor: MotorCalibration}`` as JSON (indent 4, lerobot's layout), atomically: a temporary file in
    the same folder is fsynced and ``os.replace``d, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {name: {k: int(v) for k, v in asdict(cal).items()} for name, cal in calibration.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=4)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_calibration(path: str | Path, motors: Mapping[str, int] | None = None) -> dict[str, MotorCalibration]:
    """Read a calibration JSON (robolearn's or lerobot's).

    Args:
        path: the JSON file.
        motors: ``{name: id}`` expected on the bus; when given, the file must hold exactly these motors.
    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: naming the file and the motor/field that is missing, extra or not an integer.
    """
    path = Path(path)
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"calibration file {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"calibration file {path}: expected an object {{motor: {{...}}}}, got {type(data).__name__}")
    out: dict[str, MotorCalibration] = {}
    for name, fields in data.items():
        if not isinstance(fields, dict):
            raise ValueError(f"calibration file {path}: motor {name!r} must map to an object, got {fields!r}")
        missing = [k for k in CALIBRATION_FIELDS if k not in fields]
        if missing:
            raise ValueError(f"calibration file {path}: motor {name!r} lacks fields {missing} (expected {list(CALIBRATION_FIELDS)})")
        values = {}
        for k in CALIBRATION_FIELDS:
            v = fields[k]
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"calibration file {path}: motor {name!r} field {k!r} must be an integer, got {v!r}")
            values[k] = v
        out[name] = MotorCalibration(**values)
    if motors is not None:
        missing = [m for m in motors if m not in out]
        extra = [m for m in out if m not in motors]
        if missing or extra:
            raise ValueError(f"calibration file {path}: motors missing {missing}, unexpected {extra}; expected {list(motors)}")
        wrong_id = {m: (out[m].id, i) for m, i in motors.items() if out[m].id != i}
        if wrong_id:
            raise ValueError(f"calibration file {path}: motor ids differ from the bus (file, bus): {wrong_id}")
    return out
