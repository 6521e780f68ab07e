"""Fixtures for the hardware tests: a fake Feetech servo chain on a pty and a private calibration folder."""

import pytest

from tests.robots.fake_feetech import FakeFeetechBus


@pytest.fixture
def fake_bus():
    """Six simulated STS3215 (ids 1..6) at tick 2047, behind a pty (``fake_bus.port``)."""
    with FakeFeetechBus() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _calibration_home(tmp_path, monkeypatch):
    """Keep every calibration file of a test under its tmp_path."""
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "calibration"))
