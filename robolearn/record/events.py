"""Keyboard events during recording and deployment, as lerobot users know them.

- → (right arrow): end the current episode (or the reset period) early and keep it;
- ← (left arrow): discard the current episode and record it again;
- Esc: stop recording after saving the current episode;
- Tab: during deployment with a teleoperator (``eval.py robot=... teleop=...``), take over from the policy; Tab
  again hands control back (lerobot-rollout's DAgger strategy uses Tab for corrections too). Space is not used
  because ``teleop=keyboard`` toggles its gripper with it.

Keys come from the terminal (:mod:`robolearn.utils.terminal_keys`: works over SSH and without a display; the
terminal mode is restored on :meth:`KeyboardEvents.stop` and at exit). When stdin is not a TTY (CI, pipes,
pytest) nothing is read. When a display is available and
``pynput`` is importable, its global listener is used instead (keys are then seen without the terminal focus).
:meth:`KeyboardEvents.press` drives the same logic programmatically (tests, GUIs).

Other consumers of keys (:class:`robolearn.teleop.keyboard.KeyboardEndEffectorTeleop`) subscribe to the same
shared reader.
"""

from __future__ import annotations

import logging
import os

from robolearn.utils.terminal_keys import ESC, LEFT, RIGHT, shared_reader

TAB = "\t"

log = logging.getLogger(__name__)


class KeyboardEvents:
    """Flags set by → / ← / Esc / Tab, read by the record and deploy loops.

    Attributes:
        exit_early: end the current loop (episode or reset period) now.
        rerecord_episode: the current episode is to be discarded and recorded again (implies ``exit_early``).
        stop_recording: stop after the current episode (implies ``exit_early``).
        takeover: a person holds control (toggled by Tab; read by the deploy loop, cleared at every episode start).

    Args:
        listen: read the keyboard (terminal, or pynput with a display). False: only :meth:`press` sets flags.
    """

    def __init__(self, listen: bool = True) -> None:
        self.exit_early = False
        self.rerecord_episode = False
        self.stop_recording = False
        self.takeover = False
        self.listen = listen
        self.source: str | None = None  # "terminal", "pynput" or None
        self._pynput = None

    def press(self, key: str) -> None:
        """Apply a key: ``"right"``, ``"left"``, ``"esc"`` or ``"\\t"`` (Tab); other keys are ignored."""
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
        elif key == TAB:
            self.takeover = not self.takeover
            log.info("Tab pressed: %s", "the teleoperator takes over" if self.takeover else "control handed back "
                     "to the policy")

    def start_episode(self) -> None:
        """Clear ``exit_early``, ``rerecord_episode`` and ``takeover`` (``stop_recording`` stays set)."""
        self.exit_early = False
        self.rerecord_episode = False
        self.takeover = False

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
            log.info("Keyboard: → ends the episode, ← re-records it, Esc stops, Tab takes over / hands back "
                     "when deploying with a teleoperator (type in this terminal)")
        else:
            reader.unsubscribe(self.press)
            log.info("Keyboard events disabled: stdin is not a terminal")
        return self

    def _start_pynput(self) -> bool:
        try:
            from pynput import keyboard
        except Exception:  # not installed, or no usable X server
            return False
        names = {keyboard.Key.right: RIGHT, keyboard.Key.left: LEFT, keyboard.Key.esc: ESC, keyboard.Key.tab: TAB}

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
