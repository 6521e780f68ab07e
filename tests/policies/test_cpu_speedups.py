"""CPU speed-ups that keep the numerics: fused Adam/AdamW on CPU, ACT's channels-last backbone copy and cached first
decoder self-attention in inference (each checked against the plain computation)."""

from __future__ import annotations

import copy

import pytest
import torch

from robolearn.features import ACTION, FeatureType, PolicyFeature
from robolearn.policies.act import ACTPolicy
from robolearn.policies.base import fused_on_cpu
from robolearn.policies.diffusion import DiffusionPolicy
from robolearn.policies.vision import ChannelsLastInference, make_resnet

FEATURES = {"observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 64, 64)),
            "observation.state": PolicyFeature(FeatureType.STATE, (5,)),
            "action": PolicyFeature(FeatureType.ACTION, (3,))}


def _stats():
    g = torch.Generator().manual_seed(0)
    out = {}
    for key, f in FEATURES.items():
        shape = (3, 1, 1) if f.type is FeatureType.VISUAL else f.shape
        lo = -torch.rand(shape, generator=g)
        out[key] = {"mean": torch.rand(shape, generator=g) - 0.5, "std": torch.rand(shape, generator=g) + 0.5,
                    "min": lo, "max": lo + 1}
    return out


def _act(**kw) -> ACTPolicy:
    torch.manual_seed(0)
    args = dict(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_vae_encoder_layers=1,
                chunk_size=8, n_action_steps=8)
    return ACTPolicy(FEATURES, _stats(), **{**args, **kw})


def _obs(b: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"observation.images.top": torch.rand(b, 3, 64, 64, generator=g),
            "observation.state": torch.randn(b, 5, generator=g)}


def _plain_chunk(policy: ACTPolicy, obs) -> torch.Tensor:
    """The chunk computed with autograd on: no channels-last copy, no cached decoder block."""
    with torch.enable_grad():
        norm = policy.normalizer.normalize(obs, keys=list(policy.input_features))
        return policy.normalizer.unnormalize_tensor(ACTION, policy._predict_chunk(norm)).detach()


def test_fused_on_cpu():
    w = torch.nn.Parameter(torch.zeros(2))
    assert fused_on_cpu([w]) == {"fused": True}
    assert fused_on_cpu([{"params": [w]}, {"params": [w], "lr": 1.0}]) == {"fused": True}
    assert fused_on_cpu([]) == {}
    assert fused_on_cpu([torch.nn.Parameter(torch.zeros(2, device="meta"))]) == {}
    assert fused_on_cpu([torch.nn.Parameter(torch.zeros(2, dtype=torch.float16))]) == {}


@pytest.mark.parametrize("cls", [ACTPolicy, DiffusionPolicy])
def test_default_optimizer_is_fused_on_cpu_and_steps_like_the_plain_one(cls):
    policy = _act() if cls is ACTPolicy else DiffusionPolicy(FEATURES, _stats(), down_dims=(16, 32), horizon=8,
                                                            n_action_steps=4, crop_shape=None)
    params = [p for p in policy.parameters() if p.requires_grad][:4]
    fused = policy.default_optimizer([{"params": params}])
    assert fused.param_groups[0]["fused"] is True
    plain_params = [p.detach().clone().requires_grad_() for p in params]
    keep = ("lr", "betas", "eps", "weight_decay")
    plain = type(fused)(plain_params, **{k: fused.defaults[k] for k in keep})
    for _ in range(3):
        for p, q in zip(params, plain_params):
            g = torch.randn_like(p)
            p.grad, q.grad = g, g.clone()
        fused.step()
        plain.step()
    for p, q in zip(params, plain_params):
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_act_inference_matches_the_plain_path(pre_norm):
    policy = _act(pre_norm=pre_norm, n_decoder_layers=2).eval()
    obs = _obs()
    torch.testing.assert_close(policy.predict_action_chunk(obs), _plain_chunk(policy, obs), atol=1e-5, rtol=1e-5)
    # a weight update (in place, as an optimizer step or load_state_dict does) invalidates both caches
    with torch.no_grad():
        policy.model.decoder.layers[0].self_attn.in_proj_bias.add_(0.5)
        policy.model.decoder_pos_embed.weight.mul_(1.5)
        policy.model.backbone.conv1.weight.mul_(1.2)
    torch.testing.assert_close(policy.predict_action_chunk(obs), _plain_chunk(policy, obs), atol=1e-5, rtol=1e-5)


def test_act_caches_stay_out_of_state_and_copies():
    policy = _act().eval()
    policy.predict_action_chunk(_obs(1))
    assert policy.model._backbone_nhwc._key is not None
    assert hasattr(policy.model, "_first_self_attention_cache")
    assert not any("nhwc" in k or "cache" in k for k in policy.state_dict())
    clone = copy.deepcopy(policy)
    assert clone.model._backbone_nhwc._key is None and not hasattr(clone.model, "_first_self_attention_cache")
    torch.testing.assert_close(clone.predict_action_chunk(_obs()), policy.predict_action_chunk(_obs()))


