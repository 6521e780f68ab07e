"""FeetechMotorsBus over the real scservo_sdk, talking to simulated servos on a pty."""

import pytest

from robolearn.robots.motors import CalibrationError, FeetechMotorsBus, Motor, MotorBusError, MotorCalibration
from tests.robots.fake_feetech import PACKET_TIMEOUT_MS, FakeFeetechBus, FakeServo, checksum, instruction_packet

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def make_bus(port, **kw):
    return FeetechMotorsBus(port, {n: Motor(i + 1) for i, n in enumerate(NAMES)}, packet_timeout_ms=PACKET_TIMEOUT_MS,
                            **kw)


@pytest.fixture
def bus(fake_bus):
    b = make_bus(fake_bus.port)
    b.connect()
    yield b
    b.disconnect(disable_torque=False)


def test_packet_format():
    # read 2 bytes at 56 from id 1: FF FF 01 04 02 38 02 checksum=~(1+4+2+0x38+2)
    assert instruction_packet(1, 0x02, [56, 2]) == bytes([0xFF, 0xFF, 1, 4, 2, 56, 2, ~(1 + 4 + 2 + 56 + 2) & 0xFF])
    assert checksum([1, 2, 0]) == 0xFC


def test_ping_and_registers(bus, fake_bus):
    assert bus.ping("elbow_flex") == 777
    assert bus.read("ID", "gripper") == 6
    bus.write("Homing_Offset", "wrist_flex", -5)
    assert fake_bus.servo(4).get("Homing_Offset") == 2053  # sign-magnitude, bit 11
    assert bus.read("Homing_Offset", "wrist_flex") == -5
    assert bus.read("Present_Position", "wrist_flex", normalize=False) == 2052  # actual 2047 - (-5)
    bus.write("P_Coefficient", "gripper", 16)
    assert fake_bus.servo(6).get("P_Coefficient") == 16
    with pytest.raises(KeyError, match="unknown STS3215 register 'Goal_Pos'"):
        bus.read("Goal_Pos", "gripper")
    with pytest.raises(ValueError, match="2114 exceeds 2047"):
        bus.write("Homing_Offset", "gripper", 2114)
    with pytest.raises(ValueError, match="does not fit register 'Lock'"):
        bus.write("Lock", "gripper", 300)


def test_sync_read_write_positions(bus, fake_bus):
    for i in range(1, 7):
        fake_bus.servo(i).actual = 1000 + 100 * i
    assert bus.sync_read("Present_Position", normalize=False) == {n: 1100 + 100 * k for k, n in enumerate(NAMES)}
    bus.sync_write("Torque_Enable", 1)
    bus.sync_write("Goal_Position", {"elbow_flex": 2500, "gripper": 3000}, normalize=False)
    assert fake_bus.servo(3).get("Goal_Position") == 2500 and fake_bus.servo(3).actual == 2500
    assert fake_bus.servo(6).actual == 3000
    with pytest.raises(CalibrationError, match="'shoulder_pan'.*no calibration"):
        bus.sync_read("Present_Position")
    bus.calibration = {n: MotorCalibration(i + 1, 0, 0, 1000, 3000) for i, n in enumerate(NAMES)}
    assert bus.sync_read("Present_Position", ["elbow_flex"]) == {"elbow_flex": pytest.approx(500 * 360 / 4095)}
    bus.sync_write("Goal_Position", {"elbow_flex": 0.0})
    assert fake_bus.servo(3).get("Goal_Position") == 2000


