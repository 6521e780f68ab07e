"""User feedback while recording: spoken/printed event messages and the rerun live view."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)


def speech_command(text: str) -> list[str] | None:
    """The command that speaks ``text`` on this machine (macOS ``say``, ``spd-say``, ``espeak-ng``/``espeak``,
    Windows PowerShell), or None when no speech engine is installed."""
    if sys.platform == "darwin" and shutil.which("say"):
        return ["say", text]
    for exe in ("spd-say", "espeak-ng", "espeak"):
        if shutil.which(exe):
            return [exe, text]
    if sys.platform == "win32" and shutil.which("powershell"):
        return ["powershell", "-Command", f"Add-Type -AssemblyName System.Speech; "
                f"(New-Object System.Speech.Synthesis.SpeechSynthesizer).Speak('{text}')"]
    return None


def say(text: str, play_sounds: bool = True) -> None:
    """Log ``text`` and, with ``play_sounds``, speak it without blocking (printed only when no engine exists)."""
    log.info(text)
    if not play_sounds:
        return
    cmd = speech_command(text)
    if cmd is None:
        print(f"[record] {text}", flush=True)
        return
    try:
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as e:  # engine present but broken: keep recording
        log.warning("could not speak %r with %s: %s", text, cmd[0], e)


class RerunDisplay:
    """Live view of observations and actions with rerun-sdk.

    ``rr.init(app, spawn=False)``; then, with ``save``, the stream goes to that ``.rrd`` file (headless machines;
    open it later with ``rerun file.rrd``), else a viewer is spawned when a display is available, and otherwise
    the stream is saved to ``fallback_save``.

    Args:
        app: rerun application id.
        save: ``.rrd`` path, or None.
        fallback_save: ``.rrd`` path used when there is no display and no ``save``.
    """

    def __init__(self, app: str = "robolearn_record", save: str | os.PathLike | None = None,
                 fallback_save: str | os.PathLike | None = None) -> None:
        import rerun as rr

        self.rr = rr
        rr.init(app, spawn=False)
        has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin")
        target = save if save is not None else (None if has_display else fallback_save)
        if target is not None:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            rr.save(str(target))
            log.info("rerun stream saved to %s (view it with `rerun %s`)", target, target)
        else:
            rr.spawn()
        self.path = None if target is None else Path(target)
        self.episode = 0

    def log(self, frame_index: int, observation: Mapping[str, Any], action: Mapping[str, Any]) -> None:
        rr = self.rr
        rr.set_time("frame_index", sequence=int(frame_index))
        for key, value in observation.items():
            if isinstance(value, np.ndarray) and value.ndim == 3:
                rr.log(f"observation/{key}", rr.Image(value))
            else:
                rr.log(f"observation/{key}", rr.Scalars(float(value)))
        for key, value in action.items():
            rr.log(f"action/{key}", rr.Scalars(float(value)))

    def close(self) -> None:
        self.rr.disconnect()
