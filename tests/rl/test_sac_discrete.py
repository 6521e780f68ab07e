"""SAC's discrete gripper head (HIL-SERL's grasp critic, lerobot's ``num_discrete_actions``): double-DQN targets
against hand-computed values, command <-> index mapping, action shapes, target update, export, one train.py run."""

from __future__ import annotations

import math

import pytest
import torch

from tests.presets import smoke_policy_kwargs
from robolearn.features import FeatureType, PolicyFeature
from robolearn.policies import load_policy, save_pretrained
from robolearn.policies.sac import SACPolicy

# 2 continuous dims + the gripper command in [0, 2] (gym-hil / lerobot: 0 close, 1 stay, 2 open)
FEATURES = {
    "observation.state": PolicyFeature(FeatureType.STATE, (3,)),
    "action": PolicyFeature(FeatureType.ACTION, (3,)),
}
STATS = {
    "observation.state": {"min": [-1.0, -1.0, -1.0], "max": [1.0, 1.0, 1.0]},
    "action": {"min": [-2.0, 0.0, 0.0], "max": [2.0, 1.0, 2.0]},
}
TINY = smoke_policy_kwargs("sac", discrete_critic_network_kwargs={"hidden_dims": [16]})


def _policy(stats=STATS, **kw) -> SACPolicy:
    torch.manual_seed(0)
    return SACPolicy(FEATURES, stats, **{**TINY, "num_discrete_actions": 3, **kw})


def _batch(gripper, reward=1.0, done=0.0, n_steps=None, penalty=None):
    """A normalized transition batch whose last action dim holds the normalized gripper values ``gripper``."""
    n = len(gripper)
    g = torch.Generator().manual_seed(1)
    batch = {
        "observation.state": torch.rand(n, 3, generator=g) * 2 - 1,
        "next.observation.state": torch.rand(n, 3, generator=g) * 2 - 1,
        "action": torch.cat([torch.rand(n, 2, generator=g) * 2 - 1, torch.tensor(gripper)[:, None]], -1),
        "next.reward": torch.full((n,), reward),
        "next.done": torch.full((n,), done),
    }
    if n_steps is not None:
        batch["next.n_steps"] = torch.full((n,), n_steps)
    if penalty is not None:
        batch["complementary_info.discrete_penalty"] = torch.full((n,), penalty)
    return batch


def _constant_q(critic, values) -> None:
    """Make ``critic`` output ``values`` (one per discrete action) for every observation."""
    torch.nn.init.zeros_(critic.head.weight)
    with torch.no_grad():
        critic.head.bias.copy_(torch.tensor(values))


def test_discrete_td_target_matches_hand_computed_values():
    p = _policy(discount=0.9)
    _constant_q(p.discrete_critic_target, [1.0, 5.0, 3.0])
    _constant_q(p.discrete_critic, [0.0, 0.0, 10.0])  # online net chooses index 2 -> target's 3 (not its max 5)
    b = dict(gripper=[-1.0, 0.0, 1.0, 1.0])
    assert torch.allclose(p.discrete_td_target(_batch(**b)), torch.full((4,), 1 + 0.9 * 3))
    assert torch.allclose(p.discrete_td_target(_batch(**b, done=1.0)), torch.full((4,), 1.0))
    assert torch.allclose(p.discrete_td_target(_batch(**b, penalty=-0.5)), torch.full((4,), 1 - 0.5 + 0.9 * 3))
    assert torch.allclose(p.discrete_td_target(_batch(**b, penalty=-0.5, done=1.0)), torch.full((4,), 0.5))
    assert torch.allclose(p.discrete_td_target(_batch(**b, n_steps=2.0)), torch.full((4,), 1 + 0.81 * 3))


