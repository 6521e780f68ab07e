"""Run a robolearn policy on a robot at a fixed rate, optionally recording the rollouts (``eval.py`` on robots).

Each step: the robot observation is turned into a policy batch (:func:`robolearn.record.frames.observation_to_batch`:
vectors float32 ``(1, D)``, cameras float32 ``(1, 3, H, W)`` in [0, 1], keys named as in the dataset the policy
was trained on, after ``rename_map``: :mod:`robolearn.record.rename`), ``policy.select_action`` returns ``(1, A)``
in dataset units, which is sent as ``{action name: float}``. The same keyboard events as recording apply (→ ends
an episode, ← re-runs it, Esc stops).

An episode lasts at most ``episode_time_s`` (``round(episode_time_s * fps)`` steps), less when → is pressed or a
simulated robot's env terminates (SO-101 sim: on success, or at its ``max_episode_steps``). Between episodes a
reset phase of ``reset_time_s`` lets the configured teleoperator drive the robot without recording (as
``record.py`` does); without a teleoperator the robot receives no command while a person resets the scene.

With a teleoperator, a person (Tab) or a scripted trigger can take over during an episode and hand back
(:mod:`robolearn.record.takeover`); recorded frames then carry the ``intervention`` flag.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Mapping

import numpy as np
import torch

from robolearn.datasets.constants import DEFAULT_FEATURES
from robolearn.record.events import KeyboardEvents
from robolearn.record.feedback import say
from robolearn.record.frames import check_teleop_matches, observation_to_batch, robot_dataset_features
from robolearn.record.loop import LoopStats, RateKeeper, control_loop, no_sleep
from robolearn.record.rename import check_rename_map, policy_sources
from robolearn.record.takeover import INTERVENTION, INTERVENTION_FEATURE, CorrectionsOnlyWriter, TakeoverDriver
from robolearn.robots.features import vector_to_action

log = logging.getLogger(__name__)


def deploy_features(robot: Any, use_video: bool = True, with_teleop: bool = False) -> dict[str, dict]:
    """The features of a deployment's recorded rollouts: the robot's (:func:`robot_dataset_features`), plus the
    ``intervention`` flag (bool ``(1,)``) when a teleoperator can take over."""
    features = robot_dataset_features(robot, use_video)
    if with_teleop:
        features[INTERVENTION] = dict(INTERVENTION_FEATURE)
    return features


def policy_action_fn(policy: Any, robot: Any, features: dict, task: str | None = None,
                     rename_map: Mapping[str, str] | None = None):
    """``observation -> {action name: float}`` running ``policy.select_action`` on one observation.

    Args:
        features: the robot's dataset features (:func:`robot_dataset_features`).
        rename_map: ``{robot observation key: policy input key}`` (:func:`robolearn.record.rename.check_rename_map`).

    Raises:
        KeyError: the policy needs an input the robot does not provide, or ``rename_map`` names a key the robot does
            not have (both name the robot's keys).
        ValueError: a bad ``rename_map`` (see :func:`~robolearn.record.rename.check_rename_map`).
    """
    declared = list(getattr(policy, "input_features", None) or [])
    robot_keys = [k for k in features if k.startswith("observation")]
    rename = check_rename_map(rename_map, robot_keys, declared or None)
    wanted = declared or [rename.get(k, k) for k in robot_keys]
    sources = policy_sources(robot_keys, rename, wanted)
    names = list(robot.action_features)
    device = next((p.device for p in policy.parameters()), torch.device("cpu")) if hasattr(policy, "parameters") \
        else torch.device("cpu")

    def act(observation: dict[str, Any]) -> dict[str, float]:
        inputs = observation_to_batch(features, observation, keys=list(sources), device=device)
        batch: dict[str, Any] = {sources[k]: v for k, v in inputs.items()}
        if task is not None:
            batch["task"] = [task]
        with torch.inference_mode():
            action = policy.select_action(batch)
        return vector_to_action(np.asarray(action.detach().cpu().numpy(), np.float32).reshape(-1), names)

    return act


def reset_phase(robot: Any, teleop: Any, fps: int, reset_time_s: float, events: KeyboardEvents,
                realtime: bool = True) -> int:
    """The pause between two episodes, ``reset_time_s`` seconds (→ ends it early). Nothing is recorded.

    With a teleoperator it drives the robot at ``fps`` (:func:`control_loop`, which stops early when a simulated
    robot's env is done); without one the robot gets no command while a person resets the scene. Returns the
    number of teleoperator steps sent. ``realtime=False`` does not wait (simulated robots).
    """
    if teleop is not None:
        rate = RateKeeper(fps) if realtime else RateKeeper(fps, sleep=no_sleep)
        return control_loop(robot, teleop.get_action, fps, reset_time_s, events=events, rate=rate).frames
    end = time.monotonic() + reset_time_s
    while realtime and not events.exit_early and time.monotonic() < end:
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    return 0


def _check_times(fps: int, num_episodes: int, episode_time_s: float, reset_time_s: float) -> None:
    if fps <= 0 or num_episodes < 0:
        raise ValueError(f"fps must be > 0 and num_episodes >= 0, got fps={fps}, num_episodes={num_episodes}")
    if not (math.isfinite(episode_time_s) and episode_time_s > 0):
        raise ValueError(f"episode_time_s must be a finite number of seconds > 0, got {episode_time_s}")
    if not (math.isfinite(reset_time_s) and reset_time_s >= 0):
        raise ValueError(f"reset_time_s must be a finite number of seconds >= 0, got {reset_time_s}")


def deploy(policy: Any, robot: Any, *, fps: int, num_episodes: int, episode_time_s: float,
           reset_time_s: float = 0.0, teleop: Any = None, takeover: Any = None,
           rename_map: Mapping[str, str] | None = None, record_autonomous: bool = True, writer: Any = None,
           events: KeyboardEvents | None = None, task: str | None = None, seed: int | None = None,
           play_sounds: bool = False, display: Any = None, realtime: bool = True) -> list[dict[str, Any]]:
    """Roll out ``policy`` on a connected ``robot`` for ``num_episodes`` episodes of at most ``episode_time_s`` s.

    Args:
        policy: a robolearn policy (``select_action(batch) -> (1, A)``, ``reset()``); put in ``eval()`` mode here.
        robot: a connected robot; simulated robots are reset with ``seed + episode`` (None: unseeded).
        fps: control rate, Hz.
        num_episodes: episodes to run (← re-runs one without counting it).
        episode_time_s: maximum episode length, s (> 0).
        reset_time_s: pause between episodes, s (>= 0; none after the last one): the teleoperator drives the robot,
            nothing is recorded (:func:`reset_phase`).
        teleop: a connected teleoperator with the robot's action keys, or None. With one, Tab (``events``) or
            ``takeover`` hands it control during episodes, and recorded frames carry ``intervention``.
        takeover: a scripted trigger (:class:`~robolearn.record.takeover.StepWindows`,
            :class:`~robolearn.record.takeover.Deviation`) standing in for the person, or None.
        rename_map: ``{robot observation key: policy input key}`` (:mod:`robolearn.record.rename`).
        record_autonomous: record every frame (True) or, with a teleoperator, only the frames it drove, one episode
            per uninterrupted run of them (:class:`~robolearn.record.takeover.CorrectionsOnlyWriter`).
        writer: a :class:`~robolearn.datasets.writer.LeRobotDatasetWriter` whose features are
            :func:`deploy_features` (with ``with_teleop`` when ``teleop`` is given) to record every episode, or None.
        events: keyboard events (default: a non-listening :class:`KeyboardEvents`).
        task: language task given to the policy (``batch["task"]``) and recorded (default: the robot's ``task``).
        play_sounds: speak episode starts.
        display: live view (see :func:`control_loop`).
        realtime: hold ``fps`` in wall-clock time (False: step as fast as possible, for simulated robots; recorded
            timestamps are ``frame_index / fps`` either way).

    Returns:
        One dict per kept episode: ``episode`` (index), ``frames``, ``success`` (the simulator's last
        ``next.success``, or None on real robots), ``achieved_hz``, ``overruns``; with a teleoperator also
        ``takeovers`` and ``intervention_frames``.

    Raises:
        ValueError: ``writer`` features differ from the deployment's, non-positive ``fps``/``episode_time_s``,
            negative ``num_episodes``/``reset_time_s``, ``takeover`` or ``record_autonomous=False`` without a
            teleoperator, teleoperator action keys that differ from the robot's, or a bad ``rename_map``.
        KeyError: a policy input the robot does not provide, or a ``rename_map`` key the robot does not have.
    """
    _check_times(fps, num_episodes, float(episode_time_s), float(reset_time_s))
    if teleop is None and (takeover is not None or not record_autonomous):
        raise ValueError("takeover and record_autonomous=false need a teleoperator (eval.py: teleop=...)")
    if teleop is not None:
        check_teleop_matches(teleop, robot)
    task = task or getattr(robot, "task", None) or "deploy"
    features = deploy_features(robot, use_video=True, with_teleop=teleop is not None)
    if writer is not None:
        wf = [k for k in writer.features if k not in DEFAULT_FEATURES]
        mismatch = sorted(set(wf) ^ set(features))
        if mismatch:
            raise ValueError(f"writer features {sorted(wf)} differ from the deployment's features {sorted(features)} "
                             f"(keys {mismatch}; with a teleoperator the rollouts record '{INTERVENTION}')")
        features = {k: writer.features[k] for k in features}
        if not record_autonomous:
            writer = CorrectionsOnlyWriter(writer)
    events = events or KeyboardEvents(listen=False)
    if hasattr(policy, "eval"):
        policy.eval()
    act = policy_action_fn(policy, robot, features, task, rename_map)
    driver = None if teleop is None else TakeoverDriver(act, policy.reset, teleop, events, takeover)
    results: list[dict[str, Any]] = []
    ep = 0
    while ep < num_episodes and not events.stop_recording:
        events.start_episode()
        robot.reset(seed=None if seed is None else seed + ep)
        policy.reset()
        if driver is not None:
            teleop.reset()
            driver.reset()
        say(f"Policy episode {ep}", play_sounds)
        rate = RateKeeper(fps) if realtime else RateKeeper(fps, sleep=no_sleep)
        stats: LoopStats = control_loop(robot, driver or act, fps, episode_time_s, writer=writer, features=features,
                                        task=task, events=events, display=display, rate=rate,
                                        frame_extra=None if driver is None else driver.frame_extra)
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
        result = {"episode": ep, "frames": stats.frames, "success": success, "achieved_hz": stats.achieved_hz,
                  "overruns": stats.overruns}
        if driver is not None:
            result.update(takeovers=driver.takeovers, intervention_frames=driver.intervention_steps)
        results.append(result)
        ep += 1
        if ep < num_episodes and not events.stop_recording and reset_time_s > 0:
            say("Reset the environment", play_sounds)
            events.start_episode()
            reset_phase(robot, teleop, fps, float(reset_time_s), events, realtime)
    return results
