"""Tiny policies and env configs shared by the eval tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.presets import smoke_policy_kwargs
from robolearn.envs.factory import EnvSpec
from robolearn.features import dataset_to_policy_features
from robolearn.policies import save_pretrained

PUSHT_DS = "lerobot_written_pusht_random"
TINY_ACT = smoke_policy_kwargs("act", chunk_size=4)


def pusht_spec(max_episode_steps: int = 6, **overrides) -> EnvSpec:
    """The conf/env/pusht.yaml env, small video frames, few steps."""
    import functools

    from robolearn.envs.factory import make_gym

    make = functools.partial(make_gym, "gym_pusht/PushT-v0", obs_type="pixels_agent_pos", render_mode="rgb_array",
                             visualization_width=96, visualization_height=96, disable_env_checker=True)
    kw = dict(make=make, features_map={"pixels": "observation.image", "agent_pos": "observation.state"}, fps=10,
              max_episode_steps=max_episode_steps, task="push", success_key="coverage", success_threshold=0.95,
              max_info_keys=["coverage"], name="pusht")
    kw.update(overrides)
    return EnvSpec(**kw)


def tiny_pusht_act(root: Path):
    """A tiny random-weight ACT built with the features and stats of the lerobot-written PushT dataset."""
    from robolearn.datasets.metadata import LeRobotDatasetMetadata
    from robolearn.policies.act import ACTPolicy

    meta = LeRobotDatasetMetadata("local/pusht_random", root=root)
    feats = {k: v for k, v in dataset_to_policy_features(meta.features).items() if k != "next.reward"}
    torch.manual_seed(0)
    return ACTPolicy(feats, meta.stats, **TINY_ACT).eval()


def export_tiny_pusht_act(root: Path, out: Path) -> Path:
    policy = tiny_pusht_act(root)
    return save_pretrained(policy, out, {"policy": {}})


class ConstantPolicy:
    """Returns the same action for every env; counts resets."""

    def __init__(self, action, input_features=None):
        self.action = torch.as_tensor(np.asarray(action, dtype=np.float32))
        self.input_features = input_features or {}
        self.resets = 0
        self.batches = []

    def reset(self):
        self.resets += 1

    def select_action(self, batch):
        self.batches.append({k: (v.shape if isinstance(v, torch.Tensor) else v) for k, v in batch.items()})
        b = batch["observation.state"].shape[0]
        return self.action.expand(b, -1).clone()
