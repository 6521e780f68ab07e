"""Keys from the terminal, for any loop that a person steers from the keyboard (recording, teleoperation,
human interventions in RL).

A daemon thread puts stdin in cbreak mode (no echo, no line buffering) and reads bytes, so it works over SSH and
without a display; the terminal mode is restored on :meth:`TerminalKeyReader.stop` and at exit. When stdin is not
a TTY (CI, pipes, pytest) nothing is read. Consumers subscribe a callback that receives key names
(:func:`parse_keys`): ``"right"``, ``"left"``, ``"up"``, ``"down"``, ``"esc"`` or the character itself. One
process-wide reader (:func:`shared_reader`) serves every consumer.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import sys
import threading
from typing import Callable

log = logging.getLogger(__name__)

RIGHT, LEFT, ESC = "right", "left", "esc"
_ESCAPES = {b"\x1b[C": RIGHT, b"\x1b[D": LEFT, b"\x1b[A": "up", b"\x1b[B": "down",
            b"\x1bOC": RIGHT, b"\x1bOD": LEFT, b"\x1bOA": "up", b"\x1bOB": "down"}


def parse_keys(data: bytes) -> list[str]:
    """Split raw terminal bytes into key names: ``"right"``/``"left"``/``"up"``/``"down"`` for arrow escape
    sequences, ``"esc"`` for a lone ESC byte, otherwise the character itself (``"w"``, ``" "``)."""
    keys, i = [], 0
    while i < len(data):
        if data[i:i + 1] == b"\x1b":
            seq = data[i:i + 3]
            if seq in _ESCAPES:
                keys.append(_ESCAPES[seq])
                i += 3
                continue
            keys.append(ESC)
            i += 1
            continue
        keys.append(chr(data[i]))
        i += 1
    return keys


class TerminalKeyReader:
    """Read keys from stdin in cbreak mode in a daemon thread and call every subscriber with each key name.

    ``start`` does nothing (returns False) when stdin is not a TTY or ``termios`` is unavailable. One reader per
    process: use :func:`shared_reader`.
    """

    def __init__(self) -> None:
        self._subs: list[Callable[[str], None]] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._saved = None
        self._fd: int | None = None
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[str], None]) -> None:
        with self._lock:
            if callback not in self._subs:
                self._subs.append(callback)

    def unsubscribe(self, callback: Callable[[str], None]) -> None:
        with self._lock:
            if callback in self._subs:
                self._subs.remove(callback)
            empty = not self._subs
        if empty:
            self.stop()

    def dispatch(self, key: str) -> None:
        with self._lock:
            subs = list(self._subs)
        for cb in subs:
            cb(key)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start reading the terminal; False when stdin is not an interactive terminal."""
        if self.running:
            return True
        try:
            import termios
            import tty
        except ImportError:  # Windows
            return False
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            return False
        if not os.isatty(fd):
            return False
        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        atexit.register(self.stop)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="terminal-keys", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(self._fd, 32)
            if data == b"\x1b":  # maybe the start of an escape sequence split across reads
                more, _, _ = select.select([self._fd], [], [], 0.02)
                if more:
                    data += os.read(self._fd, 32)
            for key in parse_keys(data):
                self.dispatch(key)

    def stop(self) -> None:
        """Stop the thread and restore the terminal mode. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._saved is not None and self._fd is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None


_SHARED: TerminalKeyReader | None = None


def shared_reader() -> TerminalKeyReader:
    """The process-wide :class:`TerminalKeyReader`."""
    global _SHARED
    if _SHARED is None:
        _SHARED = TerminalKeyReader()
    return _SHARED

