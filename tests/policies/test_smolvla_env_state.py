"""SmolVLA with ``env_state_in_prefix``: the environment state joins the state token, cameras become optional (the
small VLA teacher of experiments/distill_vla.py); and the sized tiny SmolVLM config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies.smolvla import SmolVLAPolicy
from robolearn.policies.smolvla.configs import tiny_smolvlm_config
from robolearn.policies.smolvla.tiny import write_tiny_smolvlm

CHUNK = 4
TASK = "pick the cube and place it on the target"


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory) -> Path:
    return write_tiny_smolvlm(tmp_path_factory.mktemp("smolvlm_env"), hidden_size=48, num_hidden_layers=2,
                              num_attention_heads=4)


def _features(cams=()):
    f = {k: PolicyFeature(FT.VISUAL, (3, 32, 32)) for k in cams}
    f["observation.state"] = PolicyFeature(FT.STATE, (3,))
    f["observation.environment_state"] = PolicyFeature(FT.ENV, (5,))
    f["action"] = PolicyFeature(FT.ACTION, (2,))
    return f


def _policy(vlm_dir, cams=(), **kw) -> SmolVLAPolicy:
    torch.manual_seed(0)
    feats = _features(cams)
    rng = np.random.default_rng(0)
    stats = {k: {"mean": rng.normal(size=f.shape).astype(np.float32),
                 "std": rng.uniform(0.5, 2, f.shape).astype(np.float32)}
             for k, f in feats.items() if f.type is not FT.VISUAL}
    args = dict(chunk_size=CHUNK, n_action_steps=2, max_state_dim=8, max_action_dim=2, num_vlm_layers=2, num_steps=3,
                resize_imgs_with_padding=(32, 32), vlm_model_name=str(vlm_dir), load_vlm_weights=True,
                train_expert_only=False, env_state_in_prefix=True)
    return SmolVLAPolicy(feats, stats, **{**args, **kw})


def _obs(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"observation.state": torch.randn(b, 3, generator=g),
            "observation.environment_state": torch.randn(b, 5, generator=g), "task": [TASK] * b}


def test_no_camera_trains_and_the_environment_state_changes_the_actions(vlm_dir):
    policy = _policy(vlm_dir)
    assert policy.image_keys == [] and policy.env_key == "observation.environment_state"
    batch = {**_obs(4), "action": torch.randn(4, CHUNK, 2), "action_is_pad": torch.zeros(4, CHUNK, dtype=torch.bool)}
    loss, _ = policy(batch)
    loss.backward()
    assert torch.isfinite(loss) and policy.model.state_proj.weight.grad.abs().sum() > 0
    # the state token holds state then environment state, zero-padded to max_state_dim
    norm = policy.normalizer.normalize(_obs())
    *_, state = policy.prepare_inputs(norm)
    assert state.shape == (2, 8)
    assert torch.equal(state, torch.cat([norm["observation.state"], norm["observation.environment_state"]], -1))
    policy.eval()
    obs, other = _obs(), _obs()
    other["observation.environment_state"] = other["observation.environment_state"] + 3.0
    noise = torch.randn(2, CHUNK, 2)
    a = policy.predict_action_chunk({**obs, "noise": noise})
    b = policy.predict_action_chunk({**other, "noise": noise})
    assert a.shape == (2, CHUNK, 2) and not torch.allclose(a, b)
    policy.reset()
    assert policy.select_action(obs).shape == (2, 2)


def test_env_state_with_a_camera_and_save_load_round_trip(vlm_dir, tmp_path):
    from robolearn.policies.pretrained import load_policy, save_pretrained

    policy = _policy(vlm_dir, cams=("observation.image",)).eval()
    obs = {**_obs(), "observation.image": torch.rand(2, 3, 32, 32), "noise": torch.randn(2, CHUNK, 2)}
    save_pretrained(policy, tmp_path / "pm")
    loaded = load_policy(tmp_path / "pm")
    assert loaded.hparams["env_state_in_prefix"] is True
    assert torch.equal(policy.predict_action_chunk(obs), loaded.predict_action_chunk(obs))


def test_errors(vlm_dir, tmp_path):
    from robolearn.policies.lerobot_compat import LerobotFormatError, save_lerobot_pretrained

    with pytest.raises(ValueError, match="camera"):
        _policy(vlm_dir, env_state_in_prefix=False)
    with pytest.raises(ValueError, match="max_state_dim"):
        _policy(vlm_dir, max_state_dim=7)  # 3 + 5 values
    feats = {k: f for k, f in _features(("observation.image",)).items() if f.type is not FT.ENV}
    with pytest.raises(ValueError, match="ENV feature"):
        SmolVLAPolicy(feats, None, chunk_size=CHUNK, n_action_steps=2, max_state_dim=8, max_action_dim=2,
                      num_vlm_layers=2, vlm_model_name=str(vlm_dir), env_state_in_prefix=True)
    with pytest.raises(LerobotFormatError, match="env_state_in_prefix"):
        save_lerobot_pretrained(_policy(vlm_dir), tmp_path / "lerobot")
    policy = _policy(vlm_dir)
    with pytest.raises(KeyError, match="environment_state"):
        policy.prepare_inputs({"observation.state": torch.zeros(1, 3), "task": [TASK]})


def test_tiny_config_sizes():
    default = tiny_smolvlm_config()["text_config"]
    assert (default["hidden_size"], default["num_hidden_layers"], default["head_dim"],
            default["num_key_value_heads"], default["intermediate_size"]) == (32, 4, 8, 2, 64)
    wide = tiny_smolvlm_config(hidden_size=64, num_hidden_layers=2)["text_config"]
    assert (wide["hidden_size"], wide["num_hidden_layers"], wide["head_dim"]) == (64, 2, 16)
    with pytest.raises(ValueError, match="divisible"):
        tiny_smolvlm_config(hidden_size=30)
