"""Human interventions for HIL-SERL (Luo et al. 2024, Sec. III-B): while the human holds control, their action
replaces the policy's and the transition is flagged ``complementary_info.is_intervention = 1``; the learner puts
such transitions in both the online and the offline (demonstration) buffer.

One interface, :class:`InterventionSource`: ``intervene(observation)`` returns the human's action (an array in the
env's action space) while they are in control, else None. Implementations:

- :class:`TeleopIntervention`: any :class:`~robolearn.teleop.teleoperator.Teleoperator` (a leader arm such as
  ``robolearn.teleop.so_leader.SOLeader``), takeover toggled by a key typed in the terminal (works over SSH and
  headless, :mod:`robolearn.utils.terminal_keys`);
- :class:`KeyboardIntervention`: terminal keys drive the action (``w``/``s`` axis 0, ``a``/``d`` axis 1, ``r``/``f``
  axis 2, space the gripper), ``i`` toggles the takeover;
- :class:`GamepadIntervention`: a pygame joystick; hold a button to take over, sticks give the action;
- :class:`ScriptedIntervention`: a scripted expert (e.g. :class:`~robolearn.envs.planar_arm.PlanarReachPD`) takes
  over at given episode steps or at random, for tests and for simulated "humans".
"""

from __future__ import annotations

import abc
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np


class InterventionSource(abc.ABC):
    """Where a human (or a script standing in for one) takes over the actor's actions."""

    def bind(self, env: Any) -> None:
        """Called once by the actor with its (wrapped) env; sources that read the simulator keep it."""

    def connect(self) -> None:
        """Open devices / start listening."""

    def disconnect(self) -> None:
        """Release devices. Safe to call twice."""

    def reset(self) -> None:
        """Called after every env reset, before the episode's first step."""

    @abc.abstractmethod
    def intervene(self, observation: Mapping[str, Any]) -> np.ndarray | None:
        """The human's action ``(A,)`` float32 in the env's action units while they are in control, else None.

        Args:
            observation: the actor's observation ``{dataset key: tensor (1, ...)}`` the action is taken from.
        """

    def __enter__(self) -> "InterventionSource":
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()


class ToggledIntervention(InterventionSource):
    """A source whose takeover is switched on and off by a terminal key (``toggle_key``) or :meth:`toggle`.

    Args:
        toggle_key: key that starts / ends a takeover.
        listen: read the terminal on :meth:`connect` (False: call :meth:`press` / :meth:`toggle`, e.g. in tests).
    """

    def __init__(self, toggle_key: str = "i", listen: bool = True) -> None:
        self.toggle_key, self.listen = str(toggle_key), bool(listen)
        self.active = False
        self._lock = threading.Lock()

    def toggle(self) -> None:
        """Start a takeover if none is running, else end it."""
        with self._lock:
            self.active = not self.active

    def press(self, key: str) -> None:
        """Handle one key name (from :func:`robolearn.utils.terminal_keys.parse_keys`)."""
        if key == self.toggle_key:
            self.toggle()

    def connect(self) -> None:
        if self.listen:
            from robolearn.utils.terminal_keys import shared_reader

            reader = shared_reader()
            reader.subscribe(self.press)
            reader.start()

    def disconnect(self) -> None:
        if self.listen:
            from robolearn.utils.terminal_keys import shared_reader

            shared_reader().unsubscribe(self.press)


