"""Run a robolearn policy on a robot at a fixed rate, optionally recording the rollouts (``eval.py`` on robots).

Each step: the robot observation is turned into a policy batch (:func:`robolearn.record.frames.observation_to_batch`:
vectors float32 ``(1, D)``, cameras float32 ``(1, 3, H, W)`` in [0, 1], keys named as in the dataset the policy
was trained on), ``policy.select_action`` returns ``(1, A)`` in dataset units, which is sent as
``{action name: float}``. The same keyboard events as recording apply (→ ends an episode, ← re-runs it, Esc stops).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from robolearn.datasets.constants import DEFAULT_FEATURES
from robolearn.record.events import KeyboardEvents
from robolearn.record.feedback import say
from robolearn.record.frames import observation_to_batch, robot_dataset_features
from robolearn.record.loop import LoopStats, control_loop
from robolearn.robots.features import vector_to_action

log = logging.getLogger(__name__)


def policy_action_fn(policy: Any, robot: Any, features: dict, task: str | None = None):
    """``observation -> {action name: float}`` running ``policy.select_action`` on one observation.

    Raises:
        KeyError: the policy needs an input the robot does not provide (names it and the robot's features).
    """
    wanted = list(getattr(policy, "input_features", None) or [k for k in features if k.startswith("observation")])
    missing = [k for k in wanted if k not in features]
    if missing:
        raise KeyError(f"policy inputs {missing} are not provided by robot {type(robot).__name__} "
                       f"(its features: {sorted(features)})")
    names = list(robot.action_features)
    device = next((p.device for p in policy.parameters()), torch.device("cpu")) if hasattr(policy, "parameters") \
        else torch.device("cpu")

    def act(observation: dict[str, Any]) -> dict[str, float]:
        batch: dict[str, Any] = observation_to_batch(features, observation, keys=wanted, device=device)
        if task is not None:
            batch["task"] = [task]
        with torch.inference_mode():
            action = policy.select_action(batch)
        return vector_to_action(np.asarray(action.detach().cpu().numpy(), np.float32).reshape(-1), names)

    return act


def deploy(policy: Any, robot: Any, *, fps: int, num_episodes: int, episode_time_s: float, writer: Any = None,
           events: KeyboardEvents | None = None, task: str | None = None, seed: int | None = None,
           play_sounds: bool = False, display: Any = None) -> list[dict[str, Any]]:
    """Roll out ``policy`` on a connected ``robot`` for ``num_episodes`` episodes of at most ``episode_time_s`` s.

    Args:
        policy: a robolearn policy (``select_action(batch) -> (1, A)``, ``reset()``); put in ``eval()`` mode here.
        robot: a connected robot; simulated robots are reset with ``seed + episode`` (None: unseeded).
        fps: control rate, Hz.
        num_episodes: episodes to run (← re-runs one without counting it).
        episode_time_s: maximum episode length, s.
        writer: a :class:`~robolearn.datasets.writer.LeRobotDatasetWriter` whose features are the robot's
            (:func:`robot_dataset_features`) to record every episode, or None.
        events: keyboard events (default: a non-listening :class:`KeyboardEvents`).
        task: language task given to the policy (``batch["task"]``) and recorded (default: the robot's ``task``).
        play_sounds: speak episode starts.
        display: live view (see :func:`control_loop`).

    Returns:
        One dict per kept episode: ``episode`` (index), ``frames``, ``success`` (the simulator's last
        ``next.success``, or None on real robots), ``achieved_hz``, ``overruns``.

    Raises:
        ValueError: ``writer`` features differ from the robot's, or ``fps``/``num_episodes`` are not positive.
    """
    if fps <= 0 or num_episodes < 0:
        raise ValueError(f"fps must be > 0 and num_episodes >= 0, got fps={fps}, num_episodes={num_episodes}")
    task = task or getattr(robot, "task", None) or "deploy"
    features = robot_dataset_features(robot, use_video=True)
    if writer is not None:
        wf = [k for k in writer.features if k not in DEFAULT_FEATURES]
        mismatch = sorted(set(wf) ^ set(features))
        if mismatch:
            raise ValueError(f"writer features {sorted(wf)} differ from robot features {sorted(features)} "
                             f"(keys {mismatch})")
        features = {k: writer.features[k] for k in features}
    events = events or KeyboardEvents(listen=False)
    if hasattr(policy, "eval"):
        policy.eval()
    act = policy_action_fn(policy, robot, features, task)
    results: list[dict[str, Any]] = []
    ep = 0
    while ep < num_episodes and not events.stop_recording:
        events.start_episode()
        robot.reset(seed=None if seed is None else seed + ep)
        policy.reset()
        say(f"Policy episode {ep}", play_sounds)
        stats: LoopStats = control_loop(robot, act, fps, episode_time_s, writer=writer, features=features,
                                        task=task, events=events, display=display)
        stats.report(f"deploy episode {ep}")
        if events.rerecord_episode:
            if writer is not None:
                writer.clear_episode_buffer()
            say("Re-running the episode", play_sounds)
            continue
        if writer is not None and writer.num_buffered_frames:
            writer.save_episode()
        tr = getattr(robot, "transition", None) or {}
        success = bool(tr["next.success"][0]) if "next.success" in tr else None
        results.append({"episode": ep, "frames": stats.frames, "success": success,
                        "achieved_hz": stats.achieved_hz, "overruns": stats.overruns})
        ep += 1
    return results