def test_timeout_error_names_port_motor_register_after_retries(bus, fake_bus):
    fake_bus.inject(3, "timeout", count=10)
    before = fake_bus.requests[3]
    with pytest.raises(MotorBusError) as e:
        bus.read("Present_Position", "elbow_flex", normalize=False)
    msg = str(e.value)
    assert fake_bus.port in msg and "'elbow_flex' (id 3)" in msg and "'Present_Position'" in msg and "3 attempt" in msg
    assert (e.value.port, e.value.motor_id, e.value.register, e.value.attempts) == (fake_bus.port, 3, "Present_Position", 3)
    assert fake_bus.requests[3] - before == 3  # 1 try + 2 retries
    fake_bus.faults.clear()
    fake_bus.inject(5, "timeout", count=10)
    with pytest.raises(MotorBusError, match=r"sync read of register 'Present_Position' of motor 'wrist_roll' \(id 5\)"):
        bus.sync_read("Present_Position", normalize=False)


def test_bad_checksum_is_retried_then_reported(bus, fake_bus):
    fake_bus.inject(2, "checksum", count=2)
    before = fake_bus.requests[2]
    assert bus.read("ID", "shoulder_lift") == 2  # third attempt succeeds
    assert fake_bus.requests[2] - before == 3
    fake_bus.inject(2, "checksum", count=5)
    with pytest.raises(MotorBusError, match=r"'shoulder_lift' \(id 2\).*Incorrect status packet"):
        bus.sync_read("Present_Position", normalize=False)


def test_missing_motor_and_bad_port(fake_bus):
    del fake_bus.servos[4]
    b = make_bus(fake_bus.port, retries=0)
    with pytest.raises(MotorBusError, match=r"wrist_flex \(id 4\)") as e:
        b.connect()
    assert fake_bus.port in str(e.value) and not b.is_connected
    with pytest.raises(MotorBusError, match="could not open serial port '/dev/does_not_exist'"):
        make_bus("/dev/does_not_exist").connect()


def test_torque_disabled_context(bus, fake_bus):
    bus.enable_torque()
    assert all(fake_bus.servo(i).get("Torque_Enable") == 1 and fake_bus.servo(i).get("Lock") == 1 for i in range(1, 7))
    with pytest.raises(RuntimeError, match="boom"):
        with bus.torque_disabled():
            assert fake_bus.servo(1).get("Torque_Enable") == 0 and fake_bus.servo(1).get("Lock") == 0
            raise RuntimeError("boom")
    assert fake_bus.servo(1).get("Torque_Enable") == 1
    bus.disable_torque()
    bus.set_operating_mode("velocity", ["gripper"])
    assert fake_bus.servo(6).get("Operating_Mode") == 1
    with pytest.raises(ValueError, match="unknown operating mode"):
        bus.set_operating_mode("fast")


def test_half_turn_homing_and_calibration_registers(bus, fake_bus):
    fake_bus.servo(1).actual = 3000
    offsets = bus.set_half_turn_homings(["shoulder_pan"])
    assert offsets == {"shoulder_pan": 953}
    assert bus.read("Present_Position", "shoulder_pan", normalize=False) == 2047
    cal = {"shoulder_pan": MotorCalibration(1, 0, 953, 1200, 2900)}
    bus.write_calibration(cal)
    assert bus.read_calibration()["shoulder_pan"] == cal["shoulder_pan"]
    fake_bus.servo(2).actual = 4095  # offset would be 2048: does not fit
    with pytest.raises(CalibrationError, match="'shoulder_lift'.*4095.*nearer the middle"):
        bus.set_half_turn_homings(["shoulder_lift"])


def test_setup_motor_sets_id_and_baudrate():
    with FakeFeetechBus(motor_ids=[1]) as fake:
        fake.servo(1).set("Baud_Rate", 5)  # a motor left at 57600 bit/s
        b = make_bus(fake.port)
        b.connect(handshake=False)
        try:
            assert b.setup_motor("gripper") == (57_600, 1)
            assert list(fake.servos) == [6]
            assert fake.servo(6).get("ID") == 6 and fake.servo(6).get("Baud_Rate") == 0
            assert b.baudrate == 1_000_000 and b.ping("gripper") == 777
            fake.servos[1] = FakeServo(1)  # two motors connected
            with pytest.raises(MotorBusError, match="several motors answered"):
                b.setup_motor("elbow_flex")
        finally:
            b.disconnect(disable_torque=False)
