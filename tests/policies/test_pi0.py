"""π0 / π0.5: flow-matching pieces, attention mask, prompts, quantile normalization, tiny-model training,
save/load and lerobot-format round trips, LoRA, train.py. Tiny models only (``dummy`` Gemma, 28 px images, a
word-level tokenizer built locally); nothing is downloaded."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.presets import smoke_policy_kwargs
from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies.normalize import QUANTILES, Normalizer
from robolearn.policies.pi0 import Pi0Policy, Pi05Policy
from robolearn.policies.pi0.prompt import discretize_state, pi05_prompt
from robolearn.policies.vla.flow import euler_integrate, sample_beta_time, sinusoidal_time_embedding
from robolearn.policies.vla.images import resize_with_pad
from robolearn.policies.vla.masks import make_att_2d_masks
from robolearn.policies.vla.padding import pad_vector

REPO = Path(__file__).resolve().parents[2]
TASK = "Push the T-shaped block onto the target."
WORDS = ["<pad>", "<unk>", "Task", ":", ",", ";", "State", "Action", "Push", "the", "T", "-", "shaped", "block",
         "onto", "target", ".", "push", "do", "it"] + [str(i) for i in range(-1, 256)]
TINY = smoke_policy_kwargs("pi0", n_action_steps=2)


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tok")
    make_tokenizer().save_pretrained(path)
    return str(path)


def feats(state_dim: int = 3, action_dim: int = 2) -> dict[str, PolicyFeature]:
    return {"observation.image": PolicyFeature(FT.VISUAL, (3, 32, 32)),
            "observation.state": PolicyFeature(FT.STATE, (state_dim,)),
            "action": PolicyFeature(FT.ACTION, (action_dim,))}


def stats(f: dict[str, PolicyFeature]) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for k, feat in f.items():
        shape = (3, 1, 1) if feat.type is FT.VISUAL else feat.shape
        lo = rng.uniform(-2, -1, shape).astype(np.float32)
        out[k] = {"mean": rng.uniform(-0.5, 0.5, shape).astype(np.float32),
                  "std": rng.uniform(0.5, 2.0, shape).astype(np.float32),
                  "q01": lo, "q99": lo + rng.uniform(1, 3, shape).astype(np.float32)}
    return out


def batch(b: int = 2, chunk: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"observation.image": torch.rand(b, 3, 32, 32, generator=g),
            "observation.state": torch.randn(b, 3, generator=g),
            "action": torch.randn(b, chunk, 2, generator=g),
            "action_is_pad": torch.zeros(b, chunk, dtype=torch.bool), "task": ["push the block"] * b}


def make_policy(cls=Pi0Policy, tokenizer_dir: str | None = None, **kw):
    f = feats()
    p = cls(f, stats(f), **{**TINY, **kw}, tokenizer_name=tokenizer_dir or "unused")
    if tokenizer_dir is None:
        p.tokenizer = make_tokenizer()
    return p


def observation(b: dict) -> dict:
    return {k: b[k] for k in ("observation.image", "observation.state", "task")}


# --------------------------------------------------------------------------------------------- flow matching
def test_time_sampling_beta_moments_and_range():
    torch.manual_seed(0)
    t = sample_beta_time(200_000)
    a, b, scale, off = 1.5, 1.0, 0.999, 0.001
    mean = a / (a + b) * scale + off  # 0.6004
    var = a * b / ((a + b) ** 2 * (a + b + 1)) * scale ** 2  # 0.06844
    assert abs(t.mean().item() - mean) < 3e-3
    assert abs(t.var().item() - var) < 2e-3
    assert t.min().item() >= 0.001 and t.max().item() <= 1.0
    with pytest.raises(ValueError, match="alpha > 0"):
        sample_beta_time(3, alpha=0.0)


def test_sinusoidal_time_embedding_hand_computed():
    emb = sinusoidal_time_embedding(torch.tensor([0.5, 0.0]), dim=4, min_period=4e-3, max_period=4.0)
    # periods 0.004 and 4.0: angles 2*pi*0.5/0.004 = 250*pi and 2*pi*0.5/4 = pi/4
    expected = torch.tensor([[math.sin(250 * math.pi), math.sin(math.pi / 4), math.cos(250 * math.pi),
                              math.cos(math.pi / 4)], [0.0, 0.0, 1.0, 1.0]])
    torch.testing.assert_close(emb, expected, atol=1e-4, rtol=0)


def test_euler_integration_hand_computed():
    noise = torch.tensor([[1.0, 2.0]])
    # constant velocity c: x(0) = noise - c
    torch.testing.assert_close(euler_integrate(lambda x, t: torch.full_like(x, 3.0), noise, 10), noise - 3.0)
    # v = t with 2 steps: t = 1, 0.5 -> x = noise - 0.5 * 1 - 0.5 * 0.5
    torch.testing.assert_close(euler_integrate(lambda x, t: t[:, None].expand_as(x), noise, 2), noise - 0.75)
    # v = x with 4 steps: x = noise * (1 - 1/4)^4
    torch.testing.assert_close(euler_integrate(lambda x, t: x, noise, 4), noise * 0.75 ** 4)


def test_attention_mask_cell_by_cell_pi0_layout():
    """prefix = [img, img, lang, lang(pad)], suffix = [state | act, act] (π0)."""
    pad = torch.tensor([[1, 1, 1, 0, 1, 1, 1]], dtype=torch.bool)
    starts = torch.tensor([0, 0, 0, 0, 1, 1, 0])
    expected = torch.tensor([
        # i0 i1 l0 lp st a0 a1   (keys)
        [1, 1, 1, 0, 0, 0, 0],  # image 0
        [1, 1, 1, 0, 0, 0, 0],  # image 1
        [1, 1, 1, 0, 0, 0, 0],  # lang
        [0, 0, 0, 0, 0, 0, 0],  # lang padding (attends nothing)
        [1, 1, 1, 0, 1, 0, 0],  # state
        [1, 1, 1, 0, 1, 1, 1],  # action 0
        [1, 1, 1, 0, 1, 1, 1],  # action 1
    ], dtype=torch.bool)
    assert torch.equal(make_att_2d_masks(pad, starts)[0], expected)  # 1-D starts: shared by the batch
    with pytest.raises(ValueError, match="same"):
        make_att_2d_masks(pad, starts[None, :6])


def test_model_builds_the_expected_block_layout():
    """The suffix block starts the models emit: π0 [state | actions], π0.5 [actions]."""
    for cls, expected in ((Pi0Policy, [1, 1, 0, 0, 0]), (Pi05Policy, [1, 0, 0, 0])):
        p = make_policy(cls)
        _, pad, blk, cond = p.model.embed_suffix(torch.zeros(1, 6), torch.zeros(1, 4, 6), torch.tensor([0.5]))
        assert blk[0].tolist() == expected and pad.all()
        assert (cond is None) == (cls is Pi0Policy)


# --------------------------------------------------------------------------------------------- π0.5 inputs
def test_pi05_state_discretization_and_prompt_hand_computed():
    state = torch.tensor([[-1.0, 0.0, 0.999, -1.5, 0.5]])
    # edges -1 + 2k/256: -1 -> bin 0; 0 -> 128; 0.999 -> 255; below -1 -> -1 (lerobot's digitize); 0.5 -> 192
    assert discretize_state(state).tolist() == [[0, 128, 255, -1, 192]]
    padded = pad_vector(state, 7)
    prompt = pi05_prompt(" push_the\nT ", discretize_state(padded)[0].tolist())
    assert prompt == "Task: push the T, State: 0 128 255 -1 192 128 128;\nAction: "


def test_pi0_images_are_padded_centred():
    """openpi / lerobot π0: a 10x20 frame resized to 20x20 keeps 10 rows, with 5 padding rows above and below."""
    out = resize_with_pad(torch.ones(1, 3, 10, 20), 20, 20, pad_value=-1.0, align="center")
    assert out.shape == (1, 3, 20, 20)
    assert (out[:, :, :5] == -1).all() and (out[:, :, 15:] == -1).all() and (out[:, :, 5:15] == 1).all()
    odd = resize_with_pad(torch.ones(1, 1, 4, 7), 7, 7, align="center")  # 3 padding rows: 1 above, 2 below
    assert odd[0, 0, :, 0].tolist() == [0, 1, 1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="align"):
        resize_with_pad(torch.ones(1, 1, 4, 7), 7, 7, align="bottom")


def test_pi05_policy_prompt_uses_quantile_normalized_state():
    p = make_policy(Pi05Policy)
    assert p.hparams.tokenizer_max_length == 200 and p.normalizer.modes["observation.state"] is QUANTILES
    q01 = p.normalizer.stats.observation_state.q01
    q99 = p.normalizer.stats.observation_state.q99
    raw = {"observation.state": (q01 + q99)[None] / 2, "task": "do_it"}  # normalizes to 0 -> bin 128
    prompts = p._prompts(p.normalizer.normalize(raw), 1)
    assert prompts == ["Task: do it, State: " + " ".join(["128"] * 6) + ";\nAction: "]


def test_quantile_normalization_values():
    f = {"observation.state": PolicyFeature(FT.STATE, (3,)), "action": PolicyFeature(FT.ACTION, (3,))}
    st = {k: {"q01": np.array([0.0, -2.0, 1.0]), "q99": np.array([10.0, 2.0, 1.0])} for k in f}
    n = Normalizer(f, st, {"STATE": "QUANTILES", "ACTION": "QUANTILES"})
    x = torch.tensor([[5.0, 1.0, 1.0], [0.0, 4.0, 1.0]])
    y = n.normalize_tensor("observation.state", x)
    torch.testing.assert_close(y, torch.tensor([[0.0, 0.5, -1.0], [-1.0, 2.0, -1.0]]))  # zero range -> eps
    torch.testing.assert_close(n.unnormalize_tensor("action", y), x)
    with pytest.raises(KeyError, match="q99"):
        Normalizer(f, {k: {"q01": np.zeros(3)} for k in f}, {"STATE": "QUANTILES"})


# --------------------------------------------------------------------------------------------- tiny models
@pytest.mark.parametrize("cls", [Pi0Policy, Pi05Policy])
def test_forward_backward_and_select_action_shapes(cls):
    torch.manual_seed(0)
    p = make_policy(cls)
    assert p.delta_indices == {"action": [0, 1, 2, 3]}
    loss, _ = p(batch())
    loss.backward()
    pwe = p.model.paligemma_with_expert
    parts = [("expert", pwe.gemma_expert), ("action_out_proj", p.model.action_out_proj)]
    if cls is Pi0Policy:
        parts += [("language model", pwe.language_model), ("vision", pwe.vision_tower)]
    else:
        # π0.5's adaRMS gates start at zero (openpi), so at init no gradient reaches the prefix; the gates learn
        parts += [("adaRMS", pwe.gemma_expert.model.layers[0].input_layernorm.dense)]
    for name, module in parts:
        grads = [q.grad for q in module.parameters() if q.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    p.eval()
    obs = observation(batch())
    with torch.no_grad():
        chunk = p.predict_action_chunk(obs)
    assert chunk.shape == (2, 4, 2)
    p.reset()
    a0, a1 = p.select_action(obs), p.select_action(obs)
    assert a0.shape == a1.shape == (2, 2) and len(p._action_queue) == 0  # n_action_steps=2: one inference


def test_loss_is_finite_under_bf16_autocast():
    """Lightning's ``precision=bf16-mixed`` (the FSDP config) runs the model under autocast; the masked attention fill
    must fit the scores' dtype (it once overflowed bfloat16)."""
    torch.manual_seed(0)
    p = make_policy(Pi0Policy)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss, _ = p(batch())
    assert torch.isfinite(loss)
    loss.backward()


