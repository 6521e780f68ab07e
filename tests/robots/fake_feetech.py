"""A simulated Feetech STS3215 servo chain behind a pseudo-terminal, for offline tests of the real SDK path.

The test opens the pty's slave path with ``scservo_sdk.PortHandler`` (through ``FeetechMotorsBus``); a thread
reads instruction packets on the master side and answers like the servos would (protocol 0: ping, read,
write, sync read 0x82, sync write 0x83, broadcast ping), with status packets ``0xFF 0xFF id len error
data... checksum``. Each motor has a 256-byte register memory; ``Present_Position`` is derived from the
simulated shaft position (``actual − Homing_Offset`` modulo 4096) and a ``Goal_Position`` write with torque on
moves the shaft there at once. Faults can be injected per motor: no answer (timeout) or a bad checksum.
"""

from __future__ import annotations

import os
import select
import termios
import threading
import tty
from collections import Counter, defaultdict

from robolearn.robots.motors.encoding import decode_sign_magnitude
from robolearn.robots.motors.tables import STS_BAUDRATES, STS_CONTROL_TABLE

# Status-packet timeout for buses talking to the fake: generous, so a loaded CI machine (the fake answers from a
# Python thread) is not mistaken for a silent motor; tests of real timeouts inject them instead.
PACKET_TIMEOUT_MS = 150

PING, READ, WRITE, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
BROADCAST = 0xFE
_SPEEDS = {getattr(termios, f"B{b}"): b for b in STS_BAUDRATES if hasattr(termios, f"B{b}")}


def checksum(body: list[int] | bytes) -> int:
    """``~sum(id, len, instr/error, params...) & 0xFF``."""
    return ~sum(body) & 0xFF


def instruction_packet(motor_id: int, instr: int, params: list[int]) -> bytes:
    body = [motor_id, len(params) + 2, instr, *params]
    return bytes([0xFF, 0xFF, *body, checksum(body)])


class FakeServo:
    """Register memory and shaft of one simulated STS3215."""

    def __init__(self, motor_id: int, model_number: int = 777, position: int = 2047) -> None:
        self.mem = bytearray(256)
        self.set("Model_Number", model_number)
        self.set("ID", motor_id)
        self.set("Baud_Rate", 0)
        self.set("Return_Delay_Time", 250)
        self.set("Max_Position_Limit", 4095)
        self.set("Lock", 1)
        self.actual = position

    def get(self, name: str) -> int:
        addr, size = STS_CONTROL_TABLE[name]
        return int.from_bytes(self.mem[addr:addr + size], "little")

    def set(self, name: str, value: int) -> None:
        addr, size = STS_CONTROL_TABLE[name]
        self.mem[addr:addr + size] = int(value).to_bytes(size, "little")

    @property
    def id(self) -> int:
        return self.mem[STS_CONTROL_TABLE["ID"][0]]

    @property
    def homing_offset(self) -> int:
        return decode_sign_magnitude(self.get("Homing_Offset"), 11)

    def read(self, addr: int, size: int) -> bytes:
        present = (self.actual - self.homing_offset) % 4096
        self.set("Present_Position", present)
        return bytes(self.mem[addr:addr + size])

    def write(self, addr: int, data: bytes) -> None:
        self.mem[addr:addr + len(data)] = data
        goal_addr = STS_CONTROL_TABLE["Goal_Position"][0]
        if addr <= goal_addr < addr + len(data) and self.get("Torque_Enable"):
            goal = min(max(self.get("Goal_Position"), self.get("Min_Position_Limit")), self.get("Max_Position_Limit"))
            self.actual = (goal + self.homing_offset) % 4096


