"""A fake robot and a tiny deterministic ACT policy for the async inference tests."""

from __future__ import annotations

from typing import Any

import torch

from tests.presets import smoke_policy_kwargs
from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies.act import ACTPolicy
from robolearn.robots.random_robot import RandomRobot
from tests.policies.helpers import stats as random_stats  # noqa: F401 (also used by the tests)

H = W = 16
STATE_KEYS = ("shoulder.pos", "elbow.pos", "gripper.pos")
ACTION_KEYS = ("dx", "dy")


class FakeRobot(RandomRobot):
    """Three joints and one 16x16 camera; observations change at every read (seeded), and observations and actions
    are recorded."""

    name = "fake"

    def __init__(self, seed: int = 0):
        super().__init__(STATE_KEYS, ACTION_KEYS, {"front": (H, W)}, seed=seed, id="fake0")
        self.sent: list[dict[str, float]] = []
        self.observations: list[dict[str, Any]] = []

    def get_observation(self) -> dict[str, Any]:
        obs = super().get_observation()
        self.observations.append(obs)
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        sent = super().send_action(action)
        self.sent.append(sent)
        return sent


def policy_features() -> dict[str, PolicyFeature]:
    return {
        "observation.state": PolicyFeature(FT.STATE, (len(STATE_KEYS),)),
        "observation.images.front": PolicyFeature(FT.VISUAL, (3, H, W)),
        "action": PolicyFeature(FT.ACTION, (len(ACTION_KEYS),)),
    }


def tiny_act(chunk_size: int = 10) -> ACTPolicy:
    """A tiny ACT in eval mode (deterministic: zero latent, no dropout)."""
    torch.manual_seed(0)
    feats = policy_features()
    policy = ACTPolicy(feats, random_stats(feats), **smoke_policy_kwargs("act", chunk_size=chunk_size))
    return policy.eval()


def policy_input(obs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """What a direct caller of the policy would build from a FakeRobot observation."""
    state = torch.tensor([obs[k] for k in STATE_KEYS], dtype=torch.float32)
    image = torch.from_numpy(obs["front"]).permute(2, 0, 1).float() / 255.0
    return {"observation.state": state[None], "observation.images.front": image[None]}
