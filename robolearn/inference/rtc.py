"""Real-time chunking (RTC, Black, Galliker & Levine 2025, https://arxiv.org/abs/2506.07339) in async inference.

The robot client (``rtc.enabled``) sends with each observation the not-yet-executed remainder of its action
queue (``prev_chunk``, the plan for timesteps ``k, k+1, ...``, robot units) and the inference delay ``d`` in control
steps (fixed, or measured from its recent round trips); the policy server samples the new chunk with the RTC
sampler (:mod:`robolearn.policies.vla.rtc`): its first ``d`` actions are the remainder's, the next ones are guided
toward it. The client then *replaces* the queued tail with the new chunk (no blending: the chunk already continues
the plan). Only flow-matching policies (SmolVLA, π0, π0.5) support it; the server refuses RTC requests for others
and says so in its ``Ready`` reply (``supports_rtc``), which the client checks at connect time.

Wire field (in the ``Predict`` request, optional): ``"rtc": {"prev_chunk": float32 (L, A), "inference_delay": int,
"execution_horizon": int, "max_guidance_weight": float, "schedule": str}``. ``L = 0`` (empty queue) is sent as
no ``prev_chunk`` (plain sampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from robolearn.features import ACTION
from robolearn.policies.vla.rtc import SCHEDULES, RTCConfig, predict_action_chunk_rtc

#: how many recent round trips the measured inference delay looks at (their largest delay is used)
DELAY_WINDOW = 5


@dataclass(frozen=True)
class ClientRTC:
    """The robot client's RTC settings (``rtc`` in ``conf/robot_client.yaml``).

    Args:
        enabled: send the queue's remainder and the delay with each observation (replacing the queued tail with
            each new chunk).
        execution_horizon: ``s``, leading steps of a new chunk guided toward the queued plan (see
            :class:`robolearn.policies.vla.rtc.RTCConfig`); ``None``: the whole queued remainder (the paper's
            choice: guidance over the whole overlap). The soft overlap is ``d <= i < s``: a horizon at or below
            the delay leaves only the frozen prefix.
        max_guidance_weight, schedule: see :class:`robolearn.policies.vla.rtc.RTCConfig`.
        inference_delay: ``d`` in control steps; ``None`` measures it: the largest, over the last
            :data:`DELAY_WINDOW` round trips, of the actions executed while the request was in flight and of
            ``ceil(round_trip_s * fps)``.
    Raises:
        ValueError: invalid guidance settings or a negative ``inference_delay``.
    """

    enabled: bool = False
    execution_horizon: int | None = None
    max_guidance_weight: float = 5.0
    schedule: str = "exp"
    inference_delay: int | None = None

    def __post_init__(self) -> None:
        horizon = 1 if self.execution_horizon is None else int(self.execution_horizon)
        RTCConfig(horizon, float(self.max_guidance_weight), self.schedule)
        if self.inference_delay is not None and int(self.inference_delay) < 0:
            raise ValueError(f"rtc.inference_delay must be >= 0 or null (measured), got {self.inference_delay}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | "ClientRTC" | None) -> "ClientRTC":
        """From a mapping (e.g. the ``rtc`` node of ``conf/robot_client.yaml``), an instance, or None (disabled).

        Raises:
            ValueError: an unknown key (listing the valid ones) or an invalid value.
        """
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        values = dict(cfg)
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown rtc setting(s) {unknown}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def delay(self, trips: list[Any], fps: float) -> int:
        """Inference delay ``d`` to send: the fixed ``inference_delay``, or the measured one (0 before any round
        trip). ``trips`` are :class:`~robolearn.inference.client.RoundTrip` records (``dropped``,
        ``round_trip_s``)."""
        if self.inference_delay is not None:
            return int(self.inference_delay)
        recent = trips[-DELAY_WINDOW:]
        return max((max(int(t.dropped), math.ceil(t.round_trip_s * fps - 1e-9)) for t in recent), default=0)

    def horizon(self, remainder_length: int) -> int:
        """Execution horizon sent for a remainder of ``remainder_length`` steps (at least 1)."""
        if self.execution_horizon is None:
            return max(1, int(remainder_length))
        return int(self.execution_horizon)

    def request(self, remainder: torch.Tensor | None, delay: int) -> dict[str, Any]:
        """The ``rtc`` field of a ``Predict`` request for the queue's ``remainder`` ``(L, A)`` (None or ``L = 0``:
        nothing to continue)."""
        n = 0 if remainder is None else int(remainder.shape[0])
        msg: dict[str, Any] = {"inference_delay": int(delay), "execution_horizon": self.horizon(n),
                               "max_guidance_weight": float(self.max_guidance_weight), "schedule": self.schedule}
        if remainder is not None and remainder.shape[0] > 0:
            msg["prev_chunk"] = remainder.float()
        return msg


def supports_rtc(policy: Any) -> bool:
    """Whether ``policy`` samples by flow matching, so that RTC applies (SmolVLA, π0, π0.5)."""
    return bool(getattr(policy, "supports_rtc", False))


def predict_with_rtc(policy: Any, batch: dict[str, Any], request: Any) -> torch.Tensor:
    """Validate a request's ``rtc`` field and predict the chunk ``(1, chunk_size, A)`` with RTC.

    Args:
        policy: the served policy (on its device, eval mode).
        batch: the policy input (batch of 1, on the policy's device).
        request: the ``rtc`` field (see the module docstring).
    Returns:
        unnormalized actions ``(1, chunk_size, A)``.
    Raises:
        ValueError: a policy without flow matching, a malformed field (wrong types, ``prev_chunk`` not
            ``(L, A)`` float or non-finite, a negative delay, an unknown schedule). A ``prev_chunk`` longer than the
            policy's chunk is cut to it.
    """
    if not supports_rtc(policy):
        raise ValueError(f"real-time chunking requested, but {type(policy).__name__} does not support it: RTC needs "
                         "a flow-matching policy (SmolVLA, pi0, pi0.5); set rtc.enabled=false on the robot client")
    if not isinstance(request, dict):
        raise ValueError(f"'rtc' must be a map, got {type(request).__name__}")
    ints = {}
    for key in ("inference_delay", "execution_horizon"):
        value = request.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"rtc.{key} must be an integer >= 0, got {value!r}")
        ints[key] = value
    beta = request.get("max_guidance_weight")
    if not isinstance(beta, (int, float)) or isinstance(beta, bool):
        raise ValueError(f"rtc.max_guidance_weight must be a number, got {beta!r}")
    schedule = request.get("schedule")
    if schedule not in SCHEDULES:
        raise ValueError(f"rtc.schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    config = RTCConfig(max(1, ints["execution_horizon"]), float(beta), schedule)
    prev = request.get("prev_chunk")
    if prev is not None:
        action_dim = int(policy.features[ACTION].shape[0])
        if not isinstance(prev, torch.Tensor) or not prev.is_floating_point() or prev.dim() != 2 \
                or prev.shape[1] != action_dim:
            shape = tuple(prev.shape) if isinstance(prev, torch.Tensor) else type(prev).__name__
            raise ValueError(f"rtc.prev_chunk must be a float (L, {action_dim}) tensor, got {shape}")
        if not bool(torch.isfinite(prev).all()):
            raise ValueError("rtc.prev_chunk has non-finite values (NaN/inf); refused")
        prev = prev[: policy.chunk_size][None].to(device=policy.device, dtype=torch.float32)
    return predict_action_chunk_rtc(policy, batch, prev, ints["inference_delay"], config)
