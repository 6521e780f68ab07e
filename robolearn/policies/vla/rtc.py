"""Real-time chunking (RTC) for flow-matching action policies: Black, Galliker & Levine 2025, "Real-Time Execution
of Action Chunking Flow Policies" (https://arxiv.org/abs/2506.07339), as lerobot's RTC inference for SmolVLA/π0.

While a chunk executes, the next one is generated; by the time it arrives the robot has executed ``d`` more actions
(the inference delay, in control steps). RTC makes the new chunk continue the plan being executed by *inpainting*
during flow-matching denoising:

- the previous chunk's not-yet-executed remainder ``Y`` (``prev_chunk``, aligned so that ``Y[i]`` is the action
  planned for index ``i`` of the new chunk) guides the new chunk with per-step weights ``W`` (the prefix-attention
  schedule): ``W_i = 1`` for ``i < d`` (the frozen prefix: actions that will have been executed anyway), decaying
  from 1 to 0 over ``d <= i < s`` (the soft overlap; ``s`` = ``execution_horizon``, at most the length of ``Y``),
  ``W_i = 0`` for ``i >= s``;
- at each Euler step, with robolearn's flow convention (:mod:`robolearn.policies.vla.flow`: ``t`` runs from 1 =
  noise to 0 = data, ``x_t = t * noise + (1 - t) * A``, velocity ``v ~ noise - A``) the denoiser's estimate of
  the clean chunk is ``Â = x_t - t * v(x_t, t)``; the guidance is the vector-Jacobian product
  ``g = ((Y - Â) * W)^T dÂ/dx_t`` (autograd through the denoiser) and the step uses ``v - w(t) * g`` with
  ``w(t) = min(β, (τ² + (1-τ)²) / (τ (1-τ)))``, ``τ = 1 - t`` (the paper's ``(1-τ) / (τ r_τ²)``,
  ``r_τ² = (1-τ)² / (τ² + (1-τ)²)``, in its time convention; β = ``max_guidance_weight``; ``w = β`` at
  ``τ = 0`` and ``τ = 1``);
- the returned chunk's first ``d`` steps are the previous chunk's actions themselves (they are committed: the
  robot executes them while the chunk is computed).

With ``prev_chunk=None`` sampling is the plain Euler sampler (:func:`robolearn.policies.vla.flow.euler_integrate`),
bit for bit. Guidance costs one backward pass through the action expert per Euler step (the prefix KV cache is a
constant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from robolearn.features import ACTION
from robolearn.policies.vla.flow import euler_integrate

SCHEDULES = ("exp", "linear", "ones", "zeros")


@dataclass(frozen=True)
class RTCConfig:
    """Settings of RTC guidance (lerobot's ``rtc`` config names).

    Args:
        execution_horizon: ``s``, how many leading steps of the new chunk the previous plan guides (clamped to the
            length of ``prev_chunk``); lerobot's default 10.
        max_guidance_weight: ``β``, clip of the guidance weight ``w(t)`` (the paper uses 5 with 5 Euler steps);
            ``0`` turns guidance off (the frozen prefix is still copied).
        schedule: prefix-attention schedule over the soft overlap ``d <= i < s``: ``"exp"`` (the paper's
            ``c_i (e^{c_i} - 1) / (e - 1)``, ``c_i = (s - i) / (s - d + 1)``), ``"linear"`` (``c_i``), ``"ones"``
            (weight 1 up to ``s``) or ``"zeros"`` (only the frozen prefix is guided).
    Raises:
        ValueError: ``execution_horizon < 1``, a negative or non-finite ``max_guidance_weight``, or an unknown
            schedule (the message lists the valid ones).
    """

    execution_horizon: int = 10
    max_guidance_weight: float = 5.0
    schedule: str = "exp"

    def __post_init__(self) -> None:
        if int(self.execution_horizon) < 1:
            raise ValueError(f"RTC execution_horizon must be >= 1, got {self.execution_horizon}")
        if not math.isfinite(float(self.max_guidance_weight)) or float(self.max_guidance_weight) < 0:
            raise ValueError(f"RTC max_guidance_weight must be finite and >= 0, got {self.max_guidance_weight}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown RTC schedule {self.schedule!r}; choose one of {list(SCHEDULES)}")


def prefix_weights(inference_delay: int, execution_horizon: int, chunk_size: int, schedule: str = "exp") -> Tensor:
    """Guidance weights ``W`` ``(chunk_size,)`` float32 in [0, 1]: 1 on the frozen prefix ``i < d``, the
    ``schedule`` on ``d <= i < s``, 0 from ``s`` on (``d = inference_delay``, ``s = execution_horizon``; both are
    clamped to ``chunk_size``, and ``s`` raised to ``d`` when smaller).

    Raises:
        ValueError: a negative ``inference_delay`` or ``execution_horizon``, or an unknown schedule.
    """
    if inference_delay < 0 or execution_horizon < 0:
        raise ValueError(f"inference_delay and execution_horizon must be >= 0, got {inference_delay}, "
                         f"{execution_horizon}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown RTC schedule {schedule!r}; choose one of {list(SCHEDULES)}")
    d = min(int(inference_delay), chunk_size)
    s = max(min(int(execution_horizon), chunk_size), d)
    i = torch.arange(chunk_size, dtype=torch.float32)
    c = ((s - i) / (s - d + 1)).clamp(0.0, 1.0)
    if schedule == "exp":
        w = c * torch.expm1(c) / math.expm1(1.0)
    elif schedule == "linear":
        w = c
    elif schedule == "ones":
        w = torch.ones(chunk_size)
    else:
        w = torch.zeros(chunk_size)
    w = torch.where(i < s, w, torch.zeros(()))
    return torch.where(i < d, torch.ones(()), w)


def guidance_weight(t: float, max_guidance_weight: float) -> float:
    """``min(β, (τ² + (1-τ)²) / (τ (1-τ)))`` with ``τ = 1 - t`` (robolearn's ``t``: 1 = noise, 0 = data); ``β`` at
    ``τ = 0`` and ``τ = 1`` where the expression is infinite."""
    tau = 1.0 - float(t)
    if tau <= 0.0 or tau >= 1.0:
        return float(max_guidance_weight)
    return min(float(max_guidance_weight), (tau ** 2 + (1.0 - tau) ** 2) / (tau * (1.0 - tau)))


def rtc_euler_integrate(velocity: Callable[[Tensor, Tensor], Tensor], x1: Tensor, num_steps: int,
                        prev_chunk: Tensor | None = None, inference_delay: int = 0, execution_horizon: int = 10,
                        schedule: str = "exp", max_guidance_weight: float = 5.0) -> Tensor:
    """Euler integration of the flow from ``t = 1`` to ``t = 0`` with RTC guidance toward ``prev_chunk``.

    Args:
        velocity: ``v(x (B, H, D), t (B,)) -> (B, H, D)`` float32, differentiable in ``x`` (the denoiser).
        x1: initial noise ``(B, H, D)``.
        num_steps: Euler steps (as :func:`~robolearn.policies.vla.flow.euler_integrate`).
        prev_chunk: ``(B, L, A)`` previous plan in the same (normalized) space, ``L <= H`` steps and ``A <= D``
            dims (the padded dims ``A..D`` are not guided), or None for plain sampling (bit for bit
            :func:`~robolearn.policies.vla.flow.euler_integrate`).
        inference_delay: ``d``, control steps executed while this chunk is computed (frozen prefix), ``0 <= d``
            (clamped to ``L``).
        execution_horizon: ``s``, guided steps (clamped to ``L``).
        schedule, max_guidance_weight: see :class:`RTCConfig`.
    Returns:
        ``(B, H, D)``; with ``prev_chunk`` its first ``min(d, L)`` steps (dims ``:A``) equal ``prev_chunk``'s.
    Raises:
        ValueError: ``num_steps < 1``, a ``prev_chunk`` that is not ``(B, L, A)`` with ``L <= H`` and ``A <= D``,
            a non-finite ``prev_chunk``, or invalid RTC settings (see :class:`RTCConfig`).
    """
    if prev_chunk is None:
        return euler_integrate(velocity, x1, num_steps)
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    RTCConfig(max(1, int(execution_horizon)), max_guidance_weight, schedule)  # validates β and the schedule
    b, h, dim = x1.shape
    if prev_chunk.dim() != 3 or prev_chunk.shape[0] != b or prev_chunk.shape[1] > h or prev_chunk.shape[2] > dim:
        raise ValueError(f"prev_chunk must be (B={b}, L<={h}, A<={dim}), got {tuple(prev_chunk.shape)}")
    if not bool(torch.isfinite(prev_chunk).all()):
        raise ValueError("prev_chunk has non-finite values (NaN/inf)")
    n, a = prev_chunk.shape[1], prev_chunk.shape[2]
    d = min(int(inference_delay), n)
    target = torch.zeros_like(x1)
    target[:, :n, :a] = prev_chunk.to(x1)
    weights = torch.zeros_like(x1)
    weights[:, :, :a] = prefix_weights(d, min(int(execution_horizon), n), h, schedule).to(x1)[None, :, None]
    dt = -1.0 / num_steps
    x = x1
    for k in range(num_steps):
        t_val = 1.0 + k * dt
        t = torch.full((b,), t_val, dtype=torch.float32, device=x.device)
        beta = guidance_weight(t_val, max_guidance_weight)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            v = velocity(x_in, t)
            x_hat = x_in - t_val * v  # the denoiser's estimate of the clean chunk
            err = ((target - x_hat) * weights).detach()
            (g,) = torch.autograd.grad(x_hat, x_in, grad_outputs=err)
        x = (x + dt * (v.detach() - beta * g)).detach()
    x = x.clone()
    x[:, :d, :a] = target[:, :d, :a]
    return x


def predict_action_chunk_rtc(policy: Any, observation: dict[str, Any], prev_chunk: Tensor | None,
                             inference_delay: int, config: RTCConfig) -> Tensor:
    """A VLA policy's ``predict_action_chunk`` with RTC guidance toward the previous plan.

    Args:
        policy: a flow-matching VLA ``PolicyModule`` (SmolVLA, π0, π0.5: ``supports_rtc = True``).
        observation: raw observation batch, as ``policy.predict_action_chunk`` takes.
        prev_chunk: ``(B, L, action_dim)`` the previous chunk's not-yet-executed actions in the robot's units
            (unnormalized), ``prev_chunk[:, i]`` planned for step ``i`` of the new chunk; None: plain sampling.
        inference_delay: ``d`` >= 0, control steps executed while the chunk is computed.
        config: :class:`RTCConfig`.
    Returns:
        ``(B, chunk_size, action_dim)`` unnormalized actions.
    Raises:
        ValueError: ``policy`` is not a flow-matching policy (RTC needs the flow's denoiser), a negative delay,
            or a ``prev_chunk`` of the wrong shape or with non-finite values.
    """
    if not getattr(policy, "supports_rtc", False):
        raise ValueError(f"{type(policy).__name__} does not support real-time chunking: RTC guides the denoising of "
                         "a flow-matching policy (SmolVLA, pi0, pi0.5); use the plain action queue instead")
    if int(inference_delay) < 0:
        raise ValueError(f"inference_delay must be >= 0, got {inference_delay}")
    with torch.no_grad():
        obs = policy.normalizer.normalize(observation, keys=list(policy.input_features))
        rtc = None
        if prev_chunk is not None:
            if prev_chunk.dim() != 3 or prev_chunk.shape[-1] != policy.action_dim:
                raise ValueError(f"prev_chunk must be (B, L, {policy.action_dim}), got {tuple(prev_chunk.shape)}")
            prev = policy.normalizer.normalize_tensor(ACTION, prev_chunk.to(policy.device).float())
            rtc = {"prev_chunk": prev, "inference_delay": int(inference_delay),
                   "execution_horizon": int(config.execution_horizon), "schedule": config.schedule,
                   "max_guidance_weight": float(config.max_guidance_weight)}
        chunk = policy._predict_chunk(obs, rtc=rtc)
        return policy.normalizer.unnormalize_tensor(ACTION, chunk)
