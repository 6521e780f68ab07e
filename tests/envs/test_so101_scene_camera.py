"""The SO-101 scene camera (``show_robot=False``: the ``workspace`` view without the arm) of
``env=so101_pick_place_scene_camera`` and ``experiment=so101_pick_place_scene_camera``: the image shows block and goal
but not the arm, and training data and evaluation env render the same camera."""

from __future__ import annotations

import numpy as np
from hydra.utils import instantiate

from robolearn.envs.so101_gym import SO101PickPlaceEnv

from ..compose import compose_config

SIZE = 32  # pixels


def _frames_after_a_free_move(show_robot: bool, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    env = SO101PickPlaceEnv(image_size=SIZE, show_robot=show_robot)
    try:
        obs, _ = env.reset(seed=seed)
        before = obs["pixels"]["workspace"].copy()
        for _ in range(4):  # up and sideways, jaws open: the block and goal stay where they are
            obs, *_ = env.step(np.asarray([0.0, 0.8, 0.8, 1.0], np.float32))
        return before, obs["pixels"]["workspace"]
    finally:
        env.close()


def test_scene_camera_does_not_see_the_arm():
    before, after = _frames_after_a_free_move(show_robot=False)
    assert before.shape == (SIZE, SIZE, 3) and before.dtype == np.uint8
    np.testing.assert_array_equal(before, after)  # the arm moved; the scene camera shows nothing of it
    with_arm_before, with_arm_after = _frames_after_a_free_move(show_robot=True)
    assert np.abs(with_arm_before.astype(int) - with_arm_after.astype(int)).sum() > 0
    assert np.abs(with_arm_before.astype(int) - before.astype(int)).mean() > 1  # the arm is in the default view


def test_scene_camera_sees_block_and_goal():
    """Another seed places block and goal elsewhere: the scene camera's first frame changes."""
    a, _ = _frames_after_a_free_move(show_robot=False, seed=3)
    b, _ = _frames_after_a_free_move(show_robot=False, seed=4)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def test_experiment_trains_and_evaluates_on_the_same_camera():
    cfg = compose_config("train", ["experiment=so101_pick_place_scene_camera"])
    generator, make = cfg.dataset.generator, cfg.env.make
    assert generator.show_robot is False and make.show_robot is False
    assert generator.image_size == make.image_size == 64
    assert generator.camera == make.camera == "workspace"
    assert "observation.environment_state" in cfg.dataset.exclude_features  # camera + joints only
    assert cfg.policy.crop_shape is None and cfg.augment is None  # augment= alone changes the training frames
    env = instantiate(cfg.env.make)()
    try:
        assert env.observation_space["pixels"]["workspace"].shape == (64, 64, 3)
        assert env.sim.show_robot is False
    finally:
        env.close()
