"""Human corrections during deployment (DAgger / HG-DAgger, lerobot-rollout's ``dagger`` strategy): a
teleoperator takes over from the policy at any moment and hands control back.

:class:`TakeoverDriver` is the action source of the deploy loop when a teleoperator is configured. Every step it
reads the teleoperator (so a leader arm's pose, or a scripted expert's plan, follows the episode), and it sends
either the policy's action or, while taken over, the teleoperator's. The recorded frame carries the
``intervention`` flag (bool ``(1,)``: True when the teleoperator's action was sent). When control is handed back,
``policy.reset()`` clears the policy's action queue, so the policy plans again from the current observation.

Who takes over:

- a person, with Tab (:class:`robolearn.record.events.KeyboardEvents`: Tab takes over, Tab again hands back);
- in simulation, a scripted trigger standing in for the person (``eval.py ... takeover=<name>``):
  :class:`StepWindows` (fixed steps of every episode) or :class:`Deviation` (the teleoperator, e.g. the scripted
  expert, takes over when the policy's action differs from its own by more than a threshold, for a fixed number of
  steps).

The teleoperator drives while the key is toggled on OR the trigger holds control.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

INTERVENTION = "intervention"
INTERVENTION_FEATURE = {"dtype": "bool", "shape": [1], "names": None}


class StepWindows:
    """Take over during fixed steps of every episode: the teleoperator drives at steps ``start <= t < stop``.

    Args:
        windows: ``[[start, stop], ...]`` episode step indices (0-based, ``0 <= start < stop``).

    Raises:
        ValueError: a window that is not two integers with ``0 <= start < stop`` (names it).
    """

    def __init__(self, windows: Sequence[Sequence[int]]) -> None:
        out = []
        for w in windows:
            w = list(w)
            if len(w) != 2 or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in w) \
                    or not 0 <= w[0] < w[1]:
                raise ValueError(f"takeover windows must be [start, stop] step indices with 0 <= start < stop, got {w}")
            out.append((int(w[0]), int(w[1])))
        self.windows = out

    def reset(self) -> None:
        """Start of an episode (no state)."""

    def _inside(self, step: int) -> bool:
        return any(a <= step < b for a, b in self.windows)

    def take_over(self, step: int, policy_action: Mapping[str, float], teleop_action: Mapping[str, float]) -> bool:
        """Whether the teleoperator takes over at ``step`` (the policy drove the previous step)."""
        return self._inside(step)

    def hand_back(self, step: int, teleop_action: Mapping[str, float]) -> bool:
        """Whether control returns to the policy at ``step`` (the teleoperator drove the previous step)."""
        return not self._inside(step)


class Deviation:
    """Take over when the policy's action differs from the teleoperator's for ``patience`` steps in a row, and keep
    control ``hold_steps`` steps.

    The deviation is ``max_k |policy[k] - teleop[k]|`` over the action keys, in the robot's action units (for the
    SO-101 sim: position deltas in [-1, 1] and the gripper in [0, 1]). A non-finite policy action always takes over
    at once, whatever ``patience``. Meant for a scripted expert as the teleoperator (``teleop=scripted``): its action
    is what a person would do. ``patience = 1`` takes over at the first deviating step; a larger value plays a person
    who lets the policy err for a moment before correcting it (HIL-SERL's operator intervenes when the robot goes
    astray, not at every imprecise action), so a policy that deviates pays for it in time and progress.

    Args:
        threshold: deviation above which a step counts as deviating (> 0, action units).
        hold_steps: steps the teleoperator keeps control once it took over (>= 1).
        patience: consecutive deviating policy steps before the teleoperator takes over (>= 1); the policy's
            action of those steps is executed.

    Raises:
        ValueError: a non-positive or non-finite threshold, ``hold_steps < 1`` or ``patience < 1``.
    """

    def __init__(self, threshold: float, hold_steps: int = 10, patience: int = 1) -> None:
        if not (math.isfinite(float(threshold)) and float(threshold) > 0):
            raise ValueError(f"takeover threshold must be a finite number > 0, got {threshold}")
        if int(hold_steps) < 1:
            raise ValueError(f"takeover hold_steps must be >= 1, got {hold_steps}")
        if int(patience) < 1:
            raise ValueError(f"takeover patience must be >= 1, got {patience}")
        self.threshold, self.hold_steps, self.patience = float(threshold), int(hold_steps), int(patience)
        self._until = -1
        self._streak = 0

    def reset(self) -> None:
        """Start of an episode: the policy has control."""
        self._until = -1
        self._streak = 0

    @staticmethod
    def deviation(policy_action: Mapping[str, float], teleop_action: Mapping[str, float]) -> float:
        """``max |policy - teleop|`` over the teleoperator's action keys (``inf`` when a value is not finite)."""
        d = [abs(float(policy_action[k]) - float(teleop_action[k])) for k in teleop_action]
        return max(d) if all(math.isfinite(x) for x in d) else math.inf

    def take_over(self, step: int, policy_action: Mapping[str, float], teleop_action: Mapping[str, float]) -> bool:
        """Whether the teleoperator takes over at ``step``: the deviation exceeded the threshold on ``patience``
        consecutive policy steps ending at ``step`` (or is not finite); control is then held until
        ``step + hold_steps``."""
        d = self.deviation(policy_action, teleop_action)
        self._streak = self._streak + 1 if d > self.threshold else 0
        if self._streak >= self.patience or not math.isfinite(d):
            self._until = step + self.hold_steps
            self._streak = 0
            return True
        return False

    def hand_back(self, step: int, teleop_action: Mapping[str, float]) -> bool:
        """Whether ``hold_steps`` steps have passed since the takeover."""
        return step >= self._until


