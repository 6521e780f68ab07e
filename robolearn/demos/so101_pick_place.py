"""The embedded default dataset: SO-101 pick-and-place demonstrations recorded in MuJoCo.

``generate_so101_pick_place(root)`` rolls out the scripted expert
(:class:`robolearn.envs.so101_expert.PickPlaceExpert`, lerobot-env-so101's ``PickPlaceController`` with two
changes) on ``SO101PickPlace-v0`` with random block and goal positions (see :mod:`robolearn.envs.so101` for the
env facts and units), and records the **successful** episodes with
:class:`~robolearn.datasets.writer.LeRobotDatasetWriter`. A failed attempt (5 of 305 for the default dataset,
with DART noise and missed grasps: the noise knocked the block out of the workspace or the time ran out) is
skipped and the next attempt seed is tried, so every episode ends with the block placed.

Columns (per frame t, lerobot convention):

- ``observation.state`` (6,): 5 arm joint angles in radians + jaw opening normalized to [0, 1].
- ``observation.environment_state`` (15,): block centre, goal centre, grasp point, then block and goal relative
  to the grasp point, in metres (:data:`robolearn.envs.so101.ENV_STATE_NAMES`; block and goal are privileged; exclude the key with ``dataset.exclude_features=[observation.environment_state]`` for a
  pixels + joints policy; the goal is drawn in the image as a green disc).
- ``observation.images.<camera>`` video (H, W, 3).
- ``action`` (4,): the expert's native command ``[dx, dy, dz, grasp]``: ``dx..dz`` in [-1, 1] x 0.025 m per
  step (grasp-point displacement target), ``grasp`` absolute in [0, 1] (0 closed, 1 open). Feed it straight
  to ``SO101PickPlaceSim.step`` to evaluate a policy.
- ``next.reward`` float32 (sparse, 1.0 on the last frame), ``next.success`` / ``next.done`` bool (True on the
  last frame only).

The episodes are recorded through the path every simulated dataset takes
(:func:`robolearn.demos.scripted_record.record_scripted_dataset`: ``record.py``'s episode with
:class:`~robolearn.robots.sim.SO101SimRobot` and ``teleop=scripted``, DART noise and missed grasps injected by the
simulated robot as :class:`robolearn.envs.so101.DemonstrationNoise`). Generation is deterministic given ``seed``
(attempt ``k`` resets the env with the ``k``-th draw of ``numpy.random.default_rng(seed)``), written into a
hidden temporary sibling of ``root`` and moved to ``root`` with ``os.replace`` only when complete. A ``root`` that already holds ``meta/info.json`` is returned
as is (the cache), so an interrupted run never leaves a half dataset that a later run would trust.
``meta/generation.json`` records the parameters, package versions and episode seeds.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.demos.scripted_record import GENERATION_FILE, record_scripted_dataset
from robolearn.demos.staging import package_version
from robolearn.envs.so101 import (DEFAULT_CAMERA, DEFAULT_IMAGE_SIZE, ENV_STATE_NAMES, MAX_EPISODE_STEPS, NATIVE_FPS,
                                  TASK, action_scale_for)
from robolearn.envs.so101_expert import PickPlaceExpert
from robolearn.robots.sim import OBS_ENV_STATE, SO101SimRobot

log = logging.getLogger(__name__)

DEFAULT_REPO_ID = "robolearn/so101_pick_place_sim"
DEFAULT_NUM_EPISODES = 40


def generate_so101_pick_place(
    root: str | os.PathLike,
    repo_id: str = DEFAULT_REPO_ID,
    num_episodes: int = DEFAULT_NUM_EPISODES,
    fps: int = NATIVE_FPS,
    image_size: int | tuple[int, int] = DEFAULT_IMAGE_SIZE,
    camera: str | None = DEFAULT_CAMERA,
    seed: int = 0,
    vcodec: str = "auto",
    max_steps: int | None = None,
    only_successful: bool = True,
    max_attempts: int | None = None,
    include_env_state: bool = True,
    action_noise: float = 0.0,
    missed_grasps: float = 0.0,
    workers: int | None = 1,
    overwrite: bool = False,
    progress: bool = True,
    show_robot: bool = True,
    steps_after_success: int = 0,
) -> Path:
    """Generate (or return the cached) SO-101 pick-and-place dataset at ``root``.

    Args:
        root: dataset folder to create. If it already holds ``meta/info.json`` it is returned unchanged
            (a warning is logged when its ``meta/generation.json`` records other parameters), unless
            ``overwrite``.
        repo_id: recorded in the dataset (nothing is uploaded).
        num_episodes: episodes to record.
        fps: control and recording rate. 10 is the env's native rate the expert is calibrated for; other
            rates are supported by :class:`~robolearn.envs.so101.SO101PickPlaceSim` but the expert gets
            slower and less reliable (at 20 fps: 9/10 successes, 88-196 steps per episode).
        image_size: ``H`` (square) or ``(H, W)`` of the camera.
        camera: a key of :data:`robolearn.envs.so101.CAMERAS` (``"workspace"`` or ``"front"``), or None for joints
            and environment state only.
        seed: seed of the episode seeds; same seed -> same dataset.
        vcodec: video codec passed to the writer (``"auto"``, ``"libsvtav1"``, ``"libx264"``, ...).
        max_steps: episode time limit in steps (default: the env's 300; tests cut episodes shorter, and a cut
            episode is not a success).
        only_successful: record only episodes in which the expert succeeded. With False every attempt is
            recorded and ``next.success`` tells which succeeded.
        max_attempts: give up after this many rollouts (default ``2 * num_episodes + 10``).
        include_env_state: record ``observation.environment_state`` (block, goal and grasp point positions).
        action_noise: DART noise (standard deviation, action units) added to the executed ``[dx, dy, dz]`` while
            the clean expert action is recorded (:class:`robolearn.envs.so101.DemonstrationNoise`); 0: none.
        missed_grasps: fraction of episodes whose first grasp is made to miss (the env executes a rise while the
            jaws close), so that the expert's re-grasp is recorded (:class:`~robolearn.envs.so101.DemonstrationNoise`).
        workers: processes that roll out episodes (``None``: one per CPU core). The dataset does not depend on
            it: episodes are written in seed order by this process.
        overwrite: regenerate even if ``root`` holds a dataset (the old one is replaced only on success).
        progress: show a progress bar over episodes.
        show_robot: False records the camera without the arm (:class:`~robolearn.envs.so101.SO101PickPlaceSim`'s
            ``show_robot``), e.g. for a reward classifier's scene camera.
        steps_after_success: keep recording this many steps after the success (the scripted expert opens the jaws
            and retreats; :class:`~robolearn.robots.sim.SimRobot`), so that frames whose observation shows the
            success exist, as lerobot's ``number_of_steps_after_success`` for reward classifier data; each frame's
            ``next.success`` is the simulator's verdict after its step.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``num_episodes`` or ``workers`` < 1, a negative ``action_noise`` or ``steps_after_success``,
            ``missed_grasps`` outside [0, 1].
        FileExistsError: ``root`` exists, is not empty and holds no dataset (never deleted implicitly).
        RuntimeError: fewer than ``num_episodes`` successful episodes within ``max_attempts``.
    """
    root = Path(root).expanduser()
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    max_attempts = 2 * num_episodes + 10 if max_attempts is None else max_attempts
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    params: dict[str, Any] = {
        "repo_id": repo_id,
        "num_episodes": int(num_episodes),
        "fps": int(fps),
        "image_size": list(size),
        "camera": camera,
        "seed": int(seed),
        "vcodec": vcodec,
        "max_steps": max_steps,
        "only_successful": bool(only_successful),
        "include_env_state": bool(include_env_state),
        "environment_state_names": list(ENV_STATE_NAMES) if include_env_state else None,
        "action_noise": float(action_noise),
        "missed_grasps": float(missed_grasps),
        # the expert's settings: a cached dataset made by another expert is reported (see _warn_if_params_differ)
        "expert": PickPlaceExpert().settings(),
    }
    # listed only when set, so datasets generated before these options keep matching their params
    if not show_robot:
        params["show_robot"] = False
    if steps_after_success:
        params["steps_after_success"] = int(steps_after_success)
    if (root / "meta" / "info.json").is_file() and not overwrite:
        _warn_if_params_differ(root, params)
        log.info("Using the cached dataset at %s", root)
        return root

    steps = MAX_EPISODE_STEPS if max_steps is None else int(max_steps)
    robot = SO101SimRobot(fps=fps, camera=camera, image_size=size, max_episode_steps=steps,
                          action_noise=action_noise, missed_grasps=missed_grasps, show_robot=show_robot,
                          steps_after_success=steps_after_success)
    generation = {
        "generator": f"{__name__}.generate_so101_pick_place",
        "params": params,
        "env": "lerobot_env_so101/SO101PickPlace-v0 (random_block_position=True)",
        "action_scale_m_per_unit": action_scale_for(fps),
        "task": TASK,
        "versions": {d: package_version(d) for d in ("lerobot-env-so101", "mujoco", "gymnasium", "robolearn")},
    }
    episode_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=max_attempts).tolist()
    return record_scripted_dataset(
        root, repo_id, robot, num_episodes, fps, episode_time_s=steps / fps, vcodec=vcodec, task=TASK,
        episode_seeds=episode_seeds, only_successful=only_successful, max_attempts=max_attempts, workers=workers,
        exclude_features=() if include_env_state else (OBS_ENV_STATE,), generation=generation, overwrite=overwrite,
        progress=progress)


def _warn_if_params_differ(root: Path, params: dict[str, Any]) -> None:
    path = root / GENERATION_FILE
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text()).get("params", {})
    except (OSError, ValueError):
        return
    diff = {k: (stored.get(k), v) for k, v in params.items() if stored.get(k) != v}
    if diff:
        log.warning(
            "Cached dataset at %s was generated with other parameters (stored, requested): %s. "
            "Delete it (or pass overwrite=True) to regenerate.", root, diff,
        )


if __name__ == "__main__":  # pragma: no cover
    import argparse

    logging.basicConfig(level=logging.INFO)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--num-episodes", type=int, default=DEFAULT_NUM_EPISODES)
    ap.add_argument("--fps", type=int, default=NATIVE_FPS)
    ap.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    ap.add_argument("--camera", default=DEFAULT_CAMERA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vcodec", default="auto")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    generate_so101_pick_place(
        a.root, num_episodes=a.num_episodes, fps=a.fps, image_size=a.image_size, camera=a.camera,
        seed=a.seed, vcodec=a.vcodec, overwrite=a.overwrite,
    )