def test_loss_zeroes_padded_steps_and_extra_action_dims():
    """lerobot's reduction: per-element loss times (not action_is_pad), cut to the real action dims, mean."""
    p = make_policy()
    b = batch()
    b["action_is_pad"][:, 2:] = True
    nb = p.normalizer.normalize(b)
    torch.manual_seed(1)
    loss, _ = p.compute_loss(nb)
    torch.manual_seed(1)
    elem = p.model(**p.prepare_inputs(nb), actions=pad_vector(nb["action"], 6))
    assert elem.shape == (2, 4, 6)
    masked = elem * (~b["action_is_pad"])[..., None]
    torch.testing.assert_close(loss, masked[..., :2].mean())
    assert not torch.isclose(loss, elem[..., :2].mean())


def test_cached_prefix_inference_equals_full_sequence_forward():
    """The suffix velocity with the prefix KV cache equals a joint forward over prefix + suffix."""
    torch.manual_seed(0)
    p = make_policy().eval()
    m = p.model
    ins = p.prepare_inputs(p.normalizer.normalize(batch()))
    x = torch.randn(2, 4, 6)
    # one Euler step from t = 1 (dt = -1): sampled = x - v(x, 1), with the cached prefix
    m.num_inference_steps = 1
    v_cached = x - m.sample_actions(**ins, noise=x)
    # training forward at t = 1 with zero actions: x_t = x and target u = x, so loss = (v_full - x)^2
    losses = m(**ins, actions=torch.zeros(2, 4, 6), noise=x, time=torch.ones(2))
    torch.testing.assert_close((v_cached - x) ** 2, losses, atol=1e-5, rtol=1e-4)


