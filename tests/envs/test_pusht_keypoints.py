"""PushT keypoint observations rebuilt from the block pose match Diffusion Policy's recorded demonstrations."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.envs.pusht_keypoints import PushTKeypoints, block_keypoints, make_pusht_keypoints


def test_keypoints_match_the_recorded_demonstrations(shared_datasets):
    zarr = pytest.importorskip("zarr")
    path = shared_datasets / "pusht_cchi_v7_replay" / "pusht_cchi_v7_replay.zarr"
    if not path.exists():
        pytest.skip(f"{path} not found")
    z = zarr.open(str(path), "r")
    state, kp = z["data/state"][:3000], z["data/keypoint"][:3000]
    errs = np.array([np.abs(block_keypoints(*s[2:5]) - k).max() for s, k in zip(state, kp)])
    assert np.median(errs) < 0.01 and np.percentile(errs, 99) < 0.1


def test_hand_computed_pose():
    kp = block_keypoints(100.0, 200.0, np.pi / 2)  # rotate (x, y) -> (-y, x), then translate
    np.testing.assert_allclose(kp[1], [100 + 1.186, 200 - 60.983], atol=1e-9)


def test_env_observation_follows_block_pose():
    env = make_pusht_keypoints(max_episode_steps=5)
    obs, _ = env.reset(seed=0)
    assert obs["agent_pos"].shape == (2,) and obs["environment_state"].shape == (18,)
    obs, _, _, _, info = env.step(np.array([256.0, 256.0]))
    np.testing.assert_allclose(obs["environment_state"], block_keypoints(*info["block_pose"]).reshape(18), atol=1e-9)
    assert "coverage" in info
    with pytest.raises(ValueError, match="5-d state"):
        PushTKeypoints(env.env).observation(np.zeros(3))
