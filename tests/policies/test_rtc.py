"""Real-time chunking (robolearn.policies.vla.rtc): the prefix-attention schedule and guidance weight, one guided
Euler step against a hand-computed vector-Jacobian product, and on tiny random SmolVLA / π0 / π0.5 (built locally,
nothing downloaded): plain sampling bit for bit without a previous chunk, the frozen prefix equal to the previous
chunk, the guided overlap closer to the previous plan than unguided sampling from the same noise, β = 0 leaving the
unfrozen steps unguided; non-flow-matching policies and bad inputs refused."""

from __future__ import annotations

import math

import pytest
import torch

from robolearn.policies.pi0 import Pi0Policy, Pi05Policy
from robolearn.policies.smolvla import SmolVLAPolicy
from robolearn.policies.smolvla.tiny import write_tiny_smolvlm
from robolearn.policies.vla.flow import euler_integrate
from robolearn.policies.vla.rtc import (RTCConfig, guidance_weight, predict_action_chunk_rtc, prefix_weights,
                                        rtc_euler_integrate)
from tests.presets import smoke_policy_kwargs

from .helpers import TINY_ACT, features, stats
from .test_pi0 import batch as pi0_batch
from .test_pi0 import feats as pi0_feats
from .test_pi0 import make_tokenizer
from .test_pi0 import stats as vla_stats

H = 8  # chunk size of the tiny VLAs here


# --------------------------------------------------------------------------------------------- pieces
def test_prefix_weights_schedules():
    w = prefix_weights(2, 5, H, "exp")
    c = torch.tensor([(5 - i) / (5 - 2 + 1) for i in (2, 3, 4)])
    torch.testing.assert_close(w, torch.cat([torch.ones(2), c * torch.expm1(c) / math.expm1(1.0), torch.zeros(3)]))
    assert bool((w[2:5] > 0).all()) and bool((w[2:5] < 1).all()) and bool((w[1:] <= w[:-1]).all())
    torch.testing.assert_close(prefix_weights(2, 5, H, "linear")[2:5], c)
    assert prefix_weights(2, 5, H, "ones").tolist() == [1.0] * 5 + [0.0] * 3
    assert prefix_weights(2, 5, H, "zeros").tolist() == [1.0] * 2 + [0.0] * 6
    # a horizon shorter than the delay still freezes the whole delay; both clamp to the chunk
    assert prefix_weights(4, 1, H, "exp").tolist() == [1.0] * 4 + [0.0] * 4
    assert prefix_weights(20, 30, H, "exp").tolist() == [1.0] * H
    with pytest.raises(ValueError, match="schedule"):
        prefix_weights(1, 2, H, "cosine")
    with pytest.raises(ValueError, match="schedule"):
        RTCConfig(schedule="cosine")
    with pytest.raises(ValueError, match="max_guidance_weight"):
        RTCConfig(max_guidance_weight=float("nan"))
    with pytest.raises(ValueError, match="execution_horizon"):
        RTCConfig(execution_horizon=0)


def test_guidance_weight_is_clipped_paper_formula():
    assert guidance_weight(1.0, 5.0) == 5.0 and guidance_weight(0.0, 5.0) == 5.0  # tau = 0 / 1: infinite -> beta
    assert guidance_weight(0.5, 5.0) == pytest.approx(2.0)  # (0.25 + 0.25) / 0.25
    tau = 0.2  # t = 0.8: (0.04 + 0.64) / 0.16 = 4.25
    assert guidance_weight(1 - tau, 10.0) == pytest.approx(4.25) and guidance_weight(1 - tau, 3.0) == 3.0