def test_gradient_checkpointing_matches_plain_loss_and_grads():
    torch.manual_seed(0)
    p = make_policy()
    q = make_policy(gradient_checkpointing=True)
    q.load_state_dict(p.state_dict())
    grads = []
    for m in (p, q):
        torch.manual_seed(3)
        loss, _ = m(batch())
        loss.backward()
        grads.append((loss.detach(), m.model.action_in_proj.weight.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-6, rtol=1e-4)


def test_freezing_options():
    p = make_policy(freeze_vision_encoder=True)
    assert not any(q.requires_grad for q in p.model.paligemma_with_expert.vision_tower.parameters())
    assert all(q.requires_grad for q in p.model.paligemma_with_expert.language_model.parameters())
    p.train()
    assert not p.model.paligemma_with_expert.vision_tower.training
    q = make_policy(train_expert_only=True)
    assert not any(x.requires_grad for x in q.model.paligemma_with_expert.paligemma.parameters())
    assert all(x.requires_grad for x in q.model.paligemma_with_expert.gemma_expert.parameters())


def test_lora_trains_adapters_and_heads_only():
    p = make_policy(peft={"r": 4, "lora_alpha": 8})
    names = {n for n, q in p.named_parameters() if q.requires_grad}
    assert any("gemma_expert.model.layers.0.self_attn.q_proj.lora_A" in n for n in names)
    assert any("language_model.layers.3.mlp.down_proj.lora_B" in n for n in names)
    assert "model.action_out_proj.weight" in names and "model.state_proj.weight" in names
    assert not any("vision_tower" in n or n.endswith("base_layer.weight") for n in names)
    loss, _ = p(batch())
    loss.backward()
    with pytest.raises(ValueError, match="unknown key"):
        make_policy(peft={"r": 4, "alpha": 8})


def test_invalid_configs_raise():
    with pytest.raises(ValueError, match="paligemma_variant='gemma_7b'"):
        make_policy(paligemma_variant="gemma_7b")
    with pytest.raises(ValueError, match="max_state_dim"):
        make_policy(max_state_dim=2)
    with pytest.raises(ValueError, match="n_action_steps"):
        make_policy(n_action_steps=9)
    with pytest.raises(KeyError, match="task"):
        make_policy()({k: v for k, v in batch().items() if k != "task"})


def test_default_optimizer_and_schedule_are_lerobots():
    p = make_policy(scheduler_warmup_steps=10, scheduler_decay_steps=100)
    opt = p.default_optimizer(p.get_optim_params())
    assert opt.defaults["lr"] == 2.5e-5 and opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["weight_decay"] == 0.01
    sched = p.default_lr_scheduler(opt)
    f = sched.lr_lambdas[0]
    # warmup: 1/11 -> 1 linearly; then cosine over the step count (not restarted after warmup) to 2.5e-6/2.5e-5
    assert f(0) == pytest.approx(1 / 11) and f(5) == pytest.approx(1 / 11 + (10 / 11) * 0.5)
    assert f(10) == pytest.approx(0.9 * 0.5 * (1 + math.cos(math.pi * 0.1)) + 0.1)
    assert f(100) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------- real data
def _dataset_batch(root: Path, chunk: int, n: int = 8) -> dict:
    from torch.utils.data import DataLoader

    from robolearn.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/pusht_random", root=root, delta_timestamps={"action": [i / 10 for i in range(chunk)]})
    return next(iter(DataLoader(ds, batch_size=n, shuffle=False)))


@pytest.mark.parametrize("cls", [Pi0Policy, Pi05Policy])
def test_loss_decreases_on_pusht_random(shared_datasets, cls):
    from robolearn.datasets.metadata import LeRobotDatasetMetadata
    from robolearn.features import dataset_to_policy_features

    root = shared_datasets / "lerobot_written_pusht_random"
    meta = LeRobotDatasetMetadata("local/pusht_random", root=root)
    features = {k: v for k, v in dataset_to_policy_features(meta.features).items() if v.type is not FT.REWARD}
    torch.manual_seed(0)
    p = cls(features, meta.stats, **{**TINY, "tokenizer_max_length": 40})
    p.tokenizer = make_tokenizer()
    b = _dataset_batch(root, chunk=4)
    assert b["task"][0] == TASK

    def eval_loss():
        torch.manual_seed(123)  # the same noise and times each time
        with torch.no_grad():
            return p(b)[0].item()

    before = eval_loss()
    opt = torch.optim.AdamW([q for q in p.parameters() if q.requires_grad], lr=1e-3)
    for step in range(25):
        torch.manual_seed(step)
        loss, _ = p(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.7 * before, (before, after)


# --------------------------------------------------------------------------------------------- save / load
def test_save_load_round_trip_identical_actions_and_pretrained_backbone(tmp_path, tokenizer_dir):
    from transformers import PaliGemmaForConditionalGeneration

    from robolearn.policies.pi0.configs import paligemma_config
    from robolearn.policies.pretrained import load_policy, save_pretrained

    torch.manual_seed(5)
    backbone = PaliGemmaForConditionalGeneration(paligemma_config("dummy", 28))
    backbone.save_pretrained(tmp_path / "paligemma")
    p = make_policy(Pi05Policy, tokenizer_dir=tokenizer_dir, pretrained_backbone_weights=str(tmp_path / "paligemma"))
    loaded_w = p.model.paligemma_with_expert.paligemma.model.language_model.layers[0].self_attn.q_proj.weight
    torch.testing.assert_close(loaded_w, backbone.model.language_model.layers[0].self_attn.q_proj.weight)
    p.eval()
    save_pretrained(p, tmp_path / "export")
    q = load_policy(tmp_path / "export")
    assert type(q) is Pi05Policy and q.hparams.tokenizer_max_length == 200
    obs = observation(batch())
    torch.manual_seed(9)
    a = p.predict_action_chunk(obs)
    torch.manual_seed(9)
    b = q.predict_action_chunk(obs)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(ValueError, match="image_resolution"):
        make_policy(pretrained_backbone_weights=str(tmp_path / "paligemma"), image_resolution=(56, 56))


def test_lerobot_format_round_trip_old_layout_and_missing_key(tmp_path):
    from safetensors.torch import load_file, save_file

    from robolearn.policies.lerobot_compat import LerobotFormatError, load_lerobot_policy, save_lerobot_pretrained
    from robolearn.policies.pi0 import lerobot_format as fmt

    torch.manual_seed(0)
    p = make_policy().eval()
    out = save_lerobot_pretrained(p, tmp_path / "lr")
    config = json.loads((out / "config.json").read_text())
    assert config["type"] == "pi0" and config["paligemma_variant"] == "dummy" and config["chunk_size"] == 4
    assert "tokenizer_name" not in config and "peft" not in config
    # rewrite the weights in the older transformers layout (and add lerobot's unused expert lm_head)
    sd = load_file(str(out / "model.safetensors"))
    old = {}
    for k, v in sd.items():
        k2 = (k.replace("paligemma.model.language_model.", "paligemma.language_model.model.")
               .replace("paligemma.model.vision_tower.", "paligemma.vision_tower.")
               .replace("paligemma.model.multi_modal_projector.", "paligemma.multi_modal_projector."))
        if k2.endswith("paligemma.lm_head.weight"):
            continue  # tied: restored from the embedding
        old[k2] = v
    old["model.paligemma_with_expert.gemma_expert.lm_head.weight"] = torch.zeros(3, 64)
    save_file(old, str(out / "model.safetensors"))
    q = load_lerobot_policy(out)
    q.tokenizer = make_tokenizer()
    obs = observation(batch())
    torch.manual_seed(2)
    a = p.predict_action_chunk(obs)
    torch.manual_seed(2)
    torch.testing.assert_close(q.predict_action_chunk(obs), a, atol=0, rtol=0)
    assert set(fmt.state_dict_from_lerobot(old)) == {k for k in p.state_dict() if not k.startswith("normalizer.")}
    missing = "model.paligemma_with_expert.gemma_expert.model.layers.1.mlp.up_proj.weight"
    del old[missing]
    save_file(old, str(out / "model.safetensors"))
    with pytest.raises(LerobotFormatError, match=missing.replace(".", r"\.")):
        load_lerobot_policy(out)
    with pytest.raises(LerobotFormatError, match="rtc_config"):
        fmt.kwargs_from_lerobot_config({**config, "rtc_config": {"enabled": True}})
    with pytest.raises(LerobotFormatError, match="LoRA"):
        fmt.lerobot_config_from_kwargs({**config, "peft": {"r": 4}}, p.features)


def test_lerobot_format_pi05_maps_config_and_all_keys():
    from robolearn.policies.lerobot_compat import lerobot_features, policy_kwargs
    from robolearn.policies.pi0 import lerobot_format_pi05 as fmt

    p = make_policy(Pi05Policy)
    config = fmt.lerobot_config_from_kwargs(policy_kwargs(p), p.features)
    assert config["type"] == "pi05" and config["normalization_mapping"]["STATE"] == "QUANTILES"
    assert config["tokenizer_max_length"] == 200
    kwargs = fmt.kwargs_from_lerobot_config(config)
    inputs_, outputs = lerobot_features(p.features)
    assert config["input_features"] == inputs_ and config["output_features"] == outputs
    q = fmt.POLICY_CLASS(features=p.features, stats=stats(feats()), **kwargs)
    sd = {k: v for k, v in p.state_dict().items() if not k.startswith("normalizer.")}
    mapped = fmt.state_dict_from_lerobot(fmt.state_dict_to_lerobot(sd))
    assert set(mapped) == {k for k in q.state_dict() if not k.startswith("normalizer.")}
    assert any(".input_layernorm.dense.weight" in k for k in mapped)


# --------------------------------------------------------------------------------------------- info / train.py
def test_info_counts_full_size_pi0_on_meta_device():
    from robolearn.policies.pi0.info import build_meta_model, parameter_breakdown

    parts = parameter_breakdown(build_meta_model(pi05=False))
    assert 3.2e9 < parts["total"] < 3.3e9  # PaliGemma 3B + gemma_300m expert
    assert 2.5e9 < parts["language_model (Gemma)"] < 2.52e9 and 3.0e8 < parts["action_expert (Gemma)"] < 3.2e8


def test_train_py_policy_pi0_smoke(tmp_path, shared_datasets, tokenizer_dir):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from robolearn.utils.schema import register_schemas

    sys.path.insert(0, str(REPO))
    import train as train_script

    GlobalHydra.instance().clear()
    register_schemas()
    overrides = [
        "dataset=local", f"dataset.root={shared_datasets / 'lerobot_written_pusht_random'}", "dataset.num_workers=0",
        "dataset.batch_size=4", "dataset.val_fraction=0.2", "policy=pi0", "policy.paligemma_variant=dummy",
        "policy.action_expert_variant=dummy", "policy.image_resolution=[28,28]", "policy.chunk_size=4",
        "policy.n_action_steps=4", "policy.max_state_dim=4", "policy.max_action_dim=4",
        "policy.tokenizer_max_length=16", f"policy.tokenizer_name={tokenizer_dir}", "policy.peft.r=2",
        "trainer=smoke", f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "experiment=none", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    trainer, policy, _ = train_script.train(cfg)
    assert trainer.global_step == 3 and isinstance(policy, Pi0Policy)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any("lora_A" in n for n, _ in policy.named_parameters())
