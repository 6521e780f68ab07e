"""OnlineRLDataModule with an offline buffer: PD-expert demonstrations of the planar task written as a LeRobotDataset
are mixed into every batch (RLPD), and observation statistics come from the dataset's stats.json."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from robolearn.datasets import LeRobotDatasetWriter
from robolearn.envs.planar_arm import PlanarReachPD
from robolearn.policies.sac import SACPolicy
from robolearn.rl.datamodule import OnlineRLDataModule

ENV_ID = "robolearn.envs.planar_arm:robolearn/PlanarReach-v0"
FEATURES_MAP = {"agent_pos": "observation.state", "environment_state": "observation.environment_state"}


def _write_demos(root, episodes=2, steps=10):
    env = gym.make(ENV_ID)
    expert = PlanarReachPD(env)
    feats = {"observation.state": {"dtype": "float32", "shape": [4], "names": None},
             "observation.environment_state": {"dtype": "float32", "shape": [4], "names": None},
             "action": {"dtype": "float32", "shape": [2], "names": None},
             "next.reward": {"dtype": "float32", "shape": [1], "names": None}}
    w = LeRobotDatasetWriter.create("local/planar_demos", 20, feats, root=root, use_videos=False)
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        expert.reset()
        for _ in range(steps):
            action = expert.act(obs)
            nxt, reward, term, trunc, _ = env.step(action)
            w.add_frame({"observation.state": obs["agent_pos"], "observation.environment_state": obs["environment_state"],
                         "action": action, "next.reward": np.array([reward], dtype=np.float32), "task": "reach"})
            obs = nxt
            if term or trunc:
                break
        w.save_episode()
    w.finalize()


def test_offline_demos_are_mixed_into_online_batches(tmp_path):
    root = tmp_path / "demos"
    _write_demos(root)
    dm = OnlineRLDataModule(ENV_ID, FEATURES_MAP, offline_repo_id="local/planar_demos", offline_root=str(root),
                            online_ratio=0.5, batch_size=400, online_step_before_learning=5, seed=0)
    from robolearn.datasets import LeRobotDatasetMetadata

    meta_stats = LeRobotDatasetMetadata("local/planar_demos", root=root).stats
    assert np.allclose(dm.stats["observation.state"]["max"], meta_stats["observation.state"]["max"])
    assert dm.stats["action"]["max"].tolist() == [1.0, 1.0]  # always the action-space bounds
    torch.manual_seed(0)
    policy = SACPolicy(dm.features, dm.stats, latent_dim=8, state_encoder_hidden_dim=8,
                       actor_network_kwargs={"hidden_dims": [8]}, critic_network_kwargs={"hidden_dims": [8]})
    dm.connect(policy)
    assert len(dm.offline_buffer) == 20
    batch = dm.next_batch()
    assert len(dm.online_buffer) == 6  # 5 warm-up steps + 1 policy step
    n_on = dm.sampler.last_online_count
    assert 150 < n_on < 250  # Binomial(400, 0.5): mean 200, sd 10
    # online rows carry the actor's intervention flag (0); the offline rows are zero-filled
    assert batch["complementary_info.is_intervention"].shape == (400,)
    offline_states = dm.offline_buffer.gather(torch.arange(20))["observation.state"]
    rows = batch["observation.state"][n_on:]
    assert all((offline_states == r).all(1).any() for r in rows)
    loss, info = policy(batch)
    assert torch.isfinite(loss)
