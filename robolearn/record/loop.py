"""The fixed-rate control loop shared by ``record.py`` (teleoperation), replay and deployment (policies).

One iteration: read the robot's observation, compute an action (teleoperator, policy or replayed dataset), send
it, add the frame (observation before the action, action actually sent, and for simulators the transition's
``next.*``) to the writer, then sleep until the next period. An episode holds ``round(duration_s * fps)`` frames
(fewer when → is pressed or the simulator ends the episode); the writer gives frame ``i`` the timestamp
``i / fps`` s, whatever the wall-clock jitter, as lerobot does.

Timing: :class:`RateKeeper` sleeps with :func:`precise_sleep` (``time.sleep`` until 2 ms before the deadline,
then a busy-wait) against absolute deadlines. An iteration that ends after its deadline is an *overrun*: the
schedule restarts from that moment (no burst of catch-up iterations). :class:`LoopStats` reports the achieved
rate and overruns of each episode, and a warning is logged when the loop ran slower than the dataset fps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

from robolearn.record.frames import make_frame

log = logging.getLogger(__name__)


def precise_sleep(seconds: float, spin_s: float = 0.002) -> None:
    """Sleep ``seconds`` (s) to within tens of microseconds: OS sleep, then a busy-wait for the last ``spin_s``."""
    if seconds <= 0:
        return
    end = time.perf_counter() + seconds
    if seconds > spin_s:
        time.sleep(seconds - spin_s)
    while time.perf_counter() < end:
        pass


@dataclass
class LoopStats:
    """Timing of one loop run.

    Attributes:
        fps: target rate, Hz.
        frames: iterations run.
        duration_s: wall time from the start to the end of the last period, s.
        achieved_hz: ``frames / duration_s``.
        overruns: iterations whose work ended after their deadline.
        max_iteration_s: longest work time of an iteration (without the sleep), s.
    """

    fps: float
    frames: int = 0
    duration_s: float = 0.0
    achieved_hz: float = 0.0
    overruns: int = 0
    max_iteration_s: float = 0.0

    @property
    def slow(self) -> bool:
        """True when the loop ran below 95 % of the target rate."""
        return self.frames > 1 and self.achieved_hz < 0.95 * self.fps

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def report(self, what: str = "episode") -> str:
        """Log (warning when :attr:`slow`) and return a one-line summary."""
        msg = (f"{what}: {self.frames} frames in {self.duration_s:.2f} s = {self.achieved_hz:.1f} Hz "
               f"(target {self.fps:g} Hz), {self.overruns} overruns, slowest iteration {1e3 * self.max_iteration_s:.1f} ms")
        if self.slow:
            log.warning("%s. The loop is slower than the dataset fps: recorded timestamps (frame_index / fps) run "
                        "faster than real time. Lower the fps, the camera resolution, or use streaming encoding.", msg)
        else:
            log.info(msg)
        return msg


class RateKeeper:
    """Hold a loop at ``fps`` iterations per second.

    Call :meth:`start` before the first iteration and :meth:`wait` at the end of each one.

    Args:
        fps: target rate, Hz (> 0).
        clock: monotonic clock in seconds (injectable for tests).
        sleep: ``sleep(seconds)``; default :func:`precise_sleep`.
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = precise_sleep) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.period = 1.0 / float(fps)
        self.clock, self.sleep = clock, sleep
        self.stats = LoopStats(fps=float(fps))
        self._t0 = self._iter_start = self._deadline = 0.0

    def start(self) -> None:
        self._t0 = self._iter_start = self.clock()
        self._deadline = self._t0 + self.period
        self.stats = LoopStats(fps=self.stats.fps)

    def wait(self) -> bool:
        """End an iteration: sleep until its deadline. Returns True when the iteration overran it."""
        now = self.clock()
        work = now - self._iter_start
        s = self.stats
        s.frames += 1
        s.max_iteration_s = max(s.max_iteration_s, work)
        overrun = now > self._deadline
        if overrun:
            s.overruns += 1
            self._deadline = now + self.period
        else:
            self.sleep(self._deadline - now)
            self._deadline += self.period
        self._iter_start = self.clock()
        s.duration_s = self._iter_start - self._t0
        s.achieved_hz = s.frames / s.duration_s if s.duration_s > 0 else 0.0
        return overrun


def no_sleep(seconds: float) -> None:
    """The ``sleep`` of a :class:`RateKeeper` that does not hold real time: a simulator driven by a scripted
    teleoperator runs as fast as it steps (the recorded timestamps are ``frame_index / fps`` either way)."""


def control_loop(robot: Any, action_fn: Callable[[dict[str, Any]], Mapping[str, Any]], fps: float,
                 duration_s: float, *, writer: Any = None, features: Mapping[str, Mapping[str, Any]] | None = None,
                 task: str | None = None, events: Any = None, display: Any = None,
                 rate: RateKeeper | None = None,
                 frame_extra: Callable[[], Mapping[str, Any]] | None = None) -> LoopStats:
    """Run ``robot`` for ``round(duration_s * fps)`` steps at ``fps``, optionally recording every step.

    Args:
        robot: a connected :class:`~robolearn.robots.robot.Robot` (simulated robots also end the loop when their
            env terminates, ``robot.episode_done``).
        action_fn: ``observation -> {action key: float}`` (teleoperator ``get_action``, policy, replay).
        fps: control rate, Hz.
        duration_s: episode length, s (0: no step).
        writer: a :class:`~robolearn.datasets.writer.LeRobotDatasetWriter` to ``add_frame`` to, or None.
        features: the writer's features for building frames (needed with ``writer``).
        task: the frame's ``task`` string (needed with ``writer``).
        events: :class:`~robolearn.record.events.KeyboardEvents`; the loop stops when ``exit_early`` is set.
        display: object with ``log(frame_index, observation, action)`` (live view), or None.
        rate: a :class:`RateKeeper` (default: a new one at ``fps``).
        frame_extra: called after each action; its values for keys of ``features`` are recorded in the frame (e.g.
            the deploy loop's ``intervention`` flag, :meth:`robolearn.record.takeover.TakeoverDriver.frame_extra`).

    Returns:
        The loop's :class:`LoopStats`.

    Raises:
        ValueError / KeyError: from the writer or frame building (a missing key or a wrong shape, naming it).
    """
    if writer is not None and (features is None or not task):
        raise ValueError("control_loop: recording needs the dataset features and a non-empty task")
    n = int(round(duration_s * fps))
    rate = rate or RateKeeper(fps)
    rate.start()
    for i in range(n):
        if events is not None and events.exit_early:
            break
        obs = robot.get_observation()
        sent = robot.send_action(action_fn(obs))
        if writer is not None:
            extra = dict(getattr(robot, "transition", None) or {})
            if frame_extra is not None:
                extra.update(frame_extra())
            writer.add_frame(make_frame(features, obs, sent, task, extra))
        if display is not None:
            display.log(i, obs, sent)
        rate.wait()
        if getattr(robot, "episode_done", False):
            break
    return rate.stats
