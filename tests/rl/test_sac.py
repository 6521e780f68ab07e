"""SAC: TD targets against hand-computed values, temperature update direction, Polyak update, actor bounds, export."""

from __future__ import annotations

import math

import pytest
import torch

from tests.presets import smoke_policy_kwargs
from robolearn.features import FeatureType, PolicyFeature
from robolearn.policies import load_policy, save_pretrained
from robolearn.policies.sac import SACPolicy, polyak_update

FEATURES = {
    "observation.state": PolicyFeature(FeatureType.STATE, (3,)),
    "action": PolicyFeature(FeatureType.ACTION, (2,)),
}
STATS = {
    "observation.state": {"min": [-1.0, -1.0, -1.0], "max": [1.0, 1.0, 1.0]},
    "action": {"min": [-2.0, 0.0], "max": [2.0, 1.0]},
}
TINY = smoke_policy_kwargs("sac")


def _policy(**kw) -> SACPolicy:
    torch.manual_seed(0)
    return SACPolicy(FEATURES, STATS, **{**TINY, **kw})


def _batch(n=4, reward=1.0, done=0.0, n_steps=1.0):
    g = torch.Generator().manual_seed(1)
    return {
        "observation.state": torch.rand(n, 3, generator=g) * 2 - 1,
        "next.observation.state": torch.rand(n, 3, generator=g) * 2 - 1,
        "action": torch.rand(n, 2, generator=g) * 2 - 1,
        "next.reward": torch.full((n,), reward),
        "next.done": torch.full((n,), done),
        "next.n_steps": torch.full((n,), n_steps),
    }


def _constant_target_q(policy: SACPolicy, value: float) -> None:
    for head in policy.target_critics.heads:
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.constant_(head.bias, value)


def test_defaults_follow_lerobot():
    p = SACPolicy(FEATURES, STATS)
    assert p.target_entropy == -1.0  # -|A| / 2
    assert p.discount == 0.99 and p.tau == 0.005 and len(p.critics.trunks) == 2
    assert p.temperature.item() == pytest.approx(1.0)
    assert (p.actor_lr, p.critic_lr, p.temperature_lr, p.grad_clip_norm) == (3e-4, 3e-4, 3e-4, 40.0)
    assert p.delta_indices == {} and p.automatic_optimization is False


def test_td_target_matches_hand_computed_values():
    p = _policy(discount=0.9, use_backup_entropy=False)
    _constant_target_q(p, 2.0)
    assert torch.allclose(p.td_target(_batch(reward=1.0, done=0.0)), torch.full((4,), 1 + 0.9 * 2))
    assert torch.allclose(p.td_target(_batch(reward=1.0, done=1.0)), torch.full((4,), 1.0))
    assert torch.allclose(p.td_target(_batch(reward=1.0, n_steps=3.0)), torch.full((4,), 1 + 0.9 ** 3 * 2))
    # soft backup: y = r + gamma (Q' - alpha log pi(a'|s')), with a' drawn from the actor on s'
    p2 = _policy(discount=0.9, use_backup_entropy=True, temperature_init=0.5)
    _constant_target_q(p2, 2.0)
    b = _batch()
    torch.manual_seed(5)
    _, log_prob, _ = p2.actor(p2._actor_features({"observation.state": b["next.observation.state"]}))
    torch.manual_seed(5)
    assert torch.allclose(p2.td_target(b), 1 + 0.9 * (2.0 - 0.5 * log_prob), atol=1e-5)


def test_critic_loss_is_sum_over_critics_of_mse_to_target():
    p = _policy(use_backup_entropy=False)
    _constant_target_q(p, 0.0)
    b = _batch(reward=3.0, done=1.0)
    loss, _, _ = p.critic_loss(b)
    q = p.critics(p.encoder({"observation.state": b["observation.state"]}), b["action"])
    assert loss.item() == pytest.approx(((q - 3.0) ** 2).mean(1).sum().item(), rel=1e-5)


