"""Gradient clipping by norm goes through FSDP's own ``clip_grad_norm_`` when the strategy wrapped the model in FSDP
(Lightning's FSDPPrecision refuses norm clipping), for every policy; a value of None or <= 0 disables clipping."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from tests.presets import smoke_policy_kwargs
from robolearn.policies.act import ACTPolicy
from tests.policies.helpers import features, stats


class _FSDPLike(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls: list[float] = []

    def clip_grad_norm_(self, max_norm: float):
        self.calls.append(max_norm)


def _policy() -> ACTPolicy:
    f = features(image=False, env=True)
    return ACTPolicy(f, stats(f), **smoke_policy_kwargs("act", chunk_size=4, use_vae=False))


def test_norm_clipping_uses_the_fsdp_wrapper():
    policy, wrapped = _policy(), _FSDPLike()
    policy._trainer = SimpleNamespace(strategy=SimpleNamespace(model=wrapped))
    opt = torch.optim.SGD(policy.parameters(), lr=0.1)
    policy.configure_gradient_clipping(opt, gradient_clip_val=10.0, gradient_clip_algorithm=None)
    policy.configure_gradient_clipping(opt, gradient_clip_val=0.5, gradient_clip_algorithm="norm")
    policy.configure_gradient_clipping(opt, gradient_clip_val=None)
    policy.configure_gradient_clipping(opt, gradient_clip_val=0.0)
    assert wrapped.calls == [10.0, 0.5]


def test_without_fsdp_lightning_clipping_runs(monkeypatch):
    policy = _policy()
    policy._trainer = SimpleNamespace(strategy=SimpleNamespace(model=torch.nn.Linear(1, 1)))
    seen = []
    monkeypatch.setattr(policy, "clip_gradients", lambda opt, gradient_clip_val, gradient_clip_algorithm:
                        seen.append((gradient_clip_val, gradient_clip_algorithm)))
    opt = torch.optim.SGD(policy.parameters(), lr=0.1)
    policy.configure_gradient_clipping(opt, gradient_clip_val=1.0, gradient_clip_algorithm="value")
    policy.configure_gradient_clipping(opt, gradient_clip_val=2.0)
    assert seen == [(1.0, "value"), (2.0, "norm")]


def test_vla_clip_is_set_once_by_the_policy(monkeypatch):
    """π0 and SmolVLA clip at their preset ``optimizer_grad_clip_norm``; a different trainer value is refused, not
    silently applied."""
    import pytest

    from robolearn.policies.vla.policy import VLAPolicyMixin

    class _VLA(VLAPolicyMixin):
        policy_label = "pi0"
        optimizer_grad_clip_norm = 1.0

        def __init__(self):
            self.seen = []

        def clip_gradients_any_strategy(self, optimizer, value, algorithm):
            self.seen.append(value)

    vla = _VLA()
    vla.configure_gradient_clipping(None, gradient_clip_val=None)
    vla.configure_gradient_clipping(None, gradient_clip_val=1.0)
    assert vla.seen == [1.0, 1.0]
    with pytest.raises(ValueError, match="optimizer_grad_clip_norm=1.0"):
        vla.configure_gradient_clipping(None, gradient_clip_val=10.0)


def test_default_trainer_takes_the_policy_clip():
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from robolearn.utils.resolvers import register_resolvers
    from robolearn.utils.schema import register_schemas

    register_resolvers()
    register_schemas()
    conf = str(Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        for policy, clip in (("pi0", 1.0), ("smolvla", 10.0), ("act", 10.0)):
            cfg = compose("train", overrides=[f"policy={policy}"])
            assert cfg.trainer.gradient_clip_val == clip, policy
        cfg = compose("train", overrides=["policy=pi0", "policy.optimizer_grad_clip_norm=0.5"])
        assert cfg.trainer.gradient_clip_val == 0.5