class FakeFeetechBus:
    """Servos on a pty. Use as a context manager; ``port`` is the path to give ``FeetechMotorsBus``.

    Attributes:
        servos: ``{id: FakeServo}`` (re-keyed when an ``ID`` register is written).
        requests: ``Counter`` of instruction packets addressed to each id (sync reads count once per listed id).
    """

    def __init__(self, motor_ids=(1, 2, 3, 4, 5, 6), positions: dict[int, int] | None = None) -> None:
        self.servos = {i: FakeServo(i, position=(positions or {}).get(i, 2047)) for i in motor_ids}
        self.requests: Counter = Counter()
        self.faults: dict[int, list[str]] = defaultdict(list)
        self.bad_packets = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._buf = bytearray()
        self._busy = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fake-feetech", daemon=True)

    # -- test controls
    def inject(self, motor_id: int, kind: str, count: int = 1) -> None:
        """Make the next ``count`` answers of ``motor_id`` fail: ``"timeout"`` (no answer) or ``"checksum"``."""
        assert kind in ("timeout", "checksum")
        self.faults[motor_id].extend([kind] * count)

    def servo(self, motor_id: int) -> FakeServo:
        """The servo with ``motor_id`` after every packet sent so far was handled (see :meth:`wait_idle`)."""
        self.wait_idle()
        return self.servos[motor_id]

    def wait_idle(self, timeout_s: float = 2.0) -> None:
        """Return once every byte the host wrote has been read and handled (sync writes get no answer, so a
        test must wait for the servos to apply them)."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._busy:
                pending, _, _ = select.select([self._master], [], [], 0)
                if not pending:
                    return
            time.sleep(0.001)
        raise TimeoutError("fake Feetech bus did not become idle")

    # -- lifecycle
    def __enter__(self) -> "FakeFeetechBus":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- protocol
    def _host_baud(self) -> int | None:
        return _SPEEDS.get(termios.tcgetattr(self._slave)[5])

    def _answers(self, servo: FakeServo) -> bool:
        baud = {v: k for k, v in STS_BAUDRATES.items()}.get(servo.get("Baud_Rate"))
        return baud == self._host_baud()

    def _status(self, servo_id: int, params: bytes = b"", error: int = 0) -> bytes:
        body = [servo_id, len(params) + 2, error, *params]
        fault = self.faults[servo_id].pop(0) if self.faults.get(servo_id) else None
        if fault == "timeout":
            return b""
        chk = checksum(body)
        if fault == "checksum":
            chk ^= 0x5A
        return bytes([0xFF, 0xFF, *body, chk])

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if not ready:
                continue
            with self._busy:
                try:
                    chunk = os.read(self._master, 1024)
                except OSError:
                    return
                self._buf.extend(chunk)
                self._parse()

    def _parse(self) -> None:
        buf = self._buf
        while True:
            start = buf.find(b"\xff\xff")
            if start < 0:
                del buf[:-1]
                return
            del buf[:start]
            if len(buf) < 4:
                return
            total = buf[3] + 4
            if len(buf) < total:
                return
            packet = bytes(buf[:total])
            del buf[:total]
            if checksum(packet[2:-1]) != packet[-1]:
                self.bad_packets += 1
                continue
            out = self._handle(packet[2], packet[4], packet[5:-1])
            if out:
                os.write(self._master, out)

    def _handle(self, motor_id: int, instr: int, params: bytes) -> bytes:
        if instr == SYNC_READ:
            addr, size, ids = params[0], params[1], params[2:]
            out = b""
            for i in ids:
                self.requests[i] += 1
                s = self.servos.get(i)
                if s is not None and self._answers(s):
                    out += self._status(i, s.read(addr, size))
            return out
        if instr == SYNC_WRITE:
            addr, size = params[0], params[1]
            body = params[2:]
            for k in range(0, len(body), size + 1):
                i = body[k]
                self.requests[i] += 1
                s = self.servos.get(i)
                if s is not None and self._answers(s):
                    s.write(addr, body[k + 1:k + 1 + size])
            return b""
        if motor_id == BROADCAST and instr == PING:
            return b"".join(self._status(s.id) for s in list(self.servos.values()) if self._answers(s))
        self.requests[motor_id] += 1
        s = self.servos.get(motor_id)
        if s is None or not self._answers(s):
            return b""
        if instr == PING:
            return self._status(motor_id)
        if instr == READ:
            return self._status(motor_id, s.read(params[0], params[1]))
        if instr == WRITE:
            reply = self._status(motor_id)
            s.write(params[0], params[1:])
            if s.id != motor_id:  # ID changed: re-key, the acknowledgement went out under the old id
                self.servos[s.id] = self.servos.pop(motor_id)
            return reply
        return self._status(motor_id, error=0x40)  # unknown instruction
