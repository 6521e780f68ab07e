"""Feetech STS-series servo bus on top of the vendor SDK ``scservo_sdk`` (PyPI ``feetech-servo-sdk``).

Protocol (Feetech/SCS protocol 0): instruction packet ``0xFF 0xFF id len instr params... checksum`` with
``len = len(params) + 2`` and ``checksum = ~(id + len + instr + sum(params)) & 0xFF``; the servo answers with a
status packet ``0xFF 0xFF id len error data... checksum``. Multi-byte registers are little-endian. Sync read
(0x82) and sync write (0x83) address several servos with one packet.

Every transaction is retried ``retries`` times; the final failure raises :class:`MotorBusError` naming the port,
the motor, its id and the register. Positions (``Present_Position``, ``Goal_Position``) are normalized with
each motor's :class:`MotorCalibration` (see :mod:`robolearn.robots.motors.normalization`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from robolearn.robots.motors.calibration import MotorCalibration
from robolearn.robots.motors.encoding import decode_sign_magnitude, encode_sign_magnitude
from robolearn.robots.motors.motor import CalibrationError, Motor, MotorBusError
from robolearn.robots.motors.normalization import normalize, unnormalize
from robolearn.robots.motors.tables import (
    DEFAULT_BAUDRATE,
    MODEL_NUMBERS,
    MODEL_RESOLUTION,
    OPERATING_MODES,
    POSITION_REGISTERS,
    STS_BAUDRATES,
    STS_SIGN_BITS,
    register as register_address,
)

log = logging.getLogger(__name__)

BROADCAST_ID = 0xFE


def _import_sdk():
    try:
        import scservo_sdk
    except ImportError as e:  # pragma: no cover - the dependency is installed in the project env
        raise ImportError("the Feetech bus needs the 'feetech-servo-sdk' package (module scservo_sdk): "
                          "pip install feetech-servo-sdk pyserial") from e
    return scservo_sdk


def _make_port_handler(port: str, packet_timeout_ms: float):
    """The SDK's ``PortHandler`` with a status-packet timeout of ``transmit time + packet_timeout_ms``
    (the PyPI SDK's own formula allows only ~34 ms regardless of the baud rate)."""
    scs = _import_sdk()

    class _PortHandler(scs.PortHandler):
        def setPacketTimeout(self, packet_length):  # noqa: N802 (SDK name)
            self.packet_start_time = self.getCurrentTime()
            self.packet_timeout = self.tx_time_per_byte * (packet_length + 3) + packet_timeout_ms

    return _PortHandler(port)


class FeetechMotorsBus:
    """Servos daisy-chained on one serial port.

    Args:
        port: serial device (``/dev/ttyACM0``, ``/dev/tty.usbmodem...``, ``COM3``).
        motors: ``{name: Motor}`` in a fixed order (the order of sync reads and of the robot's features).
        calibration: ``{name: MotorCalibration}``; needed for normalized position reads/writes.
        baudrate: bit/s, one of ``STS_BAUDRATES`` (default 1 Mbps, the STS3215 factory setting).
        retries: extra attempts per transaction before :class:`MotorBusError` (default 2, so 3 attempts).
        packet_timeout_ms: how long to wait for a status packet beyond its transmit time.

    Raises:
        ValueError: for duplicate ids or an unsupported baud rate.
    """

    def __init__(self, port: str, motors: Mapping[str, Motor], calibration: Mapping[str, MotorCalibration] | None = None,
                 baudrate: int = DEFAULT_BAUDRATE, retries: int = 2, packet_timeout_ms: float = 50.0) -> None:
        self.port = str(port)
        self.motors = dict(motors)
        ids = [m.id for m in self.motors.values()]
        if len(set(ids)) != len(ids):
            raise ValueError(f"motors on port {self.port!r} share ids: {ids}")
        if baudrate not in STS_BAUDRATES:
            raise ValueError(f"unsupported baud rate {baudrate}; expected one of {sorted(STS_BAUDRATES)}")
        self.calibration: dict[str, MotorCalibration] = dict(calibration or {})
        self.baudrate = int(baudrate)
        self.retries = int(retries)
        self.packet_timeout_ms = float(packet_timeout_ms)
        self._id_to_name = {m.id: n for n, m in self.motors.items()}
        self._lock = threading.RLock()
        self._port_handler = None
        self._packet_handler = None

    # ------------------------------------------------------------------ connection
    @property
    def is_connected(self) -> bool:
        """Whether the serial port is open."""
        return self._port_handler is not None and bool(self._port_handler.is_open)

    def connect(self, handshake: bool = True) -> None:
        """Open the port at ``baudrate`` and, with ``handshake``, ping every motor and check its model number.

        Raises:
            MotorBusError: when the port cannot be opened (names the port and how to find it), or a motor does
                not answer / has the wrong model (names port, motors and ids).
        """
        if self.is_connected:
            raise MotorBusError(f"bus on port {self.port!r} is already connected", port=self.port)
        scs = _import_sdk()
        ph = _make_port_handler(self.port, self.packet_timeout_ms)
        try:
            ok = ph.openPort() and ph.setBaudRate(self.baudrate)
        except Exception as e:  # serial.SerialException, OSError
            raise MotorBusError(f"could not open serial port {self.port!r}: {e}. Check the cable and the port name "
                                "(`python record.py mode=find_port` lists it).", port=self.port) from e
        if not ok:
            raise MotorBusError(f"could not open serial port {self.port!r} at {self.baudrate} bit/s", port=self.port)
        self._port_handler = ph
        self._packet_handler = scs.PacketHandler(0)
        if handshake:
            try:
                self._handshake()
            except BaseException:
                self._close()
                raise

    def _handshake(self) -> None:
        missing, wrong = [], []
        for name, m in self.motors.items():
            try:
                model_nb = self.ping(name)
            except MotorBusError:
                missing.append(f"{name} (id {m.id})")
                continue
            if model_nb != MODEL_NUMBERS[m.model]:
                wrong.append(f"{name} (id {m.id}): model number {model_nb}, expected {MODEL_NUMBERS[m.model]} ({m.model})")
        if missing or wrong:
            lines = [f"motor check failed on port {self.port!r} at {self.baudrate} bit/s:"]
            if missing:
                lines.append(f"  not answering: {', '.join(missing)} (power on? ids set with `record.py mode=setup_motors`?)")
            if wrong:
                lines.append("  wrong model: " + "; ".join(wrong))
            raise MotorBusError("\n".join(lines), port=self.port)

    def _close(self) -> None:
        if self._port_handler is not None:
            with contextlib.suppress(Exception):
                self._port_handler.closePort()
        self._port_handler = None

    def disconnect(self, disable_torque: bool = True) -> None:
        """Optionally disable torque on every motor (best effort: a failure is logged), then close the port.
        Safe to call twice."""
        if not self.is_connected:
            return
        try:
            if disable_torque:
                try:
                    self.disable_torque()
                except MotorBusError as e:
                    log.error("could not disable torque before closing %s: %s", self.port, e)
        finally:
            self._close()

    def set_baudrate(self, baudrate: int) -> None:
        """Change the host side's baud rate (the servos keep theirs; see :meth:`setup_motor`)."""
        if baudrate not in STS_BAUDRATES:
            raise ValueError(f"unsupported baud rate {baudrate}; expected one of {sorted(STS_BAUDRATES)}")
        self._require_connected()
        if not self._port_handler.setBaudRate(baudrate):
            raise MotorBusError(f"could not set port {self.port!r} to {baudrate} bit/s", port=self.port)
        self.baudrate = int(baudrate)

    def _require_connected(self) -> None:
        if not self.is_connected:
            raise MotorBusError(f"bus on port {self.port!r} is not connected; call connect() first", port=self.port)

    # ------------------------------------------------------------------ helpers
    def _motor(self, motor: str | int) -> tuple[str, int, Motor | None]:
        if isinstance(motor, str):
            if motor not in self.motors:
                raise KeyError(f"unknown motor {motor!r} on port {self.port!r}; motors: {list(self.motors)}")
            return motor, self.motors[motor].id, self.motors[motor]
        name = self._id_to_name.get(int(motor), f"id{int(motor)}")
        return name, int(motor), self.motors.get(name)

    def _motor_names(self, motors: str | Iterable[str] | None) -> list[str]:
        if motors is None:
            return list(self.motors)
        names = [motors] if isinstance(motors, str) else list(motors)
        for n in names:
            self._motor(n)
        return names

    def _fail(self, action: str, register: str | None, name: str | None, motor_id: int | None, attempts: int, reason: str) -> MotorBusError:
        who = f"motor {name!r} (id {motor_id})" if motor_id is not None else "the bus"
        what = f" register {register!r} of" if register else ""
        msg = f"port {self.port!r}: {action}{what} {who} failed after {attempts} attempt(s): {reason}"
        return MotorBusError(msg, port=self.port, motor=name, motor_id=motor_id, register=register, attempts=attempts)

    def _reason(self, comm: int, error: int) -> str:
        ph = self._packet_handler
        if comm != 0:
            return ph.getTxRxResult(comm) or f"communication result {comm}"
        return f"servo status error 0x{error:02x} {ph.getRxPacketError(error)}".strip()

    def _fresh_attempt(self) -> None:
        """Drop stale bytes (late or corrupt answers of a failed attempt) and clear the SDK's busy flag."""
        ph = self._port_handler
        ph.is_using = False
        with contextlib.suppress(Exception):
            ph.ser.reset_input_buffer()

    @staticmethod
    def _to_bytes(value: int, size: int, register: str, name: str) -> list[int]:
        if not 0 <= value < (1 << (8 * size)):
            raise ValueError(f"value {value} does not fit register {register!r} ({size} byte(s)) of motor {name!r}")
        return list(int(value).to_bytes(size, "little"))

    def _encode(self, register: str, value: int, name: str) -> int:
        if register in STS_SIGN_BITS:
            try:
                return encode_sign_magnitude(value, STS_SIGN_BITS[register])
            except ValueError as e:
                raise ValueError(f"motor {name!r}, register {register!r}: {e}") from None
        if value < 0:
            raise ValueError(f"motor {name!r}, register {register!r}: negative value {value} is not allowed")
        return int(value)

    @staticmethod
    def _decode(register: str, raw: int) -> int:
        return decode_sign_magnitude(raw, STS_SIGN_BITS[register]) if register in STS_SIGN_BITS else raw

    def _resolution(self, name: str) -> int:
        return MODEL_RESOLUTION[self.motors[name].model]

    def _calibration_of(self, name: str) -> MotorCalibration:
        if name not in self.calibration:
            raise CalibrationError(f"motor {name!r} on port {self.port!r} has no calibration; run "
                                   "`python record.py mode=calibrate ...` or load a calibration file")
        return self.calibration[name]

    def _normalize(self, name: str, raw: int) -> float:
        return normalize(raw, self._calibration_of(name), self.motors[name].norm_mode, self._resolution(name), name)

    def _unnormalize(self, name: str, value: float) -> int:
        return unnormalize(value, self._calibration_of(name), self.motors[name].norm_mode, self._resolution(name), name)

    # ------------------------------------------------------------------ transactions
    def ping(self, motor: str | int, retries: int | None = None) -> int:
        """Ping a motor (name or id) and return its model number (777 for an STS3215).

        Raises:
            MotorBusError: naming port, motor and id after ``retries`` + 1 failed attempts.
        """
        self._require_connected()
        name, motor_id, _ = self._motor(motor)
        attempts = 1 + (self.retries if retries is None else retries)
        comm = error = 0
        with self._lock:
            for _ in range(attempts):
                self._fresh_attempt()
                model_nb, comm, error = self._packet_handler.ping(self._port_handler, motor_id)
                if comm == 0 and error == 0:
                    return int(model_nb)
        raise self._fail("ping of", None, name, motor_id, attempts, self._reason(comm, error))

    def broadcast_ping(self, wait_ms: float = 100.0) -> dict[int, int]:
        """Ping every servo at once (id 0xFE) and return ``{id: model number}`` of those that answered
        (empty when none did). Used to find a lone new motor whose id is unknown."""
        self._require_connected()
        scs = _import_sdk()
        port, ph = self._port_handler, self._packet_handler
        found: list[int] = []
        with self._lock:
            self._fresh_attempt()
            packet = [0, 0, BROADCAST_ID, 2, scs.INST_PING, 0]
            if ph.txPacket(port, packet) != 0:
                port.is_using = False
                return {}
            port.setPacketTimeoutMillis(wait_ms)
            while True:
                rx, comm = ph.rxPacket(port)
                if comm != 0:
                    break
                found.append(rx[2])
            port.is_using = False
        out = {}
        for motor_id in found:
            data = self._read_raw_id(motor_id, "Model_Number", f"id{motor_id}")
            out[motor_id] = data
        return out

    def _read_raw_id(self, motor_id: int, register: str, name: str) -> int:
        addr, size = register_address(register)
        attempts = 1 + self.retries
        comm = error = 0
        with self._lock:
            for _ in range(attempts):
                self._fresh_attempt()
                data, comm, error = self._packet_handler.readTxRx(self._port_handler, motor_id, addr, size)
                if comm == 0 and error == 0 and len(data) == size:
                    return int.from_bytes(bytes(data), "little")
        raise self._fail("reading", register, name, motor_id, attempts, self._reason(comm, error))

    def _write_raw_id(self, motor_id: int, register: str, raw: int, name: str) -> None:
        addr, size = register_address(register)
        data = self._to_bytes(raw, size, register, name)
        attempts = 1 + self.retries
        comm = error = 0
        with self._lock:
            for _ in range(attempts):
                self._fresh_attempt()
                comm, error = self._packet_handler.writeTxRx(self._port_handler, motor_id, addr, size, data)
                if comm == 0 and error == 0:
                    return
        raise self._fail("writing", register, name, motor_id, attempts, self._reason(comm, error))

    def read(self, register: str, motor: str | int, normalize: bool = True) -> float | int:
        """Read one register of one motor.

        Returns:
            The decoded integer (sign-magnitude registers signed), or for ``Present/Goal_Position`` with
            ``normalize`` the calibrated value (degrees, −100..100 or 0..100 per the motor's ``norm_mode``).
        Raises:
            KeyError: unknown register or motor. MotorBusError: after all retries (names port/motor/id/register).
            CalibrationError: a normalized position read on an uncalibrated motor.
        """
        self._require_connected()
        name, motor_id, _ = self._motor(motor)
        value = self._decode(register, self._read_raw_id(motor_id, register, name))
        if normalize and register in POSITION_REGISTERS:
            return self._normalize(name, value)
        return value

    def write(self, register: str, motor: str | int, value: float | int, normalize: bool = True) -> None:
        """Write one register of one motor and wait for its acknowledgement (use for configuration).

        EPROM registers (address < 40) are only stored while ``Lock`` is 0, i.e. inside :meth:`torque_disabled`.

        Raises:
            ValueError: the value does not fit the register. MotorBusError: after all retries.
        """
        self._require_connected()
        name, motor_id, _ = self._motor(motor)
        if normalize and register in POSITION_REGISTERS:
            value = self._unnormalize(name, value)
        self._write_raw_id(motor_id, register, self._encode(register, int(value), name), name)

    def sync_read(self, register: str, motors: str | Iterable[str] | None = None, normalize: bool = True) -> dict[str, float | int]:
        """Read one register of several motors with one sync-read packet (0x82).

        Returns:
            ``{name: value}`` in the order of ``motors`` (all motors by default); positions normalized as in :meth:`read`.
        Raises:
            MotorBusError: naming the first motor that did not answer correctly, after all retries.
        """
        self._require_connected()
        scs = _import_sdk()
        names = self._motor_names(motors)
        addr, size = register_address(register)
        ids = [self.motors[n].id for n in names]
        attempts = 1 + self.retries
        port, ph = self._port_handler, self._packet_handler
        failed_id, comm, error = None, 0, 0
        with self._lock:
            for _ in range(attempts):
                self._fresh_attempt()
                reader = scs.GroupSyncRead(port, ph, addr, size)
                for motor_id in ids:
                    reader.addParam(motor_id)
                comm, error, failed_id = reader.txPacket(), 0, None
                if comm != 0:
                    port.is_using = False
                    continue
                raw: dict[int, int] = {}
                for motor_id in ids:
                    data, comm, error = ph.readRx(port, motor_id, size)
                    if comm != 0 or error != 0 or len(data) != size:
                        failed_id = motor_id
                        break
                    raw[motor_id] = int.from_bytes(bytes(data), "little")
                port.is_using = False
                if failed_id is None:
                    break
            else:
                name = self._id_to_name.get(failed_id) if failed_id is not None else None
                raise self._fail("sync read of", register, name, failed_id, attempts, self._reason(comm, error))
        out: dict[str, float | int] = {}
        for n, motor_id in zip(names, ids):
            value = self._decode(register, raw[motor_id])
            out[n] = self._normalize(n, value) if normalize and register in POSITION_REGISTERS else value
        return out

    def sync_write(self, register: str, values: Mapping[str, float] | float, normalize: bool = True) -> None:
        """Write one register of several motors with one sync-write packet (0x83); servos do not answer.

        Args:
            values: ``{name: value}``, or one value for every motor.
        Raises:
            ValueError: a value does not fit. MotorBusError: when the packet cannot be transmitted.
        """
        self._require_connected()
        scs = _import_sdk()
        if not isinstance(values, Mapping):
            values = {n: values for n in self.motors}
        addr, size = register_address(register)
        payload: dict[int, list[int]] = {}
        for n, v in values.items():
            name, motor_id, _ = self._motor(n)
            raw = self._unnormalize(name, v) if normalize and register in POSITION_REGISTERS else int(v)
            payload[motor_id] = self._to_bytes(self._encode(register, raw, name), size, register, name)
        attempts = 1 + self.retries
        comm = 0
        port, ph = self._port_handler, self._packet_handler
        with self._lock:
            for _ in range(attempts):
                self._fresh_attempt()
                writer = scs.GroupSyncWrite(port, ph, addr, size)
                for motor_id, data in payload.items():
                    writer.addParam(motor_id, data)
                comm = writer.txPacket()
                port.is_using = False
                if comm == 0:
                    return
        raise self._fail("sync write of", register, None, None, attempts, self._reason(comm, 0))

    # ------------------------------------------------------------------ torque / modes
    def disable_torque(self, motors: str | Iterable[str] | None = None) -> None:
        """``Torque_Enable`` = 0 then ``Lock`` = 0 (EPROM writable) on each motor."""
        for n in self._motor_names(motors):
            self.write("Torque_Enable", n, 0)
            self.write("Lock", n, 0)

    def enable_torque(self, motors: str | Iterable[str] | None = None) -> None:
        """``Torque_Enable`` = 1 then ``Lock`` = 1 on each motor."""
        for n in self._motor_names(motors):
            self.write("Torque_Enable", n, 1)
            self.write("Lock", n, 1)

    @contextlib.contextmanager
    def torque_disabled(self, motors: str | Iterable[str] | None = None) -> Iterator[None]:
        """Disable torque for the block and re-enable it afterwards (also when the block raises)."""
        self.disable_torque(motors)
        try:
            yield
        finally:
            self.enable_torque(motors)

    def set_operating_mode(self, mode: str = "position", motors: str | Iterable[str] | None = None) -> None:
        """Write ``Operating_Mode`` (``position`` 0, ``velocity`` 1, ``pwm`` 2, ``step`` 3); torque must be off."""
        if mode not in OPERATING_MODES:
            raise ValueError(f"unknown operating mode {mode!r}; expected one of {list(OPERATING_MODES)}")
        for n in self._motor_names(motors):
            self.write("Operating_Mode", n, OPERATING_MODES[mode])

    # ------------------------------------------------------------------ calibration
    def read_calibration(self) -> dict[str, MotorCalibration]:
        """Homing offset and position limits stored in the motors (``drive_mode`` from the cached calibration, else 0)."""
        out = {}
        for n, m in self.motors.items():
            drive = self.calibration[n].drive_mode if n in self.calibration else 0
            out[n] = MotorCalibration(
                id=m.id, drive_mode=drive,
                homing_offset=int(self.read("Homing_Offset", n, normalize=False)),
                range_min=int(self.read("Min_Position_Limit", n, normalize=False)),
                range_max=int(self.read("Max_Position_Limit", n, normalize=False)),
            )
        return out

    def write_calibration(self, calibration: Mapping[str, MotorCalibration]) -> None:
        """Write ``Homing_Offset`` and ``Min/Max_Position_Limit`` of each motor and keep ``calibration`` for
        normalization. Call with torque disabled (EPROM registers)."""
        for n, cal in calibration.items():
            self.write("Homing_Offset", n, cal.homing_offset, normalize=False)
            self.write("Min_Position_Limit", n, cal.range_min, normalize=False)
            self.write("Max_Position_Limit", n, cal.range_max, normalize=False)
        self.calibration = dict(calibration)

    def is_calibrated(self) -> bool:
        """Whether the motors hold exactly the cached calibration (offsets and limits)."""
        if set(self.calibration) != set(self.motors):
            return False
        stored = self.read_calibration()
        return all((stored[n].homing_offset, stored[n].range_min, stored[n].range_max)
                   == (c.homing_offset, c.range_min, c.range_max) for n, c in self.calibration.items())

    def reset_calibration(self, motors: str | Iterable[str] | None = None) -> None:
        """``Homing_Offset`` 0 and limits 0..resolution−1, so ``Present_Position`` reports the raw encoder."""
        for n in self._motor_names(motors):
            self.write("Homing_Offset", n, 0, normalize=False)
            self.write("Min_Position_Limit", n, 0, normalize=False)
            self.write("Max_Position_Limit", n, self._resolution(n) - 1, normalize=False)

    def set_half_turn_homings(self, motors: str | Iterable[str] | None = None) -> dict[str, int]:
        """Make each motor's current position read as the middle tick (2047 of 0..4095).

        The servo reports ``actual − Homing_Offset``, so the offset is ``actual − 2047``. Call with torque disabled.

        Returns:
            ``{name: homing_offset}`` written to the motors.
        Raises:
            CalibrationError: when an offset does not fit the register (|offset| > 2047): the joint sits too close
                to the encoder's wrap-around; the message names the motor and the position.
        """
        names = self._motor_names(motors)
        self.reset_calibration(names)
        actual = self.sync_read("Present_Position", names, normalize=False)
        offsets = {}
        for n in names:
            half = (self._resolution(n) - 1) // 2
            offset = int(actual[n]) - half
            if abs(offset) > (1 << STS_SIGN_BITS["Homing_Offset"]) - 1:
                raise CalibrationError(
                    f"motor {n!r} on port {self.port!r} is at raw position {actual[n]}: the homing offset {offset} "
                    f"exceeds ±2047. Move the joint nearer the middle of its range and try again.")
            offsets[n] = offset
        for n, offset in offsets.items():
            self.write("Homing_Offset", n, offset, normalize=False)
        return offsets

    def record_ranges_of_motion(self, motors: str | Iterable[str] | None = None, stop: Callable[[], bool] = lambda: True,
                                display: Callable[[str], Any] | None = print, poll_s: float = 0.02) -> tuple[dict[str, int], dict[str, int]]:
        """Track min and max raw positions while the user sweeps the joints, until ``stop()`` returns True.

        Args:
            stop: polled after every read; the default interactive caller returns True once ENTER is pressed.
            display: receives a table of min/pos/max per motor after each read (``None`` prints nothing).
            poll_s: pause between reads (seconds).
        Returns:
            ``(mins, maxes)`` raw ticks per motor.
        Raises:
            CalibrationError: naming the motors whose min equals max (the joint was not moved).
        """
        names = self._motor_names(motors)
        pos = self.sync_read("Present_Position", names, normalize=False)
        mins, maxes = dict(pos), dict(pos)
        while True:
            pos = self.sync_read("Present_Position", names, normalize=False)
            for n in names:
                mins[n] = min(mins[n], int(pos[n]))
                maxes[n] = max(maxes[n], int(pos[n]))
            if display is not None:
                rows = [f"{'motor':<15} {'min':>6} {'pos':>6} {'max':>6}"]
                rows += [f"{n:<15} {mins[n]:>6} {pos[n]:>6} {maxes[n]:>6}" for n in names]
                display("\n".join(rows))
            if stop():
                break
            if poll_s > 0:
                time.sleep(poll_s)
        still = [n for n in names if mins[n] == maxes[n]]
        if still:
            raise CalibrationError(f"on port {self.port!r}, joints {still} did not move while recording ranges of motion")
        return mins, maxes

    # ------------------------------------------------------------------ setup
    def find_single_motor(self, model: str = "sts3215", baudrates: Iterable[int] | None = None) -> tuple[int, int]:
        """Find the one motor connected alone to the bus by broadcast-pinging at each baud rate.

        Returns:
            ``(baudrate, id)`` where it answered.
        Raises:
            MotorBusError: when no motor answers at any baud rate, more than one answers, or the model differs.
        """
        self._require_connected()
        for baud in (list(baudrates) if baudrates is not None else list(STS_BAUDRATES)):
            self.set_baudrate(baud)
            found = self.broadcast_ping()
            if not found:
                continue
            if len(found) > 1:
                raise MotorBusError(f"port {self.port!r}: several motors answered at {baud} bit/s (ids {sorted(found)}); "
                                    "connect exactly one motor", port=self.port)
            motor_id, model_nb = next(iter(found.items()))
            if model_nb != MODEL_NUMBERS[model]:
                raise MotorBusError(f"port {self.port!r}: motor id {motor_id} has model number {model_nb}, expected "
                                    f"{MODEL_NUMBERS[model]} ({model})", port=self.port, motor_id=motor_id)
            return baud, motor_id
        raise MotorBusError(f"port {self.port!r}: no motor answered at any baud rate; is it powered and connected?", port=self.port)

    def setup_motor(self, motor: str, baudrates: Iterable[int] | None = None) -> tuple[int, int]:
        """Give the lone connected motor the id of ``motor`` and the bus baud rate (``self.baudrate``).

        Returns:
            ``(previous baudrate, previous id)`` found on the motor.
        """
        target_baud = self.baudrate
        target_id = self.motors[motor].id
        baud, found_id = self.find_single_motor(self.motors[motor].model, baudrates)
        name = f"new motor (id {found_id})"
        # The motor acknowledges the ID write under its previous id, then answers to the new one.
        for reg, val in (("Torque_Enable", 0), ("Lock", 0), ("ID", target_id)):
            self._write_raw_id(found_id, reg, val, name)
        self._write_raw_id(target_id, "Baud_Rate", STS_BAUDRATES[target_baud], motor)
        self.set_baudrate(target_baud)
        self.ping(motor)
        return baud, found_id
