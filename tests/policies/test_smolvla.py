"""SmolVLA: tiny random SmolVLM built locally (no download) -> forward/backward, flow matching, masks, inference,
save/load round trips (robolearn and lerobot formats), LoRA, and train.py."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies.smolvla import SmolVLAPolicy
from robolearn.policies.smolvla.attention import apply_rope, masked_attention
from robolearn.policies.smolvla.tiny import write_tiny_smolvlm
from robolearn.policies.vla.flow import (euler_integrate, noisy_actions, sample_beta_time, sample_uniform_time,
                                         sinusoidal_time_embedding)
from robolearn.policies.vla.images import resize_with_pad
from robolearn.policies.vla.lora import merge_lora, parameter_report
from robolearn.policies.vla.masks import make_att_2d_masks

REPO = Path(__file__).resolve().parents[2]
CHUNK, MAX_DIM, IMG = 4, 6, 32
TINY_KWARGS = dict(chunk_size=CHUNK, n_action_steps=2, max_state_dim=MAX_DIM, max_action_dim=MAX_DIM,
                   resize_imgs_with_padding=(IMG, IMG), num_vlm_layers=4, num_steps=3)
# Overrides of `python train.py policy=smolvla` for a CPU smoke run (plus policy.vlm_model_name=<tiny folder>).
TRAIN_TINY = ["debug=smoke", "policy.load_vlm_weights=true", "policy.scheduler_warmup_steps=2",
              "policy.scheduler_decay_steps=10"]


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory) -> Path:
    return write_tiny_smolvlm(tmp_path_factory.mktemp("smolvlm_tiny"), image_size=IMG)


def _features(state_dim=2, action_dim=2, cams=("observation.image",)):
    f = {k: PolicyFeature(FT.VISUAL, (3, 24, IMG)) for k in cams}
    f["observation.state"] = PolicyFeature(FT.STATE, (state_dim,))
    f["action"] = PolicyFeature(FT.ACTION, (action_dim,))
    return f


def _stats(feats):
    rng = np.random.default_rng(0)
    return {k: {"mean": rng.normal(size=f.shape).astype(np.float32), "std": rng.uniform(0.5, 2, f.shape).astype(np.float32)}
            for k, f in feats.items() if f.type is not FT.VISUAL}


def _policy(vlm_dir, seed=0, **kw) -> SmolVLAPolicy:
    torch.manual_seed(seed)
    feats = _features()
    args = {**TINY_KWARGS, **kw}
    return SmolVLAPolicy(feats, _stats(feats), vlm_model_name=str(vlm_dir), load_vlm_weights=True, **args)


def _batch(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"observation.image": torch.rand(b, 3, 24, IMG, generator=g),
            "observation.state": torch.randn(b, 2, generator=g),
            "action": torch.randn(b, CHUNK, 2, generator=g),
            "action_is_pad": torch.zeros(b, CHUNK, dtype=torch.bool),
            "task": ["push the T block", "pick the red cube and place it on the box"][:b]}


def _obs(batch):
    return {k: batch[k] for k in ("observation.image", "observation.state", "task")}


# ---------------------------------------------------------------------------------------------- flow matching
def test_beta_time_sampling_range_and_mean():
    t = sample_beta_time(20000, generator=torch.Generator().manual_seed(0))
    assert t.shape == (20000,) and t.min() >= 0.001 and t.max() <= 1.0
    # E[Beta(1.5, 1)] = 1.5 / 2.5 = 0.6 -> 0.6 * 0.999 + 0.001
    assert abs(t.mean().item() - (0.6 * 0.999 + 0.001)) < 0.01
    u = sample_uniform_time(1000, 0.2, 0.4, generator=torch.Generator().manual_seed(0))
    assert u.min() >= 0.2 and u.max() < 0.4
    with pytest.raises(ValueError, match="alpha"):
        sample_beta_time(2, alpha=0)


def test_noisy_actions_and_time_embedding_hand_computed():
    actions, noise = torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[3.0, -1.0]]])
    x_t, u_t = noisy_actions(actions, noise, torch.tensor([0.25]))
    assert torch.allclose(x_t, torch.tensor([[[0.25 * 3 + 0.75 * 1, 0.25 * -1 + 0.75 * 2]]]))
    assert torch.allclose(u_t, torch.tensor([[[2.0, -3.0]]]))
    emb = sinusoidal_time_embedding(torch.tensor([0.5]), 4, min_period=4e-3, max_period=4.0)
    a0, a1 = 2 * math.pi * 0.5 / 4e-3, 2 * math.pi * 0.5 / 4.0
    assert torch.allclose(emb, torch.tensor([[math.sin(a0), math.sin(a1), math.cos(a0), math.cos(a1)]]), atol=1e-5)


def test_euler_integration_hand_computed():
    x1 = torch.tensor([[2.0]])
    assert torch.allclose(euler_integrate(lambda x, t: torch.full_like(x, 3.0), x1, 5), torch.tensor([[-1.0]]))
    # dx/dt = x from t=1 to 0 in n steps: x <- x (1 - 1/n)
    assert torch.allclose(euler_integrate(lambda x, t: x, x1, 4), x1 * 0.75 ** 4)
    # dx/dt = t evaluated at t = 1, 0.5 (two steps): 2 - 0.5 * (1 + 0.5)
    assert torch.allclose(euler_integrate(lambda x, t: t[:, None].expand_as(x), x1, 2), torch.tensor([[1.25]]))


def test_resize_with_pad_pads_top_left():
    img = torch.ones(1, 3, 10, 20)
    out = resize_with_pad(img, 20, 20, pad_value=-1.0)
    assert out.shape == (1, 3, 20, 20)
    assert (out[:, :, :10] == -1).all() and torch.allclose(out[:, :, 10:], torch.ones(1, 3, 10, 20))


# ---------------------------------------------------------------------------------------------- attention
def test_att_2d_mask_cell_by_cell():
    # 2 image/lang tokens (block 0), a state token (block 1), 2 action tokens (blocks 2, 3), and one pad token.
    pad = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    att = torch.tensor([[0, 0, 1, 1, 1, 0]])
    expected = torch.tensor([[1, 1, 0, 0, 0, 0],
                             [1, 1, 0, 0, 0, 0],
                             [1, 1, 1, 0, 0, 0],
                             [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 1, 0],
                             [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(make_att_2d_masks(pad, att)[0], expected)


def test_policy_prefix_and_suffix_masks(vlm_dir):
    policy = _policy(vlm_dir).eval()
    images, img_masks, tokens, lang_masks, state = policy.prepare_inputs(policy.normalizer.normalize(_batch()))
    emb, pad, att = policy.model.embed_prefix(images, img_masks, tokens, lang_masks, state)
    n_img = 16  # (32 / 4)^2 patches / scale_factor^2
    n_lang = tokens.shape[1]
    assert emb.shape[1] == n_img + n_lang + 1
    assert att[0].tolist() == [False] * (n_img + n_lang) + [True]
    assert torch.equal(pad[:, n_img:n_img + n_lang], lang_masks) and pad[:, :n_img].all() and pad[:, -1].all()
    assert not lang_masks[0].all()  # the shorter instruction is padded
    mask = make_att_2d_masks(pad, att)[0]  # item 0: padded language tokens are invisible
    lang_pad = ~lang_masks[0]
    assert not mask[:, n_img:n_img + n_lang][:, lang_pad].any()
    assert not mask[:n_img + n_lang, -1].any() and mask[-1, pad[0]].all()  # state sees everything, nobody sees it
    _, spad, satt = policy.model.embed_suffix(torch.zeros(2, CHUNK, MAX_DIM), torch.ones(2))
    assert torch.equal(make_att_2d_masks(spad, satt)[0], torch.tril(torch.ones(CHUNK, CHUNK, dtype=torch.bool)))
    assert [layer.is_cross_attention for layer in policy.model.vlm_with_expert.lm_expert.layers] == [False, True] * 2


def test_cross_attention_layers_see_prefix_only_and_actions_are_causal(vlm_dir):
    policy = _policy(vlm_dir).eval()
    model = policy.model
    images, img_masks, tokens, lang_masks, state = policy.prepare_inputs(policy.normalizer.normalize(_batch()))
    cache, ppad = model._prefix(images, img_masks, tokens, lang_masks, state)
    x = torch.randn(2, CHUNK, MAX_DIM)
    t = torch.full((2,), 0.5)
    v = model._velocity(cache, ppad, x, t)
    x2 = x.clone()
    x2[:, -1] += 5.0  # changing the last action token changes only its own output (causal self-attention)
    v2 = model._velocity(cache, ppad, x2, t)
    assert torch.allclose(v[:, :-1], v2[:, :-1], atol=1e-5) and not torch.allclose(v[:, -1], v2[:, -1])
    # changing a padded language token id changes nothing
    tok2 = tokens.clone()
    tok2[0, ~lang_masks[0]] = 5
    cache2, _ = model._prefix(images, img_masks, tok2, lang_masks, state)
    assert torch.allclose(model._velocity(cache2, ppad, x, t), v, atol=1e-5)
    # a cross-attention layer's output depends on the suffix only through its own query token
    layer = model.vlm_with_expert.lm_expert.layers[1]
    assert layer.is_cross_attention
    h = torch.randn(2, CHUNK, model.vlm_with_expert.expert_hidden_size)
    k_p, v_p = cache[1]
    b, lp = ppad.shape
    msp = ppad[:, None].expand(b, CHUNK, lp)
    full = torch.ones(b, CHUNK, CHUNK, dtype=torch.bool)
    pos = torch.arange(CHUNK)[None].expand(b, -1) + 40
    out = layer(h, k_p, v_p, msp, full, pos)
    h2 = h.clone()
    h2[:, 0] += 3.0
    out2 = layer(h2, k_p, v_p, msp, full, pos)
    assert torch.allclose(out[:, 1:], out2[:, 1:], atol=1e-5)


def test_rope_and_masked_attention_hand_computed():
    x = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]])  # (B=1, L=1, H=1, D=4): halves (1, 0) and (0, 1)
    out = apply_rope(x, torch.tensor([[2]]))
    th0, th1 = 2.0, 2.0 / 10000 ** 0.5
    expected = [math.cos(th0), -math.sin(th1), math.sin(th0), math.cos(th1)]
    assert torch.allclose(out[0, 0, 0], torch.tensor(expected), atol=1e-6)
    q = torch.zeros(1, 1, 2, 2)  # zero queries: uniform weights over the allowed keys
    k = torch.randn(1, 3, 1, 2)
    v = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]], [[100.0, 100.0]]]])
    out = masked_attention(q, k, v, torch.tensor([[[True, True, False]]]))
    assert torch.allclose(out, torch.tensor([[[2.0, 3.0, 2.0, 3.0]]]))


# ---------------------------------------------------------------------------------------------- policy
def test_forward_backward_and_trainable_parts(vlm_dir):
    policy = _policy(vlm_dir)
    loss, _ = policy(_batch())
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    named = dict(policy.named_parameters())
    assert named["model.action_out_proj.weight"].grad is not None
    assert named["model.vlm_with_expert.lm_expert.layers.1.self_attn.k_proj.weight"].grad is not None
    assert not any(p.requires_grad for n, p in named.items() if ".vlm." in n)  # train_expert_only (default)
    full = _policy(vlm_dir, train_expert_only=False, freeze_vision_encoder=False)
    trainable = {n for n, p in full.named_parameters() if p.requires_grad}
    assert "model.vlm_with_expert.vlm.model.vision_model.embeddings.patch_embedding.weight" in trainable
    assert "model.vlm_with_expert.vlm.lm_head.weight" not in trainable
    report = parameter_report(policy)
    assert report["trainable"] < report["total"] and report["adam_fp32"] == 8 * report["trainable"]


def test_padded_steps_do_not_count(vlm_dir):
    policy = _policy(vlm_dir)
    batch = _batch()
    batch["noise"], batch["time"] = torch.randn(2, CHUNK, MAX_DIM), torch.full((2,), 0.3)
    batch["action_is_pad"][:, -1] = True
    loss, _ = policy(batch)
    batch["action"] = batch["action"].clone()
    batch["action"][:, -1] = 1e3
    assert torch.allclose(policy(batch)[0], loss)


def test_select_action_queue_and_shapes(vlm_dir):
    policy = _policy(vlm_dir).eval()
    calls = []
    orig = policy.model.sample_actions
    policy.model.sample_actions = lambda *a, **k: calls.append(1) or orig(*a, **k)
    obs = _obs(_batch())
    policy.reset()
    actions = [policy.select_action(obs) for _ in range(3)]
    assert all(a.shape == (2, 2) for a in actions) and len(calls) == 2
    chunk = policy.predict_action_chunk(obs)
    assert chunk.shape == (2, CHUNK, 2)
    with pytest.raises(KeyError, match="task"):
        policy.predict_action_chunk({k: v for k, v in obs.items() if k != "task"})


def test_loss_decreases_on_real_dataset(vlm_dir, shared_datasets):
    from robolearn.datamodules.lerobot import LeRobotDataModule

    dm = LeRobotDataModule("local/pusht", root=shared_datasets / "lerobot_written_pusht_random", batch_size=4,
                           num_workers=0, val_fraction=0.0)
    torch.manual_seed(0)
    feats = {k: f for k, f in dm.features.items() if k != "next.reward"}
    policy = SmolVLAPolicy(feats, dm.stats, vlm_model_name=str(vlm_dir), load_vlm_weights=True, **TINY_KWARGS)
    dm.set_delta_indices(policy.delta_indices)
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch["task"][0], str)
    batch["noise"], batch["time"] = torch.randn(4, CHUNK, MAX_DIM), torch.full((4,), 0.5)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(20):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------------------------------------- save / load
def test_save_load_round_trip(vlm_dir, tmp_path):
    from robolearn.policies.pretrained import load_policy, save_pretrained

    policy = _policy(vlm_dir, seed=3).eval()
    assert policy.hparams["load_vlm_weights"] is False  # the weights travel in model.safetensors
    save_pretrained(policy, tmp_path / "pm")
    loaded = load_policy(tmp_path / "pm")
    obs = _obs(_batch())
    obs["noise"] = torch.randn(2, CHUNK, MAX_DIM)
    assert torch.equal(policy.predict_action_chunk(obs), loaded.predict_action_chunk(obs))


def test_lerobot_format_round_trip_and_missing_key(vlm_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    from robolearn.policies.lerobot_compat import LerobotFormatError, save_lerobot_pretrained
    from robolearn.policies.pretrained import load_policy
    from robolearn.policies.smolvla import lerobot_format

    policy = _policy(vlm_dir, seed=4).eval()
    folder = save_lerobot_pretrained(policy, tmp_path / "lerobot")
    sd = load_file(str(folder / "model.safetensors"))
    assert "model.vlm_with_expert.lm_expert.layers.1.self_attn.k_proj.weight" in sd
    assert set(lerobot_format.state_dict_from_lerobot(sd)) == {k for k in policy.state_dict() if not k.startswith("normalizer.")}
    loaded = load_policy(folder)
    obs = _obs(_batch())
    obs["noise"] = torch.randn(2, CHUNK, MAX_DIM)
    assert torch.equal(policy.predict_action_chunk(obs), loaded.predict_action_chunk(obs))
    missing = "model.vlm_with_expert.lm_expert.layers.2.mlp.up_proj.weight"
    save_file({k: v for k, v in sd.items() if k != missing}, str(folder / "model.safetensors"))
    with pytest.raises(LerobotFormatError, match=missing.replace(".", r"\.")):
        load_policy(folder)
    with pytest.raises(LerobotFormatError, match="model.foo.bar"):
        lerobot_format.state_dict_from_lerobot({"model.foo.bar": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------- LoRA
def test_lora_trains_adapters_only_and_merges(vlm_dir):
    policy = _policy(vlm_dir, peft={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": None,
                                    "modules_to_save": ["state_proj"]}).eval()
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("model.state_proj.") for n in trainable)
    assert any("lm_expert.layers.0.self_attn.q_proj.lora_A" in n for n in trainable)
    assert not any("k_proj.lora" in n for n in trainable)  # default targets: expert q/v + projections
    assert any("action_in_proj.lora_B" in n for n in trainable)
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    obs = _obs(_batch())
    obs["noise"] = torch.randn(2, CHUNK, MAX_DIM)
    before = policy.predict_action_chunk(obs)
    merged = copy.deepcopy(policy)
    merge_lora(merged.model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert torch.allclose(merged.predict_action_chunk(obs), before, atol=1e-4)
    plain = _policy(vlm_dir, seed=0).eval()
    assert set(merged.state_dict()) == set(plain.state_dict())


# ---------------------------------------------------------------------------------------------- train.py
def test_train_py_smoke(vlm_dir, tmp_path, shared_datasets):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    sys.path.insert(0, str(REPO))
    import train as train_script
    from robolearn.utils.schema import register_schemas

    GlobalHydra.instance().clear()
    register_schemas()
    overrides = ["dataset=local", f"dataset.root={shared_datasets / 'lerobot_written_pusht_random'}",
                 "dataset.num_workers=0", "dataset.batch_size=2", "dataset.val_fraction=0.2",
                 "dataset.exclude_features=[next.reward]", "policy=smolvla", f"policy.vlm_model_name={vlm_dir}",
                 *TRAIN_TINY, "policy.peft.r=4", "trainer=smoke", "logger=none", f"paths.root_dir={tmp_path}",
                 f"paths.output_dir={tmp_path / 'run'}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "experiment=none", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    trainer, policy, _ = train_script.train(cfg)
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert any("lora_" in n for n, p in policy.named_parameters() if p.requires_grad)


def test_gradient_checkpointing_same_loss_and_grads(vlm_dir):
    batch = _batch()
    batch["noise"], batch["time"] = torch.randn(2, CHUNK, MAX_DIM), torch.full((2,), 0.7)
    grads = []
    for flag in (False, True):
        policy = _policy(vlm_dir, seed=5, gradient_checkpointing=flag, train_expert_only=False)
        loss, _ = policy(batch)
        loss.backward()
        grads.append((loss.detach(), policy.model.vlm_with_expert.vlm.model.text_model.layers[0].mlp.up_proj.weight.grad))
    assert torch.allclose(grads[0][0], grads[1][0]) and torch.allclose(grads[0][1], grads[1][1], atol=1e-6)