class TeleopIntervention(ToggledIntervention):
    """A teleoperator (leader arm, keyboard teleop) as the intervention device; ``toggle_key`` starts/ends takeover.

    Args:
        teleop: a :class:`~robolearn.teleop.teleoperator.Teleoperator`; its ``get_action()`` values (in
            ``action_keys`` order) form the action, so they must be in the env's action units (e.g. a leader arm's
            joint positions for a joint-position env).
        action_keys: which teleop action keys, in env action order (default: all, in ``teleop.action_features``
            order).
        toggle_key, listen: see :class:`ToggledIntervention`.

    Raises:
        KeyError (from :meth:`intervene`): the teleop's action lacks one of ``action_keys``.
    """

    def __init__(self, teleop: Any, action_keys: Sequence[str] | None = None, toggle_key: str = "i",
                 listen: bool = True) -> None:
        super().__init__(toggle_key, listen)
        self.teleop = teleop
        self.action_keys = list(action_keys) if action_keys is not None else list(teleop.action_features)

    def connect(self) -> None:
        if not self.teleop.is_connected:
            self.teleop.connect()
        super().connect()

    def disconnect(self) -> None:
        super().disconnect()
        if self.teleop.is_connected:
            self.teleop.disconnect()

    def intervene(self, observation: Mapping[str, Any]) -> np.ndarray | None:
        action = self.teleop.get_action()  # read every step so deltas do not pile up while the policy acts
        if not self.active:
            return None
        missing = [k for k in self.action_keys if k not in action]
        if missing:
            raise KeyError(f"teleop {getattr(self.teleop, 'name', type(self.teleop).__name__)} gives {sorted(action)}, "
                           f"missing intervention action keys {missing}")
        return np.asarray([float(action[k]) for k in self.action_keys], dtype=np.float32)


class KeyboardIntervention(TeleopIntervention):
    """Terminal-key intervention: :class:`~robolearn.teleop.keyboard.KeyboardEndEffectorTeleop` deltas (``w/s``,
    ``a/d``, ``r/f``, space = gripper) for the first action dimensions, ``i`` toggles the takeover.

    Args:
        action_dim: number of env action dimensions (1..4; 4 includes the gripper command).
        step: action change per key press, in (0, 1] of the action range.
        toggle_key, listen: see :class:`ToggledIntervention`.

    Raises:
        ValueError: ``action_dim`` outside 1..4, or a toggle key that is also a motion key.
    """

    def __init__(self, action_dim: int, step: float = 1.0, toggle_key: str = "i", listen: bool = True) -> None:
        from robolearn.teleop.keyboard import KEYMAP, KeyboardEndEffectorTeleop

        if not 1 <= int(action_dim) <= 4:
            raise ValueError(f"KeyboardIntervention drives 1..4 action dimensions (x, y, z, gripper), got {action_dim}")
        if toggle_key in KEYMAP or toggle_key == " ":
            raise ValueError(f"toggle_key {toggle_key!r} is a motion key of the keyboard teleop; pick another")
        teleop = KeyboardEndEffectorTeleop(step=step, listen=False)
        super().__init__(teleop, teleop.action_names[: int(action_dim)], toggle_key, listen)

    def press(self, key: str) -> None:
        super().press(key)
        self.teleop.press(key)