def test_one_guided_step_matches_hand_computed_vjp():
    """``v(x) = x M^T + b`` has Jacobian ``M`` per step; one Euler step at t = 1 (weight beta) must move
    ``x - (v - beta * ((Y - x_hat) * W) (I - M))`` with ``x_hat = x - v``; then the frozen prefix is copied."""
    g = torch.Generator().manual_seed(0)
    b, h, d_act = 2, 6, 3
    m = torch.randn(d_act, d_act, generator=g) * 0.3
    bias = torch.randn(d_act, generator=g)
    x1 = torch.randn(b, h, d_act, generator=g)
    prev = torch.randn(b, 4, 2, generator=g)  # 4 steps, 2 of the 3 dims guided
    velocity = lambda x, t: x @ m.T + bias  # noqa: E731
    out = rtc_euler_integrate(velocity, x1, 1, prev, inference_delay=1, execution_horizon=3, schedule="linear",
                              max_guidance_weight=4.0)
    v = velocity(x1, None)
    x_hat = x1 - v
    w = torch.zeros(b, h, d_act)
    w[:, :, :2] = prefix_weights(1, 3, h, "linear")[None, :, None]
    y = torch.zeros(b, h, d_act)
    y[:, :4, :2] = prev
    grad = ((y - x_hat) * w) @ (torch.eye(d_act) - m)
    expected = x1 - (v - 4.0 * grad)
    expected[:, :1, :2] = prev[:, :1]
    torch.testing.assert_close(out, expected)
    # no previous chunk: exactly the plain sampler
    assert torch.equal(rtc_euler_integrate(velocity, x1, 3), euler_integrate(velocity, x1, 3))
    with pytest.raises(ValueError, match="non-finite"):
        rtc_euler_integrate(velocity, x1, 1, torch.full((b, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="prev_chunk must be"):
        rtc_euler_integrate(velocity, x1, 1, torch.zeros(b, h + 1, 2))


# --------------------------------------------------------------------------------------------- tiny VLAs
@pytest.fixture(scope="module")
def vlas(tmp_path_factory) -> dict:
    vlm = write_tiny_smolvlm(tmp_path_factory.mktemp("vlm"), image_size=32)
    f = pi0_feats()
    torch.manual_seed(0)
    smolvla = SmolVLAPolicy(f, vla_stats(f), vlm_model_name=str(vlm), load_vlm_weights=True,
                            **smoke_policy_kwargs("smolvla", chunk_size=H, n_action_steps=H, num_steps=5))
    torch.manual_seed(0)
    pi0 = Pi0Policy(f, vla_stats(f), tokenizer_name="unused",
                    **smoke_policy_kwargs("pi0", chunk_size=H, n_action_steps=H, num_inference_steps=5))
    pi0.tokenizer = make_tokenizer()
    torch.manual_seed(0)
    pi05 = Pi05Policy(f, vla_stats(f), tokenizer_name="unused",
                      **smoke_policy_kwargs("pi05", chunk_size=H, n_action_steps=H, num_inference_steps=5))
    pi05.tokenizer = make_tokenizer()
    return {"smolvla": smolvla.eval(), "pi0": pi0.eval(), "pi05": pi05.eval()}


def _obs(seed: int = 1) -> dict:
    b = pi0_batch(b=2, chunk=H, seed=seed)
    return {k: b[k] for k in ("observation.image", "observation.state", "task")}


def _sample(policy, obs, seed=0, prev=None, delay=0, config=RTCConfig(execution_horizon=6)):
    torch.manual_seed(seed)  # the flow's initial noise
    return predict_action_chunk_rtc(policy, obs, prev, delay, config)


@pytest.mark.parametrize("name", ["smolvla", "pi0", "pi05"])
def test_without_previous_chunk_equals_plain_sampling_bit_for_bit(vlas, name):
    policy, obs = vlas[name], _obs()
    torch.manual_seed(0)
    plain = policy.predict_action_chunk(obs)
    assert torch.equal(_sample(policy, obs, prev=None, delay=3), plain)


@pytest.mark.parametrize("name", ["smolvla", "pi0", "pi05"])
def test_guided_chunk_continues_the_previous_plan(vlas, name):
    policy, obs = vlas[name], _obs()
    plain = _sample(policy, obs, seed=0)
    prev = _sample(policy, _obs(seed=7), seed=5)[:, 2:]  # another plan: a previous chunk's remainder, 6 steps
    assert (plain[:, :6] - prev).abs().mean() > 0.3  # the two plans differ
    d, s = 2, 6
    guided = _sample(policy, obs, seed=0, prev=prev, delay=d, config=RTCConfig(s, 5.0, "exp"))
    assert torch.isfinite(guided).all() and guided.shape == plain.shape
    torch.testing.assert_close(guided[:, :d], prev[:, :d], rtol=1e-5, atol=1e-5)  # the frozen prefix
    # the soft overlap is pulled toward the previous plan; the untouched tail stays a chunk of this policy
    overlap = slice(d, s)
    err_guided = (guided[:, overlap] - prev[:, overlap]).norm(dim=-1).mean()
    err_plain = (plain[:, overlap] - prev[:, overlap]).norm(dim=-1).mean()
    assert err_guided < 0.5 * err_plain, (err_guided, err_plain)
    # the first step after the frozen prefix (the first one the robot executes from the new chunk) is where the
    # previous plan would have been: no jump at the switch (tiny random models: ~0.1 vs ~1.9)
    at_switch_guided = (guided[:, d] - prev[:, d]).norm(dim=-1).mean()
    at_switch_plain = (plain[:, d] - prev[:, d]).norm(dim=-1).mean()
    assert at_switch_guided < 0.25 * at_switch_plain, (at_switch_guided, at_switch_plain)
    # beta = 0: no guidance; only the frozen prefix is copied
    off = _sample(policy, obs, seed=0, prev=prev, delay=d, config=RTCConfig(s, 0.0, "exp"))
    torch.testing.assert_close(off[:, d:], plain[:, d:], rtol=1e-5, atol=1e-5)


def test_non_flow_matching_policy_and_bad_previous_chunk_are_refused(vlas):
    from robolearn.policies.act import ACTPolicy

    f = features()
    act = ACTPolicy(f, stats(f), **TINY_ACT).eval()
    obs = {k: torch.zeros(1, *feat.shape) for k, feat in f.items() if k != "action"}
    with pytest.raises(ValueError, match="ACTPolicy does not support real-time chunking"):
        predict_action_chunk_rtc(act, obs, torch.zeros(1, 3, f["action"].shape[0]), 1, RTCConfig())
    with pytest.raises(ValueError, match=r"prev_chunk must be \(B, L, 2\)"):
        predict_action_chunk_rtc(vlas["pi0"], _obs(), torch.zeros(2, 3, 5), 1, RTCConfig())
    with pytest.raises(ValueError, match="inference_delay"):
        predict_action_chunk_rtc(vlas["pi0"], _obs(), None, -1, RTCConfig())
