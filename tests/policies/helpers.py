"""Tiny synthetic features, stats and batches for the policy tests."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tests.presets import smoke_policy_kwargs
from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature

IMG = (3, 32, 32)

TINY_ACT = smoke_policy_kwargs("act", chunk_size=5)
# the smoke sizes, with a shorter horizon and a crop that fits IMG
TINY_DIFFUSION = smoke_policy_kwargs("diffusion", horizon=8, n_action_steps=4, crop_shape=[28, 28])


def features(image: bool = True, env: bool = False, state_dim: int = 3, action_dim: int = 2) -> dict[str, PolicyFeature]:
    f = {}
    if image:
        f["observation.image"] = PolicyFeature(FT.VISUAL, IMG)
    f["observation.state"] = PolicyFeature(FT.STATE, (state_dim,))
    if env:
        f["observation.environment_state"] = PolicyFeature(FT.ENV, (4,))
    f["action"] = PolicyFeature(FT.ACTION, (action_dim,))
    return f


def stats(feats: dict[str, PolicyFeature]) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = {}
    for k, f in feats.items():
        shape = (f.shape[0], 1, 1) if f.type is FT.VISUAL else f.shape
        lo = rng.uniform(-2, -1, shape).astype(np.float32)
        out[k] = {"mean": rng.uniform(-0.5, 0.5, shape).astype(np.float32),
                  "std": rng.uniform(0.5, 2.0, shape).astype(np.float32),
                  "min": lo, "max": lo + rng.uniform(1, 3, shape).astype(np.float32),
                  "count": np.array([100])}
    return out


def batch(feats: dict[str, PolicyFeature], b: int = 4, t_obs: int | None = None, t_act: int = 5, seed: int = 0) -> dict:
    """Raw batch; observations windowed to ``t_obs`` frames if given."""
    g = torch.Generator().manual_seed(seed)
    out: dict = {}
    for k, f in feats.items():
        if f.type is FT.ACTION:
            out[k] = torch.randn(b, t_act, *f.shape, generator=g)
            out[f"{k}_is_pad"] = torch.zeros(b, t_act, dtype=torch.bool)
            continue
        lead = (b,) if t_obs is None else (b, t_obs)
        if f.type is FT.VISUAL:
            out[k] = torch.rand(*lead, *f.shape, generator=g)
        else:
            out[k] = torch.randn(*lead, *f.shape, generator=g)
        if t_obs is not None:
            out[f"{k}_is_pad"] = torch.zeros(b, t_obs, dtype=torch.bool)
    out["task"] = ["do it"] * b
    out["index"] = torch.arange(b)
    return out


def observation(feats: dict[str, PolicyFeature], b: int = 4, seed: int = 1) -> dict:
    """One raw single-frame observation."""
    full = batch(feats, b=b, seed=seed)
    return {k: v for k, v in full.items() if k in feats and feats[k].type is not FT.ACTION}


class FixedBatch(Dataset):
    """A dataset that yields the items of one fixed batch (collated back by the DataLoader)."""

    def __init__(self, full: dict):
        self.full = full
        self.n = len(full["index"])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {k: (v[i] if not isinstance(v, list) else v[i]) for k, v in self.full.items()}


def loader(full: dict) -> DataLoader:
    return DataLoader(FixedBatch(full), batch_size=len(full["index"]), shuffle=False)