class GamepadIntervention(InterventionSource):
    """A gamepad read with pygame: hold ``intervention_button`` to take over; ``axes[i]`` (in [-1, 1], times
    ``scale[i]``, sign-flipped where ``invert[i]``) gives action dimension ``i``; values within ``deadzone`` are 0.

    Args:
        axes: joystick axis index per action dimension (e.g. ``[1, 0]``: left stick vertical, horizontal).
        intervention_button: button index held to intervene (5 = right bumper on Xbox-layout pads).
        scale: per-dimension multiplier (default 1).
        invert: per-dimension sign flip (default none; pygame's vertical axes point down).
        deadzone: stick values with ``|v| < deadzone`` read as 0.
        joystick_index: which pad.

    Raises:
        ImportError (on :meth:`connect`): pygame is not installed (``pip install pygame``).
        RuntimeError (on :meth:`connect`): no gamepad is plugged in.
        ValueError: ``scale``/``invert`` lengths differ from ``axes``.
    """

    def __init__(self, axes: Sequence[int], intervention_button: int = 5, scale: Sequence[float] | None = None,
                 invert: Sequence[bool] | None = None, deadzone: float = 0.1, joystick_index: int = 0) -> None:
        self.axes = [int(a) for a in axes]
        self.scale = np.asarray(scale if scale is not None else [1.0] * len(self.axes), dtype=np.float32)
        self.invert = np.asarray(invert if invert is not None else [False] * len(self.axes), dtype=bool)
        if len(self.scale) != len(self.axes) or len(self.invert) != len(self.axes):
            raise ValueError(f"scale ({len(self.scale)}) and invert ({len(self.invert)}) need one entry per axis "
                             f"({len(self.axes)})")
        self.intervention_button = int(intervention_button)
        self.deadzone = float(deadzone)
        self.joystick_index = int(joystick_index)
        self._pygame = None
        self._joystick = None

    def connect(self) -> None:
        try:
            import os

            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no window needed to read a joystick
            import pygame
        except ImportError as e:
            raise ImportError("GamepadIntervention needs pygame: pip install pygame") from e
        pygame.init()
        pygame.joystick.init()
        if pygame.joystick.get_count() <= self.joystick_index:
            raise RuntimeError(f"no gamepad at index {self.joystick_index}: pygame sees "
                               f"{pygame.joystick.get_count()} joystick(s); plug one in or use KeyboardIntervention")
        self._pygame = pygame
        self._joystick = pygame.joystick.Joystick(self.joystick_index)
        self._joystick.init()

    def disconnect(self) -> None:
        if self._pygame is not None:
            self._pygame.joystick.quit()
            self._pygame = self._joystick = None

    def intervene(self, observation: Mapping[str, Any]) -> np.ndarray | None:
        if self._joystick is None:
            raise RuntimeError("GamepadIntervention.intervene before connect()")
        self._pygame.event.pump()
        if not self._joystick.get_button(self.intervention_button):
            return None
        values = np.asarray([self._joystick.get_axis(a) for a in self.axes], dtype=np.float32)
        values[np.abs(values) < self.deadzone] = 0.0
        values[self.invert] *= -1.0
        return values * self.scale


class ScriptedIntervention(InterventionSource):
    """A scripted expert takes over: at the episode steps in ``steps``, and/or starting at each step with
    probability ``probability`` for ``duration`` steps. For tests and simulated interventions.

    Args:
        expert: ``expert(env) -> ScriptedExpert`` (a class such as ``PlanarReachPD`` or a Hydra partial); bound to
            the actor's env in :meth:`bind`, reset after each env reset.
        steps: episode step indices (0-based) at which the expert acts.
        probability: chance per step of starting a takeover (0 = only ``steps``).
        duration: steps a random takeover lasts.
        seed: seed of the random takeovers.

    Raises:
        ValueError: ``probability`` outside [0, 1] or ``duration < 1``. RuntimeError: used before :meth:`bind`.
    """

    def __init__(self, expert: Callable[[Any], Any], steps: Sequence[int] = (), probability: float = 0.0,
                 duration: int = 10, seed: int = 0) -> None:
        if not 0.0 <= float(probability) <= 1.0 or int(duration) < 1:
            raise ValueError(f"probability must be in [0, 1] ({probability}) and duration >= 1 ({duration})")
        self.expert_factory = expert
        self.steps = {int(s) for s in steps}
        self.probability, self.duration = float(probability), int(duration)
        self.rng = np.random.default_rng(seed)
        self.expert = None
        self.t = 0
        self._left = 0

    def bind(self, env: Any) -> None:
        self.expert = self.expert_factory(env)

    def reset(self) -> None:
        if self.expert is None:
            raise RuntimeError("ScriptedIntervention used before bind(env)")
        self.expert.reset()
        self.t, self._left = 0, 0

    def intervene(self, observation: Mapping[str, Any]) -> np.ndarray | None:
        if self.expert is None:
            raise RuntimeError("ScriptedIntervention used before bind(env)")
        t, self.t = self.t, self.t + 1
        if self._left == 0 and self.probability > 0 and self.rng.random() < self.probability:
            self._left = self.duration
        active = t in self.steps or self._left > 0
        self._left = max(0, self._left - 1)
        return np.asarray(self.expert.act(observation), dtype=np.float32) if active else None
