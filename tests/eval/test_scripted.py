"""policy=scripted: the env's scripted expert runs inside each env and its action drives the rollout."""

import numpy as np
import pytest
import torch

from robolearn.envs.expert import ScriptedExpert
from robolearn.envs.factory import EnvSpec, make_vec_env
from robolearn.envs.so101_gym import SO101Expert, SO101PickPlaceEnv
from robolearn.eval import evaluate_policy
from robolearn.policies.scripted import ScriptedPolicy
from tests.eval.helpers import pusht_spec


class CenterExpert(ScriptedExpert):
    """PushT 'expert' that moves the agent to the observed agent position + (10, -10) px."""

    def reset(self):
        self.calls = 0

    def act(self, observation):
        self.calls += 1
        return np.asarray(observation["agent_pos"], np.float32) + np.array([10.0, -10.0], np.float32)


def _make_state_only(max_episode_steps):
    return SO101PickPlaceEnv(camera=None, max_episode_steps=max_episode_steps)


def so101_spec(max_steps, camera=True):
    fmap = {"agent_pos": "observation.state", "environment_state": "observation.environment_state"}
    if camera:
        fmap["pixels.workspace"] = "observation.images.workspace"
    make = (lambda max_episode_steps: SO101PickPlaceEnv(max_episode_steps=max_episode_steps)) if camera else _make_state_only
    return EnvSpec(make=make, features_map=fmap,
                   fps=10, max_episode_steps=max_steps, task="pick", expert=SO101Expert, name="so101")


@pytest.mark.parametrize("use_async", [False, True])
def test_expert_action_reaches_policy_through_vector_info(use_async):
    spec = pusht_spec(max_episode_steps=3, expert=CenterExpert)
    vec = make_vec_env(spec, 2, use_async=use_async, with_expert=True)
    obs, info = vec.reset(seed=[1, 2])
    np.testing.assert_allclose(info["expert_action"], obs["agent_pos"] + [10.0, -10.0], rtol=1e-6)
    action = ScriptedPolicy().select_action({"expert.action": torch.as_tensor(info["expert_action"])})
    assert action.shape == (2, 2) and action.dtype == torch.float32
    vec.close()


def test_scripted_policy_without_expert_is_an_error():
    with pytest.raises(ValueError, match="has no scripted expert"):
        evaluate_policy(ScriptedPolicy(), pusht_spec(), n_episodes=1, progress=False)
    with pytest.raises(KeyError, match="expert.action"):
        ScriptedPolicy().select_action({"observation.state": torch.zeros(1, 2)})


def test_so101_env_matches_default_dataset_features():
    from robolearn.envs.so101 import DEFAULT_CAMERA, DEFAULT_IMAGE_SIZE
    from robolearn.envs.so101 import SO101PickPlaceSim
    from robolearn.features import dataset_to_policy_features

    env = SO101PickPlaceEnv()
    try:
        feats = so101_spec(10).features(env.observation_space)
    finally:
        env.close()
    with SO101PickPlaceSim(camera=DEFAULT_CAMERA, image_size=DEFAULT_IMAGE_SIZE) as sim:
        expected = {k: v for k, v in dataset_to_policy_features(sim.features()).items() if k != "action"}
    assert feats == expected


def test_scripted_so101_succeeds():
    info = evaluate_policy(ScriptedPolicy(), so101_spec(max_steps=70, camera=False), n_episodes=1, seed=1000, progress=False)
    ep = info["per_episode"][0]
    assert ep["success"] and ep["max_reward"] == 1.0 and ep["length"] < 70  # success terminates the episode
    assert info["aggregated"]["pc_success"] == 100.0
