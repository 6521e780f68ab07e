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
