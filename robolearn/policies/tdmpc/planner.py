"""TD-MPC's planner: MPPI with CEM-style refitting over latent trajectories (TD-MPC Alg. 1, Sec. 3.3).

Trajectory values follow FOWM's eqn 4 (Feng et al. 2023): discounted predicted rewards minus an ensemble
disagreement penalty ``uncertainty_regularizer_coeff * std_i(Q_i)``, plus the discounted terminal value
``min`` of two randomly chosen Q heads at ``pi(z_H)``.

The torch random draws happen in this order (lerobot 0.6.1's order, so a seeded run reproduces its plan):
``pi`` noise per horizon step for the policy trajectories; then per iteration the Gaussian samples, the
terminal ``pi`` noise and the choice of two Q heads (``torch.randint``); finally ``torch.multinomial``
over the elites.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robolearn.policies.tdmpc.model import TOLD


@dataclass(frozen=True)
class PlannerConfig:
    """MPPI hyper-parameters (lerobot's names; see :class:`~robolearn.policies.tdmpc.TDMPCPolicy`)."""

    horizon: int
    cem_iterations: int
    n_gaussian_samples: int
    n_pi_samples: int
    n_elites: int
    elite_weighting_temperature: float
    gaussian_mean_momentum: float
    min_std: float
    max_std: float
    discount: float
    uncertainty_regularizer_coeff: float


@torch.no_grad()
def estimate_value(model: TOLD, z: Tensor, actions: Tensor, cfg: PlannerConfig) -> Tensor:
    """Value of action trajectories ``actions`` ``(H, N, A)`` from latents ``z`` ``(N, latent_dim)``: ``(N,)``.

    ``N`` may be any flattened or multi-dim leading shape shared by ``z`` and ``actions[t]``.
    """
    ret: Tensor | float = 0.0
    running_discount = 1.0
    coeff = cfg.uncertainty_regularizer_coeff
    for t in range(actions.shape[0]):
        penalty = coeff * model.Qs(z, actions[t]).std(0) if coeff > 0 else 0.0
        z, reward = model.latent_dynamics_and_reward(z, actions[t])
        ret = ret + running_discount * (reward - penalty)
        running_discount *= cfg.discount
    next_action = model.pi(z, cfg.min_std)
    terminal = model.Qs(z, next_action)  # (ensemble, N)
    n_q = terminal.shape[0]
    if n_q > 2:
        terminal_value = terminal[torch.randint(0, n_q, size=(2,))].min(0).values
    else:
        terminal_value = terminal.min(0).values
    ret = ret + running_discount * terminal_value
    if coeff > 0:
        ret = ret - running_discount * coeff * terminal.std(0)
    return ret


@torch.no_grad()
def plan(model: TOLD, z: Tensor, cfg: PlannerConfig, prev_mean: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Plan ``H = cfg.horizon`` actions from latents ``z`` ``(B, latent_dim)``.

    Args:
        model: the online TOLD model.
        z: initial latents.
        cfg: planner hyper-parameters.
        prev_mean: the mean ``(H, B, A)`` returned by the previous call (warm start: shifted by one step),
            or ``None``.
    Returns:
        ``(actions, mean)``: the sampled elite trajectory ``(H, B, A)`` (normalized action space, not yet
        clamped) and the final Gaussian mean ``(H, B, A)`` to pass back as ``prev_mean``.

    Raises:
        ValueError: ``n_elites`` larger than the number of sampled trajectories, or ``prev_mean`` of the
            wrong shape.
    """
    h, b = cfg.horizon, z.shape[0]
    action_dim = model._pi[-1].out_features
    n_total = cfg.n_gaussian_samples + cfg.n_pi_samples
    if cfg.n_elites > n_total:
        raise ValueError(f"n_elites ({cfg.n_elites}) > n_gaussian_samples + n_pi_samples ({n_total})")
    pi_actions = torch.empty(h, cfg.n_pi_samples, b, action_dim, device=z.device, dtype=z.dtype)
    if cfg.n_pi_samples > 0:
        zp = z.unsqueeze(0).expand(cfg.n_pi_samples, -1, -1)
        for t in range(h):
            pi_actions[t] = model.pi(zp, cfg.min_std)
            zp = model.latent_dynamics(zp, pi_actions[t])
    z_all = z.unsqueeze(0).expand(n_total, -1, -1)

    mean = torch.zeros(h, b, action_dim, device=z.device, dtype=z.dtype)
    if prev_mean is not None:
        if prev_mean.shape != mean.shape:
            raise ValueError(f"prev_mean has shape {tuple(prev_mean.shape)}, expected {tuple(mean.shape)}; call reset()")
        mean[:-1] = prev_mean[1:]
    std = torch.full_like(mean, cfg.max_std)

    for _ in range(cfg.cem_iterations):
        noise = torch.randn(h, cfg.n_gaussian_samples, b, action_dim, device=z.device, dtype=z.dtype)
        gaussian = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1)
        actions = torch.cat([gaussian, pi_actions], dim=1)  # (H, n_total, B, A)
        value = estimate_value(model, z_all, actions, cfg).nan_to_num_(0)  # (n_total, B)
        elite_idx = torch.topk(value, cfg.n_elites, dim=0).indices  # (n_elites, B)
        elite_value = value.gather(0, elite_idx)
        elite_actions = actions.take_along_dim(elite_idx[None, :, :, None], dim=1)  # (H, n_elites, B, A)
        # Softmax weights over elites (the normalized Omega of TD-MPC eqn 4).
        score = torch.exp(cfg.elite_weighting_temperature * (elite_value - elite_value.max(0, keepdim=True).values))
        score = score / score.sum(0, keepdim=True)
        w = score[None, :, :, None]
        new_mean = (w * elite_actions).sum(1)  # (H, B, A)
        new_std = torch.sqrt((w * (elite_actions - new_mean.unsqueeze(1)) ** 2).sum(1))
        mean = cfg.gaussian_mean_momentum * mean + (1 - cfg.gaussian_mean_momentum) * new_mean
        std = new_std.clamp(cfg.min_std, cfg.max_std)

    choice = torch.multinomial(score.T, 1).squeeze(1)  # (B,) one elite per batch element
    chosen = elite_actions[:, choice, torch.arange(b, device=z.device)]  # (H, B, A)
    return chosen, mean
