"""Exporting a LoRA-trained policy (save_pretrained(lora=...), callbacks.export_pretrained.lora): ``adapters`` keeps
base weights and adapters (load_policy re-injects them), ``merged`` folds them into a plain model; both load back with
load_policy and act like the trained policy, and the merged one also converts to lerobot's format (its push to a fake
Hub is in test_policy_hub.py). A tiny SmolVLA (random local VLM) with adapters on its default targets."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies import load_policy, save_lerobot_pretrained, save_pretrained
from robolearn.policies.lerobot_compat import LerobotFormatError
from robolearn.policies.smolvla import SmolVLAPolicy
from robolearn.policies.smolvla.tiny import write_tiny_smolvlm
from robolearn.policies.vla.lora import merge_lora, merged_lora_state_dict
from tests.presets import smoke_policy_kwargs

from .helpers import TINY_ACT, features, stats

PEFT = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": None, "modules_to_save": ["state_proj"]}
FEATURES = {"observation.image": PolicyFeature(FT.VISUAL, (3, 24, 32)),
            "observation.state": PolicyFeature(FT.STATE, (2,)), "action": PolicyFeature(FT.ACTION, (2,))}


@pytest.fixture(scope="module")
def lora_policy(tmp_path_factory) -> SmolVLAPolicy:
    """A tiny SmolVLA with LoRA whose adapters are not at their initialization (lora_B != 0)."""
    vlm = write_tiny_smolvlm(tmp_path_factory.mktemp("vlm"), image_size=32)
    torch.manual_seed(0)
    policy = SmolVLAPolicy(FEATURES, stats(FEATURES), vlm_model_name=str(vlm), load_vlm_weights=True,
                           peft=PEFT, **smoke_policy_kwargs("smolvla"))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return policy.eval()


def _obs():
    g = torch.Generator().manual_seed(1)
    return {"observation.image": torch.rand(2, 3, 24, 32, generator=g), "observation.state": torch.randn(2, 2, generator=g),
            "task": ["push the block", "push the block"], "noise": torch.randn(2, 4, 6, generator=g)}


def test_adapters_and_merged_exports_load_and_act_alike(lora_policy, tmp_path):
    expected = lora_policy.predict_action_chunk(_obs())

    adapters = save_pretrained(lora_policy, tmp_path / "adapters", {"seed": 1})
    weights = load_file(str(adapters / "model.safetensors"))
    assert any(".lora_A." in k for k in weights) and any(".base_layer." in k for k in weights)
    assert OmegaConf.load(adapters / "config.yaml").policy.peft.r == 4
    q = load_policy(adapters)
    assert q.hparams["peft"]["r"] == 4
    assert torch.equal(q.predict_action_chunk(_obs()), expected)

    merged = save_pretrained(lora_policy, tmp_path / "merged", {"seed": 1}, lora="merged")
    weights = load_file(str(merged / "model.safetensors"))
    assert not any("lora_" in k or ".base_layer." in k for k in weights)
    cfg = OmegaConf.to_container(OmegaConf.load(merged / "config.yaml"))
    assert cfg["policy"]["peft"] == {**PEFT, "r": 0}
    assert cfg["lora_export"] == {"mode": "merged", "peft": PEFT} and cfg["seed"] == 1
    m = load_policy(merged)
    assert m.hparams["peft"]["r"] == 0 and not any("lora_" in n for n, _ in m.named_parameters())
    torch.testing.assert_close(m.predict_action_chunk(_obs()), expected, rtol=0, atol=1e-5)
    # the same tensors as peft's own merge (merge_lora), and the training module is left as it was
    reference = copy.deepcopy(lora_policy)
    merge_lora(reference.model)
    ours = merged_lora_state_dict(lora_policy)
    assert list(ours) == list(reference.state_dict())
    assert all(torch.equal(ours[k], v) for k, v in reference.state_dict().items())
    assert any(".lora_A." in n for n, _ in lora_policy.named_parameters())

    # lerobot's format cannot hold adapters; the merged export converts
    with pytest.raises(LerobotFormatError, match="LoRA"):
        save_lerobot_pretrained(q, tmp_path / "lerobot_adapters")
    folder = save_lerobot_pretrained(m, tmp_path / "lerobot_merged")
    torch.testing.assert_close(load_policy(folder).predict_action_chunk(_obs()), expected, rtol=0, atol=1e-5)


def test_merged_is_a_no_op_without_adapters_and_bad_mode_is_refused(tmp_path):
    from robolearn.policies.act import ACTPolicy

    torch.manual_seed(0)
    f = features()
    policy = ACTPolicy(f, stats(f), **TINY_ACT).eval()
    a = save_pretrained(policy, tmp_path / "a", {"seed": 1})
    b = save_pretrained(policy, tmp_path / "b", {"seed": 1}, lora="merged")
    assert (a / "config.yaml").read_text() == (b / "config.yaml").read_text()
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ValueError, match=r"lora='fused' is not one of \['adapters', 'merged'\]"):
        save_pretrained(policy, tmp_path / "c", lora="fused")
    assert not (tmp_path / "c").exists()
