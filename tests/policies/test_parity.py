"""Load lerobot 0.6.1 checkpoints (``shared/parity``) into robolearn's ACT and Diffusion with identity key
names and compare against lerobot's recorded outputs."""

import lzma

import pytest
import torch

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature

from ..conftest import SHARED

PARITY = SHARED / "parity"
FEATS = {
    "observation.image": PolicyFeature(FT.VISUAL, (3, 96, 96)),
    "observation.state": PolicyFeature(FT.STATE, (2,)),
    "action": PolicyFeature(FT.ACTION, (2,)),
}


def _load(name):
    from safetensors.torch import load, load_file

    root = PARITY / name
    if not (root / "pretrained_model" / "model.safetensors.xz").is_file():
        pytest.skip(f"parity fixture {root} not found")
    weights = load(lzma.open(root / "pretrained_model" / "model.safetensors.xz").read())
    proc = load_file(root / "pretrained_model" / "policy_preprocessor_step_3_normalizer_processor.safetensors")
    stats: dict = {}
    for k, v in proc.items():
        feat, stat = k.rsplit(".", 1)
        stats.setdefault(feat, {})[stat] = v.numpy()
    return weights, stats, load_file(root / "inputs.safetensors"), load_file(root / "outputs.safetensors")


def _close(a, b, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


def test_act_parity():
    from robolearn.policies.act import ACTPolicy

    weights, stats, inp, out = _load("act")
    p = ACTPolicy(FEATS, stats, chunk_size=10, n_action_steps=10, dim_model=64, n_heads=2, dim_feedforward=128,
                  n_encoder_layers=2, n_vae_encoder_layers=2, latent_dim=8)
    res = p.load_state_dict(weights, strict=False)
    assert res.unexpected_keys == [] and all(k.startswith("normalizer.") for k in res.missing_keys)
    p.eval()
    raw = {"observation.image": inp["raw.observation.image"].float() / 255,
           "observation.state": inp["raw.observation.state"], "action": inp["raw.action"]}
    norm = p.normalizer.normalize(raw)
    for k in raw:
        torch.testing.assert_close(norm[k], inp[f"normalized.{k}"], rtol=0, atol=0)
    nb = {k: inp[f"normalized.{k}"] for k in ("observation.image", "observation.state", "action", "action_is_pad")}
    with torch.no_grad():
        torch.testing.assert_close(p.model.backbone(nb["observation.image"]), out["backbone_feature_map"], rtol=0, atol=0)
        _close(p._predict_chunk(nb), out["predict_action_chunk"])
        _close(p.compute_loss(nb)[0], out["eval_forward.loss"])
    _close(p.predict_action_chunk(raw), out["predict_action_chunk_unnormalized"], atol=1e-3)
    p.reset()
    _close(p.select_action(raw), out["predict_action_chunk_unnormalized"][:, 0], atol=1e-3)
    # train mode without dropout: same single randn draw for the latent
    for m in p.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0
    p.train()
    torch.manual_seed(0)
    with torch.no_grad():
        loss, info = p.compute_loss(nb)
    _close(info["kld_loss"], out["train_nodropout.kld_loss"])
    _close(info["l1_loss"], out["train_nodropout.l1_loss"])
    _close(loss, out["train_nodropout.loss"])


@pytest.mark.parametrize("scheduler", ["DDPM", "DDIM"])
def test_diffusion_parity(scheduler):
    from robolearn.policies.diffusion import DiffusionPolicy

    weights, stats, inp, out = _load("diffusion")
    p = DiffusionPolicy(FEATS, stats, spatial_softmax_num_keypoints=16, use_separate_rgb_encoder_per_camera=True,
                        down_dims=(32, 64), diffusion_step_embed_dim=32, num_train_timesteps=20,
                        num_inference_steps=5, noise_scheduler_type=scheduler)
    res = p.load_state_dict(weights, strict=False)
    assert res.unexpected_keys == [] and all(k.startswith("normalizer.") for k in res.missing_keys)
    p.eval()
    raw = {"observation.image": inp["raw.observation.image"].float() / 255,
           "observation.state": inp["raw.observation.state"], "action": inp["raw.action"]}
    nb = {k: inp[f"normalized.{k}"] for k in ("observation.image", "observation.state", "action", "action_is_pad")}
    key = scheduler.lower()
    with torch.no_grad():
        gc = p._global_cond(nb)
        _close(gc, out["global_cond"])
        _close(p.diffusion.unet(inp["fixed.noisy_actions"], inp["fixed.timesteps"], global_cond=gc), out["unet_fixed_output"])
        if scheduler == "DDPM":
            torch.manual_seed(0)
            _close(p.compute_loss(nb)[0], out["loss"])
        torch.manual_seed(0)
        sample = p.diffusion.conditional_sample(gc, noise=inp["fixed.initial_noise"])
        assert p.diffusion.noise_scheduler.timesteps.tolist() == out[f"{key}.timesteps"].tolist()
    _close(sample, out[f"{key}.sample_full"])
    torch.manual_seed(0)
    chunk = p.predict_action_chunk(raw, noise=inp["fixed.initial_noise"])
    _close(chunk, out[f"{key}.action_chunk_unnormalized"], atol=1e-2, rtol=1e-5)
    if scheduler == "DDPM":
        p.reset()
        torch.manual_seed(0)
        a = p.select_action({"observation.image": raw["observation.image"][:, -1],
                             "observation.state": raw["observation.state"][:, -1]})
        _close(a, out["select_action_unnormalized"], atol=1e-2, rtol=1e-5)