class TakeoverDriver:
    """The deploy loop's action source with a teleoperator: the policy's action, or the teleoperator's while it holds
    control (see the module doc).

    Args:
        policy_act: ``observation -> {action key: float}`` running the policy
            (:func:`robolearn.record.deploy.policy_action_fn`).
        policy_reset: called when control is handed back (``policy.reset``: clears its action queue).
        teleop: a connected teleoperator whose action keys are the robot's.
        events: :class:`~robolearn.record.events.KeyboardEvents` whose ``takeover`` flag (Tab) a person toggles, or
            None.
        trigger: a scripted trigger (:class:`StepWindows`, :class:`Deviation`, or anything with ``reset()``,
            ``take_over(step, policy_action, teleop_action)`` and ``hand_back(step, teleop_action)``), or None.

    Attributes:
        intervention: whether the teleoperator's action was sent at the last call.
        takeovers: takeovers in the current episode.
        intervention_steps: steps driven by the teleoperator in the current episode.
    """

    def __init__(self, policy_act: Callable[[Mapping[str, Any]], dict[str, float]], policy_reset: Callable[[], Any],
                 teleop: Any, events: Any = None, trigger: Any = None) -> None:
        self.policy_act, self.policy_reset = policy_act, policy_reset
        self.teleop, self.events, self.trigger = teleop, events, trigger
        self.reset()

    def reset(self) -> None:
        """Start of an episode: the policy has control (call after ``policy.reset()`` and the robot's reset)."""
        self.step = 0
        self.intervention = False
        self.takeovers = 0
        self.intervention_steps = 0
        if self.trigger is not None:
            self.trigger.reset()

    def _key(self) -> bool:
        return bool(self.events is not None and getattr(self.events, "takeover", False))

    def __call__(self, observation: Mapping[str, Any]) -> dict[str, float]:
        """The action to send for ``observation`` (``{action key: float}``); sets :attr:`intervention`."""
        step = self.step
        teleop_action = self.teleop.get_action(observation)
        if self.intervention and not self._key() and (self.trigger is None or self.trigger.hand_back(step, teleop_action)):
            self.intervention = False
            self.policy_reset()
            log.info("step %d: control handed back to the policy", step)
        if not self.intervention:
            if self._key():
                self.intervention = True
            else:
                action = self.policy_act(observation)
                self.intervention = self.trigger is not None and self.trigger.take_over(step, action, teleop_action)
            if self.intervention:
                self.takeovers += 1
                log.info("step %d: the teleoperator takes over", step)
        self.step += 1
        if self.intervention:
            self.intervention_steps += 1
            return dict(teleop_action)
        return action

    def frame_extra(self) -> dict[str, np.ndarray]:
        """The recorded frame's ``intervention`` value for the last action (bool ``(1,)``)."""
        return {INTERVENTION: np.asarray([self.intervention], bool)}


class CorrectionsOnlyWriter:
    """A dataset writer that keeps only the frames a teleoperator drove (``dataset.record_autonomous=false``).

    Frames whose ``intervention`` is False are dropped; each uninterrupted run of teleoperated frames is saved as
    its own episode at the first policy frame after it (a hand-back followed by a new takeover at the same step
    continues the run). Everything else is the wrapped writer's
    (:class:`~robolearn.datasets.writer.LeRobotDatasetWriter`): the deploy loop's ``save_episode`` at the end of an
    episode saves a takeover still in progress; ← (``clear_episode_buffer``) discards only that one.

    Args:
        writer: the writer to add the kept frames to; its features must include ``intervention``.

    Raises:
        ValueError: the writer has no ``intervention`` feature.
    """

    def __init__(self, writer: Any) -> None:
        if INTERVENTION not in writer.features:
            raise ValueError(f"recording only corrections needs the '{INTERVENTION}' feature in the dataset; "
                             f"its features: {sorted(writer.features)}")
        self.writer = writer

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Add ``frame`` if the teleoperator drove it; save the buffered takeover when a policy frame follows it."""
        if bool(np.asarray(frame[INTERVENTION]).reshape(-1)[0]):
            self.writer.add_frame(frame)
        elif self.writer.num_buffered_frames:
            self.writer.save_episode()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["writer"], name)