def test_act_training_forward_does_not_use_the_caches():
    policy = _act().train()
    batch = {**_obs(2), "action": torch.randn(2, 8, 3), "action_is_pad": torch.zeros(2, 8, dtype=torch.bool)}
    loss, _ = policy(batch)
    loss.backward()
    assert policy.model._backbone_nhwc._key is None and not hasattr(policy.model, "_first_self_attention_cache")


def test_channels_last_inference_equals_the_module():
    torch.manual_seed(0)
    net = make_resnet("resnet18", None, norm="batch").eval()
    x = torch.rand(2, 3, 64, 64)
    runner = ChannelsLastInference()
    with torch.no_grad():
        torch.testing.assert_close(runner(net, x), net(x), atol=1e-5, rtol=1e-5)
        net.conv1.weight.mul_(0.5)
        torch.testing.assert_close(runner(net, x), net(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel, stride, padding, length", [(5, 1, 2, 16), (3, 2, 1, 16), (1, 1, 0, 8), (5, 1, 2, 3)])
def test_diffusion_conv1d_inference_equals_conv1d(kernel, stride, padding, length, monkeypatch):
    from robolearn.policies.diffusion.model import Conv1d

    monkeypatch.setattr(Conv1d, "unfold_min_columns", 0)  # the unfold form at these small sizes
    torch.manual_seed(0)
    conv = Conv1d(7, 9, kernel, stride=stride, padding=padding)
    x = torch.randn(2, 7, length)
    with torch.no_grad():
        out = conv(x)
    torch.testing.assert_close(out, torch.nn.functional.conv1d(x, conv.weight, conv.bias, stride=stride, padding=padding),
                               atol=1e-5, rtol=1e-5)
    assert set(conv.state_dict()) == {"weight", "bias"}


def test_diffusion_unet_matches_the_conv_path_forward_and_backward(monkeypatch):
    from robolearn.policies.diffusion import model

    monkeypatch.setattr(model.Conv1d, "unfold_min_columns", 0)  # the unfold form at these small sizes
    torch.manual_seed(0)
    unet = model.ConditionalUnet1D(4, 12, down_dims=(16, 32, 64))
    x, t, g = torch.randn(3, 8, 4), torch.tensor([1, 50, 99]), torch.randn(3, 12)

    def run():
        unet.zero_grad()
        out = unet(x, t, g)
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in unet.named_parameters()}

    fast, fast_grads = run()
    monkeypatch.setattr(model.Conv1d, "forward", torch.nn.Conv1d.forward)  # PyTorch's convolution
    plain, plain_grads = run()
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_act_encoder_first_outputs_only_equal_the_full_encoder(pre_norm):
    from robolearn.policies.act.model import ACTEncoder

    torch.manual_seed(0)
    encoder = ACTEncoder(3, 32, 4, 64, 0.0, "relu", pre_norm)
    x, pos = torch.randn(20, 3, 32, requires_grad=True), torch.randn(20, 1, 32)
    mask = torch.zeros(3, 20, dtype=torch.bool)
    mask[1, 15:] = True
    full = encoder(x, pos, mask)[:1]
    (grad_full,) = torch.autograd.grad(full.square().sum(), x)
    part = encoder(x, pos, mask, n_outputs=1)
    (grad_part,) = torch.autograd.grad(part.square().sum(), x)
    assert part.shape == (1, 3, 32)
    torch.testing.assert_close(part, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_part, grad_full, atol=1e-5, rtol=1e-5)


def test_act_caches_follow_a_fused_optimizer_step():
    """A fused AdamW step on the CPU leaves version counters alone; the mode switch around it drops the caches
    (the regression: a policy trained with Lightning answered with its validation-time weights)."""
    policy = _act().eval()
    obs = _obs()
    policy.predict_action_chunk(obs)  # caches built, as in a validation rollout
    policy.train()
    opt = policy.default_optimizer([{"params": [p for p in policy.parameters() if p.requires_grad]}])
    assert opt.param_groups[0]["fused"] is True
    versions = [p._version for p in policy.parameters()]
    batch = {**_obs(2), "action": torch.randn(2, 8, 3), "action_is_pad": torch.zeros(2, 8, dtype=torch.bool)}
    for _ in range(2):
        opt.zero_grad()
        policy(batch)[0].backward()
        opt.step()
    assert [p._version for p in policy.parameters()] == versions  # why the version key alone is not enough
    policy.eval()
    torch.testing.assert_close(policy.predict_action_chunk(obs), _plain_chunk(policy, obs), atol=1e-5, rtol=1e-5)


def test_diffusion_conv1d_uses_the_unfold_form_only_where_it_pays(monkeypatch):
    from robolearn.policies.diffusion import model

    calls, linear = [], torch.nn.functional.linear
    monkeypatch.setattr(model.F, "linear", lambda *a, **k: calls.append(1) or linear(*a, **k))
    for channels, batch, unfold in ((64, 8, False), (64, 1, False), (128, 1, True), (128, 8, False), (1024, 8, True)):
        calls.clear()
        conv = model.Conv1d(channels, 4, 5, padding=2)
        with torch.no_grad():
            conv(torch.randn(batch, channels, 4))
        assert bool(calls) is unfold, (channels, batch)
