"""Observation mapping (env keys -> dataset keys, HWC uint8 -> CHW float) and the policy/env feature check."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.envs.observation import (
    check_policy_features,
    env_policy_features,
    flatten_observation,
    preprocess_observation,
)
from robolearn.features import FeatureType, PolicyFeature

SPACE = gym.spaces.Dict({
    "agent_pos": gym.spaces.Box(-1, 1, (14,), np.float64),
    "pixels": gym.spaces.Dict({"top": gym.spaces.Box(0, 255, (4, 6, 3), np.uint8)}),
    "environment_state": gym.spaces.Box(-1, 1, (5,), np.float64),
})
MAP = {"pixels.top": "observation.images.top", "agent_pos": "observation.state",
       "environment_state": "observation.environment_state"}


def test_env_features_from_space():
    feats = env_policy_features(SPACE, MAP)
    assert feats == {
        "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 4, 6)),
        "observation.state": PolicyFeature(FeatureType.STATE, (14,)),
        "observation.environment_state": PolicyFeature(FeatureType.ENV, (5,)),
    }
    with pytest.raises(KeyError, match=r"'pixels\.front'.*agent_pos"):
        env_policy_features(SPACE, {"pixels.front": "observation.images.front"})


def test_preprocess_converts_images_and_states():
    img = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    obs = {"agent_pos": np.ones((2, 14)), "pixels": {"top": img}, "environment_state": np.zeros((2, 5))}
    assert set(flatten_observation(obs)) == {"agent_pos", "pixels.top", "environment_state"}
    out = preprocess_observation(obs, MAP, keys={"observation.images.top", "observation.state"})
    assert set(out) == {"observation.images.top", "observation.state"}  # env state dropped: not a policy key
    im = out["observation.images.top"]
    assert im.shape == (2, 3, 4, 6) and im.dtype == torch.float32
    # pixel (b=1, h=2, w=5, c=1) of the HWC input is at [1, 1, 2, 5] in CHW, divided by 255
    assert im[1, 1, 2, 5].item() == pytest.approx(img[1, 2, 5, 1] / 255.0)
    assert float(im.max()) <= 1.0 and float(im.min()) >= 0.0
    assert out["observation.state"].dtype == torch.float32 and out["observation.state"].shape == (2, 14)


def test_feature_mismatch_error_lists_both_sides():
    env = env_policy_features(SPACE, MAP)
    policy = {"observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 96, 96)),
              "observation.state": PolicyFeature(FeatureType.STATE, (14,)),
              "observation.images.wrist": PolicyFeature(FeatureType.VISUAL, (3, 4, 6))}
    with pytest.raises(ValueError) as err:
        check_policy_features(policy, env, env_name="env 'aloha'")
    msg = str(err.value)
    assert "'observation.images.top' has shape [3, 4, 6] in the env, [3, 96, 96] in the policy" in msg
    assert "'observation.images.wrist' is missing from the env" in msg
    assert "policy input features: observation.images.top: [3, 96, 96], observation.state: [14], " \
           "observation.images.wrist: [3, 4, 6]" in msg
    assert "env features (after features_map): observation.images.top: [3, 4, 6], observation.state: [14], " \
           "observation.environment_state: [5]" in msg
    # a policy that needs a subset of the env's features passes
    check_policy_features({"observation.state": PolicyFeature(FeatureType.STATE, (14,))}, env)