@pytest.mark.parametrize("target_entropy, increases", [(10.0, True), (-100.0, False)])
def test_temperature_rises_when_entropy_below_target(target_entropy, increases):
    p = _policy(target_entropy=target_entropy, temperature_init=0.1)
    _, temp_loss, info = p.actor_temperature_loss(_batch())
    assert (info["entropy"].item() < target_entropy) == increases
    temp_loss.backward()
    before = p.temperature.item()
    torch.optim.SGD([p.log_alpha], lr=0.1).step()
    assert (p.temperature.item() > before) == increases


def test_actor_loss_does_not_train_the_critic():
    p = _policy()
    actor_loss, _, _ = p.actor_temperature_loss(_batch())
    actor_loss.backward()
    assert all(q.grad is None for q in p.critics.parameters())
    assert all(q.grad is None for q in p.encoder.parameters())  # shared encoder: trained by the critic only
    assert any(a.grad is not None and a.grad.abs().sum() > 0 for a in p.actor.parameters())
    assert all(q.requires_grad for q in p.critics.parameters())


def test_polyak_update_matches_hand_computed_values():
    src, tgt = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    torch.nn.init.ones_(src.weight), torch.nn.init.ones_(src.bias)
    torch.nn.init.zeros_(tgt.weight), torch.nn.init.zeros_(tgt.bias)
    polyak_update(tgt, src, 0.25)
    assert torch.allclose(tgt.weight, torch.full((2, 2), 0.25))
    polyak_update(tgt, src, 0.25)
    assert torch.allclose(tgt.bias, torch.full((2,), 0.25 + 0.75 * 0.25))  # 0.4375
    p = _policy(critic_target_update_weight=0.1)
    w_online = p.critics.heads[0].weight.detach().clone()
    w_target = w_online + 1.0
    p.target_critics.heads[0].weight.data.copy_(w_target)
    p.update_targets()
    assert torch.allclose(p.target_critics.heads[0].weight, 0.1 * w_online + 0.9 * w_target)


def test_actions_stay_in_the_action_bounds_and_policy_update_schedule():
    p = _policy(utd_ratio=3, policy_update_freq=2).eval()
    obs = {"observation.state": torch.rand(64, 3) * 2 - 1}
    for a in (p.sample_action(obs), p.select_action(obs)):
        assert a.shape == (64, 2)
        assert (a[:, 0].abs() <= 2).all() and (a[:, 1] >= 0).all() and (a[:, 1] <= 1).all()
    # updates 0..11: groups of 3, actor on the last of every 2nd group
    assert [i for i in range(12) if p.is_policy_update(i)] == [2, 8]
    with pytest.raises(ValueError, match="num_subsample_critics"):
        SACPolicy(FEATURES, STATS, num_critics=2, num_subsample_critics=3)
    with pytest.raises(KeyError, match="next.observation.state"):
        p.td_target({k: v for k, v in _batch().items() if k != "next.observation.state"})


def test_log_prob_includes_tanh_correction():
    p = _policy()
    feat = torch.zeros(1, 8)
    torch.manual_seed(3)
    a, log_prob, _ = p.actor(feat)
    h = p.actor.trunk(feat)
    mu, log_std = p.actor.mean(h), p.actor.log_std(h).clamp(math.log(1e-5), math.log(10.0))
    u = torch.atanh(a)
    ref = torch.distributions.Normal(mu, log_std.exp()).log_prob(u).sum(-1) - torch.log(1 - a ** 2).sum(-1)
    assert torch.allclose(log_prob, ref, atol=1e-4)


def test_image_policy_and_export_round_trip(tmp_path):
    feats = {**FEATURES, "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 32, 32))}
    stats = {**STATS, "observation.images.top": {"mean": [0.5] * 3, "std": [0.2] * 3}}
    torch.manual_seed(0)
    p = SACPolicy(feats, stats, shared_encoder=False, **TINY).eval()
    obs = {"observation.state": torch.zeros(2, 3), "observation.images.top": torch.rand(2, 3, 32, 32)}
    action = p.select_action(obs)
    path = save_pretrained(p, tmp_path / "pretrained_model")
    q = load_policy(path)
    q.reset()
    assert torch.allclose(q.select_action(obs), action, atol=1e-6)