def test_double_dqn_selects_with_online_and_evaluates_with_target():
    p = _policy(discount=0.5)
    _constant_q(p.discrete_critic_target, [1.0, 5.0, 3.0])
    for online, expected_q in (([9.0, 0.0, 0.0], 1.0), ([0.0, 9.0, 0.0], 5.0), ([0.0, 0.0, 9.0], 3.0)):
        _constant_q(p.discrete_critic, online)
        y = p.discrete_td_target(_batch([0.0, 0.0], reward=0.0))
        assert torch.allclose(y, torch.full((2,), 0.5 * expected_q))


def test_discrete_critic_loss_uses_the_stored_command_index():
    p = _policy()
    _constant_q(p.discrete_critic, [0.0, 2.0, 10.0])
    # env commands 0, 1, 2, 2 and warm-up values 0.4 (-> 0) and 1.6 (-> 2), normalized by the action stats
    commands = torch.tensor([0.0, 1.0, 2.0, 2.0, 0.4, 1.6])
    gripper = p.normalizer.normalize_tensor("action", torch.cat([torch.zeros(6, 2), commands[:, None]], -1))[:, -1]
    assert p.action_to_discrete_index(gripper).tolist() == [0, 1, 2, 2, 0, 2]
    loss, info = p.discrete_critic_loss(_batch(gripper.tolist(), reward=1.0, done=1.0))  # y = 1
    q = torch.tensor([0.0, 2.0, 10.0, 10.0, 0.0, 10.0])
    assert loss.item() == pytest.approx(((q - 1.0) ** 2).mean().item(), rel=1e-5)
    assert info["discrete_td_target_mean"].item() == pytest.approx(1.0)
    loss.backward()
    assert p.discrete_critic.head.bias.grad is not None
    assert all(t.grad is None for t in p.discrete_critic_target.parameters())
    assert any(e.grad is not None for e in p.encoder.parameters())  # as lerobot: the encoder learns from it too


@pytest.mark.parametrize("bounds, commands", [((0.0, 2.0), [0.0, 1.0, 2.0]), ((-1.0, 1.0), [-1.0, 0.0, 1.0])])
def test_select_and_sample_action_shapes_and_gripper_commands(bounds, commands):
    stats = {**STATS, "action": {"min": [-2.0, 0.0, bounds[0]], "max": [2.0, 1.0, bounds[1]]}}
    p = _policy(stats=stats).eval()
    assert p.discrete_action_commands().tolist() == pytest.approx(commands)
    assert p.critics.trunks[0].net[0].in_features == 8 + 2 and p.actor.mean.out_features == 2  # continuous part
    obs = {"observation.state": torch.rand(16, 3) * 2 - 1}
    for choice in range(3):
        _constant_q(p.discrete_critic, [10.0 if i == choice else 0.0 for i in range(3)])
        p.reset()
        for a in (p.select_action(obs), p.sample_action(obs)):
            assert a.shape == (16, 3)
            assert (a[:, 0].abs() <= 2).all() and (a[:, 1] >= 0).all() and (a[:, 1] <= 1).all()
            assert torch.allclose(a[:, 2], torch.full((16,), commands[choice]))
    # the round trip env command -> normalized -> index -> normalized -> env command is the identity
    idx = torch.arange(3)
    normalized = torch.zeros(3, 3)
    normalized[:, -1] = p.discrete_index_to_action(idx)
    env = p.normalizer.unnormalize_tensor("action", normalized)
    back = p.action_to_discrete_index(p.normalizer.normalize_tensor("action", env)[:, -1])
    assert back.tolist() == [0, 1, 2]


