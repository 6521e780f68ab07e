"""HoldWhenDone: an env whose episode ended is not simulated again until a seeded reset."""

import gymnasium as gym
import numpy as np

from robolearn.envs.hold import HoldWhenDone


class CountingEnv(gym.Env):
    """Counts steps and resets; the episode terminates after ``length`` steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, length: int) -> None:
        self.length, self.steps, self.resets, self.t = length, 0, 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets += 1
        self.t = 0
        return np.zeros(1, np.float32), {"t": 0}

    def step(self, action):
        self.steps += 1
        self.t += 1
        done = self.t >= self.length
        return np.full(1, self.t, np.float32), 1.0, done, False, {"t": self.t, "is_success": done}


def test_held_env_repeats_its_final_transition_without_simulating():
    env = HoldWhenDone(CountingEnv(length=2))
    env.reset(seed=0)
    env.step(np.zeros(1))
    obs, reward, terminated, truncated, info = env.step(np.zeros(1))
    assert terminated and reward == 1.0 and env.holding
    for _ in range(3):  # what a vector env's autoreset does next: a seedless reset, then steps
        obs2, info2 = env.reset()
        assert obs2[0] == 2 and info2["t"] == 2
        obs3, reward3, terminated3, truncated3, _ = env.step(np.zeros(1))
        assert obs3[0] == 2 and reward3 == 0.0 and terminated3 and not truncated3
    assert env.unwrapped.steps == 2 and env.unwrapped.resets == 1
    obs, _ = env.reset(seed=5)  # a seeded reset starts the next episode
    assert not env.holding and env.unwrapped.resets == 2 and obs[0] == 0


def test_vector_env_of_held_envs_stops_simulating_finished_episodes():
    from robolearn.envs.factory import EnvSpec, make_vec_env

    lengths = iter([2, 5])
    spec = EnvSpec(make=lambda max_episode_steps: CountingEnv(next(lengths)), features_map={"": "observation.state"},
                   fps=10, max_episode_steps=10)
    vec = make_vec_env(spec, 2, hold_when_done=True)
    vec.reset(seed=[0, 1])
    for _ in range(5):
        vec.step(np.zeros((2, 1), np.float32))
    assert [e.unwrapped.steps for e in vec.envs] == [2, 5]  # the short episode was not stepped after its end
    assert [e.unwrapped.resets for e in vec.envs] == [1, 1]
    vec.close()
