"""Feetech STS/SMS-series (STS3215) control table and model facts.

Addresses and sizes follow Feetech's STS/SMS memory table (the same values lerobot uses), so a bus built here
talks to SO-100/SO-101 arms exactly as lerobot does. Registers 0–39 live in EPROM (written only while
``Lock`` = 0), 40 and up in SRAM.
"""

from __future__ import annotations

# name: (address, size in bytes)
STS_CONTROL_TABLE: dict[str, tuple[int, int]] = {
    # EPROM
    "Firmware_Major_Version": (0, 1),
    "Firmware_Minor_Version": (1, 1),
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Response_Status_Level": (8, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1),
    "Max_Voltage_Limit": (14, 1),
    "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2),
    "Phase": (18, 1),
    "Unloading_Condition": (19, 1),
    "LED_Alarm_Condition": (20, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Minimum_Startup_Force": (24, 2),
    "CW_Dead_Zone": (26, 1),
    "CCW_Dead_Zone": (27, 1),
    "Protection_Current": (28, 2),
    "Angular_Resolution": (30, 1),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Protective_Torque": (34, 1),
    "Protection_Time": (35, 1),
    "Overload_Torque": (36, 1),
    "Over_Current_Protection_Time": (38, 1),
    # SRAM
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Goal_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Torque_Limit": (48, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
    "Present_Current": (69, 2),
    # factory area
    "Maximum_Acceleration": (85, 1),
}

# Registers stored in sign-magnitude form: name -> index of the sign bit.
STS_SIGN_BITS: dict[str, int] = {"Homing_Offset": 11, "Goal_Velocity": 15, "Present_Velocity": 15}

# Baud rate (bit/s) -> value of the Baud_Rate register.
STS_BAUDRATES: dict[int, int] = {
    1_000_000: 0,
    500_000: 1,
    250_000: 2,
    128_000: 3,
    115_200: 4,
    57_600: 5,
    38_400: 6,
    19_200: 7,
}

MODEL_NUMBERS: dict[str, int] = {"sts3215": 777, "sts3250": 2825}
MODEL_RESOLUTION: dict[str, int] = {"sts3215": 4096, "sts3250": 4096}

# Registers whose values are positions and get calibrated normalization.
POSITION_REGISTERS = ("Goal_Position", "Present_Position")

DEFAULT_BAUDRATE = 1_000_000

# Operating_Mode values.
OPERATING_MODES: dict[str, int] = {"position": 0, "velocity": 1, "pwm": 2, "step": 3}


def register(name: str) -> tuple[int, int]:
    """``(address, size)`` of a control-table register.

    Raises:
        KeyError: naming the unknown register and listing the known ones.
    """
    try:
        return STS_CONTROL_TABLE[name]
    except KeyError:
        raise KeyError(f"unknown STS3215 register {name!r}; known registers: {sorted(STS_CONTROL_TABLE)}") from None
