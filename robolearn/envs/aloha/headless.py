"""Render-free reset/step for gym-aloha envs, for fast scripted rollouts and tests.

``gym_aloha.env.AlohaEnv.step`` builds every observation by rendering three 640x480 cameras
(``BimanualViperXTask.get_observation``: top, angle, front_close), which caps it at about 5 steps/s on a
CPU. These functions drive the same dm_control objects without the observation: reset places the objects
exactly as ``AlohaEnv.reset(seed)`` does (``gym_aloha.utils.sample_box_pose`` /
``sample_insertion_pose`` into ``gym_aloha.tasks.sim.BOX_POSE``), and a step runs the same
``task.before_step`` -> ``physics.step(n_sub_steps)`` -> ``task.after_step`` -> ``task.get_reward``
sequence as ``dm_control.rl.control.Environment.step``. Physics, rewards and object placement are
therefore identical to ``env.reset``/``env.step``; only the images (and gymnasium's TimeLimit counter)
are skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TASKS = ("transfer_cube", "insertion")


def _aloha(env: Any) -> Any:
    unwrapped = env.unwrapped
    task = getattr(unwrapped, "task", None)
    if task not in TASKS or not hasattr(unwrapped, "_env"):
        raise ValueError(
            f"expected a gym_aloha AlohaEnv with task in {TASKS}, got {type(unwrapped).__name__} task={task!r}"
        )
    return unwrapped


def headless_reset(env: Any, seed: int | None = None) -> None:
    """Reset ``env`` (a gym-aloha env, any wrappers) to the object poses ``env.reset(seed=seed)`` gives,
    without rendering.

    Raises:
        ValueError: ``env`` is not a gym-aloha transfer-cube or insertion env.
    """
    from gym_aloha.tasks.sim import BOX_POSE
    from gym_aloha.utils import sample_box_pose, sample_insertion_pose

    aloha = _aloha(env)
    dm_env = aloha._env
    if seed is not None:
        dm_env.task.random.seed(seed)
    if aloha.task == "transfer_cube":
        BOX_POSE[0] = sample_box_pose(seed)
    else:
        BOX_POSE[0] = np.concatenate(sample_insertion_pose(seed))
    dm_env._reset_next_step = False
    dm_env._step_count = 0
    with dm_env.physics.reset_context():
        dm_env.task.initialize_episode(dm_env.physics)


def headless_step(env: Any, action: np.ndarray) -> float:
    """Apply one 14-d joint action (0.02 s, 10 physics substeps) without rendering; returns the task reward
    (0..4, 4 = success).

    Raises:
        ValueError: ``env`` is not a gym-aloha env, or ``action`` is not 14 values.
    """
    aloha = _aloha(env)
    action = np.asarray(action, dtype=float)
    if action.shape != (14,):
        raise ValueError(f"gym-aloha action must have shape (14,), got {action.shape}")
    dm_env = aloha._env
    dm_env.task.before_step(action, dm_env.physics)
    dm_env.physics.step(dm_env._n_sub_steps)
    dm_env.task.after_step(dm_env.physics)
    dm_env._step_count += 1
    return float(dm_env.task.get_reward(dm_env.physics))
