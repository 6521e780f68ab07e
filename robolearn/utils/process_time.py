"""How long ago the operating system started this process (stdlib only: cheap to import first)."""

from __future__ import annotations

import os


def process_age_s() -> float | None:
    """Seconds since the operating system started this process, interpreter start and imports included.

    Linux only: the start time in ``/proc/self/stat`` (clock ticks since boot) against ``/proc/uptime`` (10 ms
    resolution). Returns None where ``/proc`` cannot be read or parsed (macOS, Windows).
    """
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
        # Fields after the command name (which may hold spaces and parentheses): index 0 is field 3 (state), so
        # field 22 (starttime) is index 19.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"))
