"""Metrics on a hand-checked recorded rollout, and the Wilson interval against hand-computed values."""

import gymnasium as gym
import numpy as np
import pytest

from robolearn.envs.factory import EnvSpec
from robolearn.eval.metrics import EpisodeResult, aggregate, aggregate_by_task, wilson_interval
from robolearn.eval.rollout import rollout_batch
from tests.eval.helpers import ConstantPolicy

# Two recorded episodes: (reward, terminated, info coverage) per step; env 0 ends at step 3, env 1 at step 5.
RECORDED = {
    0: [(0.1, False, 0.20), (0.5, False, 0.60), (1.0, True, 0.96)],
    1: [(0.0, False, 0.10), (0.3, False, 0.40), (0.2, False, 0.30), (0.4, False, 0.50), (0.1, True, 0.94)],
}


class ReplayEnv(gym.Env):
    """Replays the recorded rewards/terminations of the episode chosen by the reset seed (seed % 2)."""

    observation_space = gym.spaces.Dict({"agent_pos": gym.spaces.Box(-1, 1, (2,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps, self.t = RECORDED[seed % 2] if seed is not None else RECORDED[0], 0
        return {"agent_pos": np.zeros(2, np.float32)}, {}

    def step(self, action):
        if self.t >= len(self.steps):  # stepping a finished episode would be a rollout bug
            raise AssertionError("stepped past the end of the recorded episode")
        reward, terminated, coverage = self.steps[self.t]
        self.t += 1
        return {"agent_pos": np.full(2, self.t, np.float32)}, reward, terminated, False, {"coverage": coverage}


def _spec(max_steps=50):
    return EnvSpec(make=lambda max_episode_steps: ReplayEnv(), features_map={"agent_pos": "observation.state"}, fps=10,
                   max_episode_steps=max_steps, task="replay", success_key="coverage", success_threshold=0.95,
                   max_info_keys=["coverage"], name="replay")


def test_recorded_rollout_metrics():
    spec = _spec()
    # Autoreset would restart env 0 after its 3rd step and step it again: ReplayEnv tolerates that (new episode),
    # and the rollout must ignore it.
    vec = gym.vector.SyncVectorEnv([lambda: ReplayEnv(), lambda: ReplayEnv()])
    policy = ConstantPolicy([0.0, 0.0])
    results, frames = rollout_batch(vec, policy, spec, seeds=[10, 11], episode_indices=[0, 1])
    vec.close()
    assert policy.resets == 1 and len(policy.batches) == 5 and frames == {}
    r0, r1 = results
    assert (r0.seed, r1.seed, r0.length, r1.length) == (10, 11, 3, 5)
    assert r0.sum_reward == pytest.approx(1.6) and r0.max_reward == pytest.approx(1.0)
    assert r1.sum_reward == pytest.approx(1.0) and r1.max_reward == pytest.approx(0.4)
    assert r0.success and not r1.success  # 0.96 >= 0.95; 0.94 < 0.95
    assert r0.max_info == {"coverage": pytest.approx(0.96)} and r1.max_info == {"coverage": pytest.approx(0.94)}

    agg = aggregate(results)
    assert agg["pc_success"] == 50.0 and agg["n_success"] == 1
    assert agg["avg_sum_reward"] == pytest.approx(1.3) and agg["avg_max_reward"] == pytest.approx(0.7)
    assert agg["avg_episode_length"] == 4.0 and agg["avg_max_coverage"] == pytest.approx(0.95)
    # Wilson 95 % for 1/2: centre (0.5 + z^2/4) / (1 + z^2/2) = 0.5, half = z/(1+z^2/2) * sqrt(1/8 + z^2/16)
    z = 1.959963984540054
    half = z / (1 + z * z / 2) * np.sqrt(0.125 + z * z / 16)
    assert agg["pc_success_ci95"] == pytest.approx([100 * (0.5 - half), 100 * (0.5 + half)])
    assert agg["pc_success_ci95"] == pytest.approx([9.4531, 90.5469], abs=1e-3)


def test_step_cap_truncates_unfinished_episodes():
    vec = gym.vector.SyncVectorEnv([lambda: ReplayEnv(), lambda: ReplayEnv()])
    results, _ = rollout_batch(vec, ConstantPolicy([0.0, 0.0]), _spec(max_steps=2), seeds=[0, 1], episode_indices=[4, 5])
    vec.close()
    assert [r.length for r in results] == [2, 2] and [r.episode_index for r in results] == [4, 5]
    assert results[0].sum_reward == pytest.approx(0.6) and not results[0].success


@pytest.mark.parametrize("k,n,expected", [
    (7, 10, (0.396778, 0.892209)),   # textbook value (Wilson 1927; e.g. Agresti & Coull 1998)
    (0, 10, (0.0, 0.277533)),       # z^2 / (n + z^2)
    (10, 10, (0.722467, 1.0)),
    (50, 100, (0.403832, 0.596168)),
])
def test_wilson_interval_hand_computed(k, n, expected):
    assert wilson_interval(k, n) == pytest.approx(expected, abs=1e-6)


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError, match="successes=3, n=2"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="no episodes"):
        aggregate([])


def test_aggregate_by_task_groups_episodes():
    eps = [EpisodeResult(0, 0, 1.0, 1.0, True, 5, task="a"), EpisodeResult(1, 1, 0.0, 0.0, False, 9, task="b"),
           EpisodeResult(2, 2, 0.5, 0.5, True, 7, task="a")]
    groups = aggregate_by_task(eps)
    assert set(groups) == {"a", "b"}
    assert groups["a"]["pc_success"] == 100.0 and groups["a"]["avg_episode_length"] == 6.0
    assert groups["b"]["pc_success"] == 0.0 and groups["b"]["n_episodes"] == 1
    assert eps[0].to_dict()["task"] == "a"
