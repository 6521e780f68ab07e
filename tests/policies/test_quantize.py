"""Int8 quantization of the VLAs for inference (robolearn.policies.quantize, torchao): tiny SmolVLA / π0 / π0.5 give
finite actions close to float32 with their tower linears replaced by int8 tensors and the heads, norms and
embeddings left in float; unknown modes and non-VLA policies are refused; ``policy.quantize=`` reaches the policy
through eval.py's and the policy server's configs. Tiny random models built locally; nothing is downloaded."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from torch import nn

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies import load_policy, save_pretrained
from robolearn.policies.pi0 import Pi0Policy, Pi05Policy
from robolearn.policies.pi0.backbone import AdaRMSNorm
from robolearn.policies.quantize import INT8_MODES, is_quantized, model_bytes, quantize_policy, quantize_targets
from robolearn.policies.smolvla import SmolVLAPolicy
from robolearn.policies.smolvla.tiny import write_tiny_smolvlm
from robolearn.utils.schema import CONF_DIR, register_schemas
from tests.presets import smoke_policy_kwargs

from .helpers import TINY_ACT, features, stats
from .test_pi0 import make_tokenizer
from .test_pi0 import stats as vla_stats  # mean/std and the quantiles π0.5 normalizes with

FEATURES = {"observation.image": PolicyFeature(FT.VISUAL, (3, 24, 32)),
            "observation.state": PolicyFeature(FT.STATE, (3,)), "action": PolicyFeature(FT.ACTION, (2,))}
MODES = list(INT8_MODES)
# Normalized L1 (mean |a_q - a_fp32| / std of the fp32 actions) allowed. Per-row symmetric int8 rounds each weight
# (and, with int8_dynamic, each activation) by at most half a step, 1/254 of its row's (token's) largest magnitude;
# through a few layers and Euler steps the tiny models measure 1e-4 .. 1e-3. 0.02 leaves a margin for other CPUs'
# int8 kernels while a broken quantization (wrong scales, activations not rescaled) is off by ~1 (the spread of
# the actions themselves).
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tok")
    make_tokenizer().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def policies(tmp_path_factory, tok_dir) -> dict[str, nn.Module]:
    vlm = write_tiny_smolvlm(tmp_path_factory.mktemp("vlm"), image_size=32)
    torch.manual_seed(0)
    smolvla = SmolVLAPolicy(FEATURES, vla_stats(FEATURES), vlm_model_name=str(vlm), load_vlm_weights=True,
                            **smoke_policy_kwargs("smolvla"))
    torch.manual_seed(0)
    pi0 = Pi0Policy(FEATURES, vla_stats(FEATURES), tokenizer_name=tok_dir, **smoke_policy_kwargs("pi0"))
    torch.manual_seed(0)
    # smoke/pi05.yaml is pi0's preset through Hydra defaults, which preset_kwargs does not follow: take pi0's
    pi05 = Pi05Policy(FEATURES, vla_stats(FEATURES), tokenizer_name=tok_dir, **smoke_policy_kwargs("pi0"))
    # π0.5's adaptive norms are zero-initialized (the expert layers pass their input through, whatever the towers
    # compute); give them weights so that the quantized towers matter for the actions.
    with torch.no_grad():
        for m in pi05.modules():
            if isinstance(m, AdaRMSNorm):
                m.dense.weight.normal_(0, 0.05)
    return {"smolvla": smolvla.eval(), "pi0": pi0.eval(), "pi05": pi05.eval()}


def _obs(b: int = 3, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"observation.image": torch.rand(b, 3, 24, 32, generator=g),
            "observation.state": torch.randn(b, 3, generator=g), "task": ["push the block"] * b}


def _chunk(policy, obs) -> torch.Tensor:
    torch.manual_seed(7)  # the same flow-matching noise for every model
    return policy.predict_action_chunk(obs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["smolvla", "pi0", "pi05"])
def test_quantized_actions_finite_and_close_to_float(policies, name, mode):
    policy = policies[name]
    obs = _obs()
    reference = _chunk(policy, obs)
    quantized = quantize_policy(copy.deepcopy(policy), mode)
    actions = _chunk(quantized, obs)
    assert actions.shape == reference.shape == (3, policy.chunk_size, 2)
    assert torch.isfinite(actions).all()
    error = ((actions - reference).abs().mean() / reference.std()).item()
    assert 0 < error < TOLERANCE, error  # > 0: the int8 layers are on the actions' path
    assert quantized.quantization["mode"] == mode and quantized.quantization["library"].startswith("torchao")
    assert not any(p.requires_grad for p in quantized.parameters()) and not quantized.training


@pytest.mark.parametrize("name", ["smolvla", "pi0", "pi05"])
def test_bf16_vla_actions_close_to_float(policies, name):
    policy = policies[name]
    obs = _obs()
    reference = _chunk(policy, obs)
    half = quantize_policy(copy.deepcopy(policy), "bf16")
    actions = _chunk(half, obs)
    assert actions.dtype == torch.float32 and torch.isfinite(actions).all()
    error = ((actions - reference).abs().mean() / reference.std()).item()
    assert 0 < error < TOLERANCE, error
    assert half.quantization["mode"] == "bf16" and half.quantization["layers"] > 0


@pytest.mark.parametrize("name", ["smolvla", "pi0", "pi05"])
def test_tower_linears_quantized_heads_norms_embeddings_float(policies, name):
    policy = policies[name]
    targets = quantize_targets(policy)
    quantized = quantize_policy(copy.deepcopy(policy), "int8_dynamic")
    modules = dict(quantized.named_modules())
    linears = {n for n, m in modules.items() if isinstance(m, nn.Linear)}
    assert set(targets) <= linears and len(targets) == quantized.quantization["layers"]
    for n in targets:
        w = modules[n].weight
        assert is_quantized(w) and w.qdata.dtype == torch.int8 and w.dtype == torch.float32, n
    kept = linears - set(targets)
    for n in kept:
        assert not is_quantized(modules[n].weight), n
    heads = {"action_in_proj", "action_out_proj"} | ({"state_proj"} if name != "pi05" else {"time_mlp_in"})
    assert heads <= {n.rsplit(".", 1)[-1] for n in kept}
    if name == "pi05":  # the adaptive RMSNorms' dense layers compute norm scales: kept in float
        assert any(n.endswith("input_layernorm.dense") for n in kept)
        assert not any("layernorm" in n or n.endswith("norm.dense") for n in targets)
    # every attention/MLP projection of both towers, the vision encoder's included
    assert any(".vision_" in n for n in targets) and sum("expert" in n for n in targets) >= 7 * 2
    for m in quantized.modules():
        if isinstance(m, (nn.Embedding, nn.Conv2d, nn.LayerNorm)):
            assert all(not is_quantized(p) for p in m.parameters())
    before, after = model_bytes(policy), model_bytes(quantized)
    assert before["quantized"] == 0 and after["quantized"] > 0 and after["total"] < before["total"]


def test_unknown_mode_and_non_vla_policy_are_refused(policies, tmp_path):
    with pytest.raises(ValueError, match=r"'none', 'bf16', 'int8_weight_only', 'int8_dynamic'"):
        quantize_policy(copy.deepcopy(policies["smolvla"]), "int4")
    with pytest.raises(ValueError, match=r"int8_weight_only"):  # checked before anything is loaded
        load_policy(tmp_path / "does_not_exist", quantize="fp8")
    from robolearn.policies.act import ACTPolicy

    act = ACTPolicy(features(), stats(features()), **TINY_ACT)
    assert quantize_policy(act, "none") is act and quantize_policy(act, None) is act
    with pytest.raises(ValueError, match="SmolVLAPolicy, Pi0Policy, Pi05Policy"):
        quantize_policy(act, "int8_dynamic")
    twice = quantize_policy(copy.deepcopy(policies["pi0"]), "int8_weight_only")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_policy(twice, "int8_dynamic")


def _compose(name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def test_eval_and_server_configs_reach_the_policy(policies, tmp_path):
    from robolearn.inference.server import server_from_config

    path = save_pretrained(policies["smolvla"], tmp_path / "pretrained_model")
    obs = _obs(b=1)
    reference = _chunk(load_policy(path), obs)

    cfg = _compose("eval", [f"policy.path={path}", "policy.quantize=int8_dynamic", "env=pusht"])
    assert _compose("eval", [f"policy.path={path}", "env=pusht"]).policy.quantize == "none"
    policy = instantiate(cfg.policy)  # what eval.py's run_eval builds
    assert policy.quantization["mode"] == "int8_dynamic" and is_quantized(
        policy.model.vlm_with_expert.lm_expert.layers[0].mlp.down_proj.weight)
    actions = _chunk(policy, obs)
    assert torch.isfinite(actions).all() and 0 < ((actions - reference).abs().mean() / reference.std()) < TOLERANCE

    serve = _compose("serve", [f"policy.path={path}", "policy.quantize=int8_weight_only", "port=0"])
    server = server_from_config(serve)  # built, not started
    assert server.policy.quantization["mode"] == "int8_weight_only"
    bad = _compose("serve", [f"policy.path={path}", "policy.quantize=int8"])
    with pytest.raises(ValueError, match="expected one of"):
        server_from_config(bad)
