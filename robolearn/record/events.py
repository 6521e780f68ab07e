"""Keyboard events during recording and deployment, as lerobot users know them.

- → (right arrow): end the current episode (or the reset period) early and keep it;
- ← (left arrow): discard the current episode and record it again;
- Esc: stop recording after saving the current episode.

Keys come from the terminal: a daemon thread puts stdin in cbreak mode (no echo, no line buffering) and reads
bytes, so it works over SSH and without a display; the terminal mode is restored on :meth:`KeyboardEvents.stop`
and at exit. When stdin is not a TTY (CI, pipes, pytest) nothing is read. When a display is available and
``pynput`` is importable, its global listener is used instead (keys are then seen without the terminal focus).
:meth:`KeyboardEvents.press` drives the same logic programmatically (tests, GUIs).

Other consumers of keys (:class:`robolearn.teleop.keyboard.KeyboardEndEffectorTeleop`) subscribe to the shared
:class:`TerminalKeyReader` with :meth:`TerminalKeyReader.subscribe`.
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


class KeyboardEvents:
    """Flags set by → / ← / Esc, read by the record and deploy loops.

    Attributes:
        exit_early: end the current loop (episode or reset period) now.
        rerecord_episode: the current episode is to be discarded and recorded again (implies ``exit_early``).
        stop_recording: stop after the current episode (implies ``exit_early``).

    Args:
        listen: read the keyboard (terminal, or pynput with a display). False: only :meth:`press` sets flags.
    """

    def __init__(self, listen: bool = True) -> None:
        self.exit_early = False
        self.rerecord_episode = False
        self.stop_recording = False
        self.listen = listen
        self.source: str | None = None  # "terminal", "pynput" or None
        self._pynput = None

    def press(self, key: str) -> None:
        """Apply a key: ``"right"``, ``"left"`` or ``"esc"`` (other keys are ignored)."""
        if key == RIGHT:
            log.info("→ pressed: ending the episode early")
            self.exit_early = True
        elif key == LEFT:
            log.info("← pressed: the episode will be re-recorded")
            self.rerecord_episode = True
            self.exit_early = True
        elif key == ESC:
            log.info("Esc pressed: stopping after this episode")
            self.stop_recording = True
            self.exit_early = True

    def start_episode(self) -> None:
        """Clear ``exit_early`` and ``rerecord_episode`` (``stop_recording`` stays set)."""
        self.exit_early = False
        self.rerecord_episode = False

    def start(self) -> "KeyboardEvents":
        """Start listening (see the module doc). Returns self."""
        if not self.listen:
            return self
        if os.environ.get("DISPLAY") and self._start_pynput():
            self.source = "pynput"
            return self
        reader = shared_reader()
        reader.subscribe(self.press)
        if reader.start():
            self.source = "terminal"
            log.info("Keyboard: → ends the episode, ← re-records it, Esc stops (type in this terminal)")
        else:
            reader.unsubscribe(self.press)
            log.info("Keyboard events disabled: stdin is not a terminal")
        return self

    def _start_pynput(self) -> bool:
        try:
            from pynput import keyboard
        except Exception:  # not installed, or no usable X server
            return False
        names = {keyboard.Key.right: RIGHT, keyboard.Key.left: LEFT, keyboard.Key.esc: ESC}

        def on_press(key):
            if key in names:
                self.press(names[key])

        self._pynput = keyboard.Listener(on_press=on_press)
        self._pynput.start()
        return True

    def stop(self) -> None:
        """Stop listening and restore the terminal."""
        if self._pynput is not None:
            self._pynput.stop()
            self._pynput = None
        if self.source == "terminal":
            shared_reader().unsubscribe(self.press)
        self.source = None

    def __enter__(self) -> "KeyboardEvents":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
