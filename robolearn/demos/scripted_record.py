"""Generate a dataset on first use by recording a simulated robot driven by its scripted expert.

``record_scripted_dataset(root, repo_id, robot, ...)`` is the ``generator`` of dataset configs such as
``conf/dataset/aloha_transfer_cube.yaml``: the DataModule calls it when ``root`` holds no dataset yet. It runs the
same recording path as ``python record.py robot=<sim robot> teleop=scripted``
(:func:`robolearn.record.session.record_dataset` with :class:`~robolearn.teleop.scripted.ScriptedTeleop`), into a
hidden temporary sibling of ``root`` that is moved to ``root`` with ``os.replace`` only when every episode is saved,
so an interrupted generation never leaves a half dataset that a later run would trust. ``meta/generation.json``
records the parameters and package versions.

Episode ``k`` resets the simulator with seed ``seed + k`` (``record.py``'s rule), so the same arguments give the
same demonstrations. Every episode is recorded, successful or not (ACT's scripted data, Zhao et al. 2023, Sec. 5);
``next.success`` tells which succeeded and the count is logged and stored in ``generation.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from robolearn.demos.staging import new_staging_dir, package_version, publish_staging_dir

log = logging.getLogger(__name__)


def record_scripted_dataset(root: str | os.PathLike, repo_id: str, robot: Any, num_episodes: int, fps: int,
                            episode_time_s: float, seed: int = 0, video: bool = True, vcodec: str = "auto",
                            task: str | None = None) -> Path:
    """Record ``num_episodes`` scripted-expert episodes of ``robot`` into a LeRobotDataset at ``root`` (or return
    the dataset already there).

    Args:
        root: dataset folder; returned unchanged when it already holds ``meta/info.json``.
        repo_id: recorded in ``meta/info.json`` (nothing is uploaded).
        robot: a not yet connected :class:`~robolearn.robots.sim.SimRobot` with a scripted expert (e.g.
            ``conf/robot/sim_aloha_transfer_cube.yaml``); its ``camera_shapes`` set the recorded image size.
        num_episodes: episodes to record (>= 1).
        fps: dataset fps, Hz; must equal the simulator's control rate (gym-aloha: 50).
        episode_time_s: episode length, s; an episode holds ``round(episode_time_s * fps)`` frames, fewer when the
            env terminates (gym-aloha ends an episode on success).
        seed: episode ``k`` is reset with ``seed + k``.
        video: cameras as MP4 (False: PNG images in the parquet files).
        vcodec: writer codec (``"auto"``: AV1 when available, else H.264).
        task: task string of every frame (default: ``robot.task``).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``num_episodes`` < 1, or ``fps`` differs from ``robot.fps``.
        FileExistsError: ``root`` exists, is not empty and holds no dataset (never deleted implicitly).
    """
    from robolearn.record.session import record_dataset
    from robolearn.teleop.scripted import ScriptedTeleop

    root = Path(root).expanduser()
    if int(num_episodes) < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    if int(getattr(robot, "fps", fps)) != int(fps):
        raise ValueError(f"fps={fps} differs from the simulated robot's control rate robot.fps={robot.fps}")
    if (root / "meta" / "info.json").is_file():
        log.info("Using the cached dataset at %s", root)
        return root
    tmp = new_staging_dir(root)
    cfg = {"repo_id": repo_id, "root": str(tmp), "fps": int(fps), "episode_time_s": float(episode_time_s),
           "reset_time_s": 0, "num_episodes": int(num_episodes), "video": bool(video), "vcodec": vcodec,
           "single_task": task, "streaming_encoding": False}
    t0 = time.perf_counter()
    log.info("Recording %d scripted episodes of %s into %s (one-time)", num_episodes, getattr(robot, "name", robot), root)
    try:
        record_dataset(robot, ScriptedTeleop(robot), cfg, seed=int(seed), play_sounds=False)
        n_success = _count_successful_episodes(tmp)
        generation = {
            "generator": "robolearn.demos.scripted_record.record_scripted_dataset",
            "params": {k: v for k, v in cfg.items() if k != "root"} | {"seed": int(seed)},
            "robot": getattr(robot, "name", type(robot).__name__),
            "env_id": getattr(robot, "env_id", None),
            "camera_shapes": {k: list(v) for k, v in getattr(robot, "camera_shapes", {}).items()},
            "successful_episodes": n_success,
            "versions": {d: package_version(d) for d in ("gym-aloha", "gym-pusht", "mujoco", "gymnasium", "robolearn")},
            "duration_s": round(time.perf_counter() - t0, 1),
        }
        (tmp / "meta" / "generation.json").write_text(json.dumps(generation, indent=4) + "\n")
        publish_staging_dir(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("Recorded %d episodes (%s successful) at %s in %.1f s", num_episodes, n_success, root,
             time.perf_counter() - t0)
    return root


def _count_successful_episodes(root: Path) -> int | None:
    """How many episodes of the dataset at ``root`` have ``next.success`` on some frame (None without that column)."""
    import pyarrow.parquet as pq

    done: dict[int, bool] = {}
    for path in sorted(root.glob("data/**/*.parquet")):
        table = pq.read_table(path)
        if "next.success" not in table.column_names:
            return None
        for ep, ok in zip(table.column("episode_index").to_pylist(), table.column("next.success").to_pylist()):
            hit = any(ok) if isinstance(ok, list) else bool(ok)
            done[int(ep)] = done.get(int(ep), False) or hit
    return sum(done.values())
