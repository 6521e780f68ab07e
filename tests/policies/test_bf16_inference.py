"""bfloat16 inference for any policy (robolearn.policies.quantize, mode "bf16"): the linear and convolution layers hold
bfloat16 weights and compute in bfloat16 while norms, embeddings and normalization statistics stay float32; the
actions stay finite and close to float32 for ACT, Diffusion Policy, VQ-BeT, TD-MPC and SAC; the mode reaches the
policy through load_policy and eval.py's config. Tiny random models; the speed is measured by
benchmarks/train_step_vs_lerobot.py, not here."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies import load_policy, save_pretrained
from robolearn.policies.act import ACTPolicy
from robolearn.policies.diffusion import DiffusionPolicy
from robolearn.policies.quantize import BF16_LAYERS, bf16_targets, model_bytes, quantize_policy
from robolearn.policies.sac import SACPolicy
from robolearn.policies.tdmpc import TDMPCPolicy
from robolearn.policies.vqbet import VQBeTPolicy
from tests.presets import smoke_policy_kwargs

from .helpers import TINY_ACT, TINY_DIFFUSION, features, stats

# Normalized L1 (mean |a_bf16 - a_fp32| / std of the fp32 actions) allowed. bfloat16 keeps 8 significant bits
# (relative rounding 2^-9 per weight and activation); through the tiny models' few layers (and Diffusion's
# denoising steps) that measures 1e-3 .. 1e-2. A layer left in the wrong dtype or a broken cast is off by ~1.
TOLERANCE = 0.05


def _tdmpc_stats() -> dict:
    return {"action": {"min": np.array([-1.0, 0.0], np.float32), "max": np.array([3.0, 2.0], np.float32)}}


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "act":
        return ACTPolicy(features(), stats(features()), **TINY_ACT)
    if name == "diffusion":
        return DiffusionPolicy(features(), stats(features()), **TINY_DIFFUSION)
    if name == "vqbet":
        return VQBeTPolicy(features(), stats(features()), **smoke_policy_kwargs(
            "vqbet", n_obs_steps=2, n_action_pred_token=2, action_chunk_size=3, crop_shape=[28, 28],
            use_group_norm=True, gpt_block_size=16))
    if name == "tdmpc":
        f = {"observation.image": PolicyFeature(FT.VISUAL, (3, 64, 64)),
             "observation.state": PolicyFeature(FT.STATE, (3,)), "action": PolicyFeature(FT.ACTION, (2,))}
        return TDMPCPolicy(f, _tdmpc_stats(), **smoke_policy_kwargs("tdmpc"))
    f = features(image=False)
    return SACPolicy(f, stats(f), **smoke_policy_kwargs("sac"))


def _actions(policy: nn.Module, steps: int = 4) -> torch.Tensor:
    """``steps`` select_action calls on fixed observations (the same noise for every model)."""
    policy.eval().reset()
    g = torch.Generator().manual_seed(3)
    out = []
    torch.manual_seed(7)
    for _ in range(steps):
        obs = {}
        for key, f in policy.input_features.items():
            obs[key] = torch.rand(2, *f.shape, generator=g) if f.type is FT.VISUAL else torch.randn(2, *f.shape,
                                                                                                   generator=g)
        out.append(policy.select_action(obs))
    return torch.stack(out, 1)


@pytest.mark.parametrize("name", ["act", "diffusion", "vqbet", "tdmpc", "sac"])
def test_bf16_actions_finite_and_close_to_float(name):
    policy = _build(name)
    reference = _actions(policy)
    half = quantize_policy(copy.deepcopy(policy), "bf16")
    actions = _actions(half)
    assert actions.dtype == reference.dtype == torch.float32 and actions.shape == reference.shape
    assert torch.isfinite(actions).all()
    error = ((actions - reference).abs().mean() / reference.std()).item()
    assert 0 < error < TOLERANCE, error  # > 0: the bf16 layers are on the actions' path
    info = half.quantization
    assert info["mode"] == "bf16" and info["library"].startswith("torch ") and info["layers"] > 0
    assert not half.training and not any(p.requires_grad for p in half.parameters())


def test_layers_bf16_norms_buffers_and_attention_float():
    policy = _build("act")
    half = quantize_policy(copy.deepcopy(policy), "bf16")
    modules = dict(half.named_modules())
    targets = set(bf16_targets(policy))
    assert len(targets) == half.quantization["layers"]
    for name, m in modules.items():
        if name in targets:
            assert m.weight.dtype == torch.bfloat16, name
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm, nn.Embedding, nn.MultiheadAttention)):
            assert all(p.dtype == torch.float32 for p in m.parameters(recurse=False)), name
    # nn.MultiheadAttention reads its projections' weights directly: its out_proj stays float32
    attention = [n for n, m in modules.items() if isinstance(m, nn.MultiheadAttention)]
    assert attention and all(f"{n}.out_proj" not in targets for n in attention)
    assert all(b.dtype != torch.bfloat16 for b in half.buffers())  # normalization statistics stay float32
    assert all(isinstance(modules[n], BF16_LAYERS) for n in targets)
    before, after = model_bytes(policy), model_bytes(half)
    assert after["total"] < before["total"]


def test_tied_weights_stay_float():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 4)
            self.head = nn.Linear(4, 5, bias=False)
            self.head.weight = self.embed.weight
            self.proj = nn.Linear(4, 4)

    assert bf16_targets(Tied()) == ["proj"]


def test_load_policy_and_eval_config_reach_bf16(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from robolearn.utils.schema import CONF_DIR, register_schemas

    path = save_pretrained(_build("act"), tmp_path / "pretrained_model")
    assert load_policy(path, quantize="bf16").quantization["mode"] == "bf16"
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("eval", overrides=[f"policy.path={path}", "policy.quantize=bf16", "env=pusht"])
    policy = instantiate(cfg.policy)  # what eval.py builds
    assert policy.quantization["mode"] == "bf16" and torch.isfinite(_actions(policy)).all()
