"""Sign-magnitude encoding used by some Feetech registers (e.g. ``Homing_Offset``, sign bit 11).

The servo stores ``|v|`` in the bits below ``sign_bit`` and sets ``sign_bit`` for negative values
(−5 with sign bit 11 is ``0x800 | 5`` = 2053).
"""

from __future__ import annotations


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """Signed int -> register value.

    Raises:
        ValueError: when ``|value|`` does not fit below the sign bit (``> 2**sign_bit - 1``), e.g. a
            ``Homing_Offset`` of 2114 (limit 2047).
    """
    value = int(value)
    limit = (1 << sign_bit) - 1
    if abs(value) > limit:
        raise ValueError(f"magnitude of {value} exceeds {limit}, the largest value with sign bit {sign_bit}")
    return (-value | (1 << sign_bit)) if value < 0 else value


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    """Register value -> signed int (inverse of :func:`encode_sign_magnitude`)."""
    raw = int(raw)
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw & (1 << sign_bit) else magnitude
