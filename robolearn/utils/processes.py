"""Process facts shared by the code that cleans up after hard-killed writers."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists on this machine (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["pid_alive"]