def test_grasp_critic_target_follows_polyak_update_and_defaults():
    p = _policy(critic_target_update_weight=0.1)
    assert p.target_entropy == -1.5  # lerobot: -(continuous dims + 1) / 2
    w_online = p.discrete_critic.head.weight.detach().clone()
    assert torch.equal(p.discrete_critic_target.head.weight, w_online)  # starts as a copy
    w_target = w_online + 1.0
    p.discrete_critic_target.head.weight.data.copy_(w_target)
    p.update_targets()
    assert torch.allclose(p.discrete_critic_target.head.weight, 0.1 * w_online + 0.9 * w_target)
    assert [g["name"] for g in p.get_optim_params()] == ["critic", "actor", "temperature", "discrete_critic"]
    q = SACPolicy(FEATURES, STATS, **{k: v for k, v in TINY.items() if k != "discrete_critic_network_kwargs"})
    assert q.discrete_critic is None and q.continuous_action_dim == 3 and len(q.get_optim_params()) == 3
    with pytest.raises(RuntimeError, match="num_discrete_actions=None"):
        q.discrete_td_target(_batch([0.0]))


def test_invalid_discrete_settings_are_refused():
    with pytest.raises(ValueError, match="num_discrete_actions must be None or >= 2"):
        _policy(num_discrete_actions=1)
    one_dim = {**FEATURES, "action": PolicyFeature(FeatureType.ACTION, (1,))}
    with pytest.raises(ValueError, match="at least one continuous"):
        SACPolicy(one_dim, {**STATS, "action": {"min": [0.0], "max": [2.0]}}, num_discrete_actions=3)


def test_export_round_trip_keeps_the_grasp_critic(tmp_path):
    p = _policy().eval()
    _constant_q(p.discrete_critic, [0.0, 7.0, 0.0])
    path = save_pretrained(p, tmp_path / "pretrained_model")
    q = load_policy(path)
    assert q.num_discrete_actions == 3
    for name in ("discrete_critic", "discrete_critic_target"):
        for (k, v), (k2, v2) in zip(getattr(p, name).state_dict().items(), getattr(q, name).state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
    obs = {"observation.state": torch.rand(4, 3) * 2 - 1}
    a = q.select_action(obs)
    assert torch.allclose(a, p.select_action(obs), atol=1e-6) and (a[:, 2] == 1.0).all()


def test_train_py_step_with_discrete_gripper_on_planar_reach(tmp_path):
    """The planar reach env's second joint velocity ([-1, 1]) becomes a 3-way discrete command (-1 / 0 / +1)."""
    from tests.rl.test_online import TINY as TINY_ONLINE, _cfg, _metrics, train_script

    warmup, steps = 16, 4
    cfg = _cfg(tmp_path, [*TINY_ONLINE, "policy.num_discrete_actions=3",
                          "policy.discrete_critic_network_kwargs={hidden_dims:[32]}", f"trainer.max_steps={steps}",
                          "trainer.val_check_interval=4", f"dataset.online_step_before_learning={warmup}",
                          "dataset.batch_size=8", "dataset.stats_steps=50", "dataset.env_kwargs.max_episode_steps=4"])
    trainer, policy, dm = train_script.train(cfg)
    assert trainer.global_step == steps and policy.num_discrete_actions == 3
    assert policy.discrete_action_commands().tolist() == pytest.approx([-1.0, 0.0, 1.0])
    # the buffer stores the command the env received: warm-up draws are uniform, the policy's steps are -1 / 0 / +1
    stored = dm.online_buffer.gather(torch.arange(warmup, len(dm.online_buffer)))["action"]
    assert stored.shape == (len(dm.online_buffer) - warmup, 2) and len(stored) >= 1
    assert set(stored[:, -1].tolist()) <= {-1.0, 0.0, 1.0}
    rows = _metrics(tmp_path / "run")
    losses = [float(r["train/discrete_critic_loss"]) for r in rows if r.get("train/discrete_critic_loss")]
    assert len(losses) == steps and all(math.isfinite(v) for v in losses)
    reloaded = load_policy(tmp_path / "run" / "checkpoints" / "pretrained_model")
    obs = {"observation.state": torch.zeros(1, 4), "observation.environment_state": torch.zeros(1, 4)}
    policy.eval()
    assert torch.allclose(reloaded.select_action(obs), policy.select_action(obs), atol=1e-6)
