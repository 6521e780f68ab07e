"""What ``python record.py`` runs: record a dataset from a robot and a teleoperator, or replay an episode.

Recording (lerobot's ``record`` flow): for each episode, reset the robot (simulators: seed ``seed + episode
index``) and the teleoperator, run :func:`robolearn.record.loop.control_loop` for ``episode_time_s`` while adding
frames to the writer, then ``save_episode()`` (← discards and records the episode again, Esc stops after saving
it); between episodes the teleoperator keeps driving the robot for ``reset_time_s`` without recording. Every saved
episode is committed on disk, so a crash loses at most the episode in progress.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from robolearn.datasets.constants import DEFAULT_FEATURES
from robolearn.datasets.writer import LeRobotDatasetWriter, default_root
from robolearn.record.events import KeyboardEvents
from robolearn.record.feedback import say
from robolearn.record.frames import check_teleop_matches, robot_dataset_features
from robolearn.record.loop import LoopStats, RateKeeper, control_loop, no_sleep

log = logging.getLogger(__name__)


def make_teleop(teleop_cfg: Mapping[str, Any], robot: Any) -> Any:
    """Instantiate the teleoperator of a Hydra ``teleop`` node, passing ``robot`` to those that drive from it
    (``teleop=scripted`` reads the simulated robot's expert); used by ``record.py`` and ``eval.py``."""
    from hydra.utils import get_class, instantiate

    cls = get_class(teleop_cfg["_target_"])
    if "robot" in inspect.signature(cls).parameters:
        return instantiate(teleop_cfg, robot=robot)
    return instantiate(teleop_cfg)


def _comparable(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"dtype": spec["dtype"], "shape": [int(s) for s in spec["shape"]], "names": spec.get("names")}


def check_resume_compatible(writer: LeRobotDatasetWriter, fps: int, features: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ``ValueError`` naming both sides when the existing dataset's fps or features differ from the
    recording's (only ``dtype``, ``shape`` and ``names`` are compared; video ``info`` is ignored)."""
    if int(writer.fps) != int(fps):
        raise ValueError(f"resume: the dataset at {writer.root} has fps={writer.fps}, this recording has fps={fps}")
    have = {k: _comparable(v) for k, v in writer.features.items() if k not in DEFAULT_FEATURES}
    want = {k: _comparable(v) for k, v in features.items()}
    if have != want:
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        raise ValueError(f"resume: features of the dataset at {writer.root} differ from this recording's in {diff}; "
                         f"dataset: { {k: have.get(k) for k in diff} }; recording: { {k: want.get(k) for k in diff} }")


def open_writer(dataset_cfg: Mapping[str, Any], features: dict, robot_type: str | None, resume: bool) -> LeRobotDatasetWriter:
    """Create the dataset, or with ``resume`` reopen it (repairing a cut write) and check fps/features.

    Raises:
        FileExistsError: the root exists and ``resume`` is False.
        FileNotFoundError: ``resume`` without a dataset at the root.
        ValueError: ``resume`` with other fps or features (see :func:`check_resume_compatible`).
    """
    root = Path(dataset_cfg["root"]) if dataset_cfg.get("root") else default_root(dataset_cfg["repo_id"])
    fps = int(dataset_cfg["fps"])
    if resume:
        writer = LeRobotDatasetWriter.resume(root, repo_id=dataset_cfg["repo_id"], repair=True,
                                             streaming_encoding=bool(dataset_cfg.get("streaming_encoding", False)))
        check_resume_compatible(writer, fps, features)
        log.info("Resuming %s after %d episodes", root, writer.total_episodes)
        return writer
    if root.exists():
        raise FileExistsError(f"dataset root {root} already exists; pass resume=true to append episodes to it, "
                              "or choose another dataset.root")
    return LeRobotDatasetWriter.create(
        dataset_cfg["repo_id"], fps, features, root=root, robot_type=robot_type,
        use_videos=bool(dataset_cfg.get("video", True)), vcodec=dataset_cfg.get("vcodec", "auto"),
        streaming_encoding=bool(dataset_cfg.get("streaming_encoding", False)))


def record_episode(robot: Any, teleop: Any, seed: int | None, fps: int, episode_time_s: float, *, writer: Any,
                   features: Mapping[str, Mapping[str, Any]], task: str, events: Any = None, display: Any = None,
                   realtime: bool = True) -> LoopStats:
    """Record one episode: reset the robot (simulators: with ``seed``) and the teleoperator, then run
    :func:`~robolearn.record.loop.control_loop` for ``episode_time_s`` (s) at ``fps`` (Hz), adding every frame to
    ``writer`` (a :class:`~robolearn.datasets.writer.LeRobotDatasetWriter`, or anything with ``add_frame``).

    ``realtime=False`` steps as fast as the robot allows (simulators with a scripted teleoperator); timestamps are
    ``frame_index / fps`` either way. Returns the loop's :class:`~robolearn.record.loop.LoopStats`.
    """
    robot.reset(seed=seed)
    teleop.reset()
    rate = RateKeeper(fps) if realtime else RateKeeper(fps, sleep=no_sleep)
    return control_loop(robot, teleop.get_action, fps, episode_time_s, writer=writer, features=features, task=task,
                        events=events, display=display, rate=rate)


def record_dataset(robot: Any, teleop: Any, dataset_cfg: Mapping[str, Any], *, resume: bool = False, seed: int = 0,
                   events: KeyboardEvents | None = None, play_sounds: bool = True, display: Any = None,
                   push_api: Any = None) -> LeRobotDatasetWriter:
    """Record ``dataset_cfg["num_episodes"]`` episodes (see the module doc); returns the finalized writer.

    Args:
        robot, teleop: not yet connected; both are connected here and disconnected at the end.
        dataset_cfg: the ``dataset`` node of ``conf/record.yaml`` (``repo_id``, ``single_task``, ``root``, ``fps``,
            ``episode_time_s``, ``reset_time_s``, ``num_episodes``, ``video``, ``vcodec``, ``streaming_encoding``,
            ``push_to_hub``, ``private``, ``tags``).
        push_api: ``huggingface_hub.HfApi``-like object for ``push_to_hub`` (default: a new ``HfApi``).

    Raises:
        ValueError: teleop and robot action keys differ (both listed), mismatched resume, no task.
    """
    check_teleop_matches(teleop, robot)
    use_video = bool(dataset_cfg.get("video", True))
    features = robot_dataset_features(robot, use_video)
    task = dataset_cfg.get("single_task") or getattr(robot, "task", None)
    if not task:
        raise ValueError("dataset.single_task is required (the task string recorded with every frame)")
    fps = int(dataset_cfg["fps"])
    writer = open_writer(dataset_cfg, features, getattr(robot, "name", None), resume)
    events = events or KeyboardEvents(listen=False)
    n_target = int(dataset_cfg["num_episodes"])
    recorded = 0
    try:
        robot.connect()
        teleop.connect()
        while recorded < n_target and not events.stop_recording:
            ep = writer.total_episodes
            events.start_episode()
            say(f"Recording episode {ep}", play_sounds)
            stats = record_episode(robot, teleop, seed + ep, fps, float(dataset_cfg["episode_time_s"]), writer=writer,
                                   features=features, task=task, events=events, display=display)
            stats.report(f"episode {ep}")
            if events.rerecord_episode:
                say("Re-record episode", play_sounds)
                writer.clear_episode_buffer()
                continue
            if writer.num_buffered_frames == 0:
                break
            writer.save_episode()
            recorded += 1
            reset_s = float(dataset_cfg.get("reset_time_s", 0) or 0)
            if recorded < n_target and not events.stop_recording and reset_s > 0:
                say("Reset the environment", play_sounds)
                events.start_episode()
                control_loop(robot, teleop.get_action, fps, reset_s, events=events)
        say("Stop recording", play_sounds)
    finally:
        writer.finalize()
        for dev in (teleop, robot):
            if dev.is_connected:
                dev.disconnect()
    log.info("Dataset %s: %d episodes, %d frames (%d recorded now)", writer.root, writer.total_episodes,
             writer.total_frames, recorded)
    if dataset_cfg.get("push_to_hub"):
        from robolearn.tools.hub_push import push_to_hub

        push_to_hub(writer.root, dataset_cfg["repo_id"], private=bool(dataset_cfg.get("private", False)),
                    tags=list(dataset_cfg.get("tags") or []), api=push_api)
    return writer


def load_episode_actions(root: str | Path, repo_id: str, episode: int) -> tuple[np.ndarray, list[str], int]:
    """The ``action`` column of one episode: ``(T, A)`` float32, the action names and the dataset fps.

    Raises:
        KeyError: the episode does not exist (from the reader).
    """
    from robolearn.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(repo_id, root=root, episodes=[int(episode)], download_videos=False)
    actions = np.stack([ds[i]["action"].numpy() for i in range(len(ds))]).astype(np.float32)
    return actions, list(ds.meta.features["action"]["names"]), int(ds.meta.fps)


def replay_episode(robot: Any, root: str | Path, repo_id: str, episode: int, *, seed: int | None = 0,
                   fps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Send an episode's recorded actions to ``robot`` at the dataset's fps.

    Simulated robots are reset with ``seed + episode`` (the rule ``record.py`` uses), so a replay of a recorded
    simulation reproduces the episode.

    Returns:
        ``(recorded actions (T, A), sent actions (T, A))``.
    Raises:
        ValueError: the dataset's action names differ from the robot's action keys (both listed).
    """
    actions, names, ds_fps = load_episode_actions(root, repo_id, episode)
    robot_names = list(robot.action_features)
    if names != robot_names:
        raise ValueError(f"dataset action names {names} differ from the robot's action keys {robot_names}")
    connected_here = not robot.is_connected
    if connected_here:
        robot.connect()
    sent: list[list[float]] = []
    try:
        robot.reset(seed=None if seed is None else seed + int(episode))
        rate = RateKeeper(fps or ds_fps)
        rate.start()
        for vec in actions:
            out = robot.send_action({n: float(v) for n, v in zip(names, vec)})
            sent.append([out[n] for n in names])
            rate.wait()
        rate.stats.report(f"replay of episode {episode}")
    finally:
        if connected_here:
            robot.disconnect()
    return actions, np.asarray(sent, np.float32)
