"""Policy server of async inference (Shukor et al. 2025, SmolVLA, Sec. 3.3): predicts an action chunk for each
observation a :class:`~robolearn.inference.client.RobotClient` sends.

Transport: gRPC (``grpcio``) with generic handlers on raw bytes (no protoc code generation); payloads are
:mod:`robolearn.inference.codec` messages (msgpack + safetensors, never pickle). Service
``robolearn.inference.PolicyServer`` with three unary methods:

- ``Ready`` (``{"type": "ready"}``) -> ``{"type": "ready_reply", "policy", "input_features", "action_dim",
  "actions_per_chunk", "supports_rtc"}``: the handshake, used by the client to check its robot's features;
- ``Reset`` (``{"type": "reset"}``) -> ``{"type": "reset_reply"}``: ``policy.reset()`` at episode start;
- ``Predict`` (``{"type": "observation", "timestep": k, "timestamp": s, "observation": {key: tensor},
  "task": str | None, "rtc": optional}``) -> ``{"type": "actions", "timestep": k, "timesteps": int64 (n,), "actions":
  float32 (n, A), "inference_s": s}``, the chunk of ``policy.predict_action_chunk`` for timesteps ``k .. k+n-1``
  (with ``rtc``: real-time chunking toward the client's queued plan, :mod:`robolearn.inference.rtc`).

Authentication: a shared token sent as gRPC metadata ``authorization: Bearer <token>`` and checked (in
constant time) on every call. A token is REQUIRED when binding to anything but a loopback address.
The channel is not encrypted: on an untrusted network run it through an SSH tunnel or VPN.

A malformed or invalid request is answered with ``INVALID_ARGUMENT`` (a wrong token with
``UNAUTHENTICATED``) and the server keeps serving.

CLI: ``python -m robolearn.inference.server policy.path=<pretrained_model dir> [host=127.0.0.1 port=8080]
[token=...]`` (config ``conf/serve.yaml``; the token is best given as ``ROBOLEARN_INFERENCE_TOKEN``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import torch

from robolearn.features import ACTION
from robolearn.inference.codec import DEFAULT_MAX_BYTES
from robolearn.inference.observation import wire_to_policy
from robolearn.inference.rpc import AUTH_METADATA_KEY, RpcService, is_loopback  # noqa: F401 (re-exported)
from robolearn.inference.rtc import predict_with_rtc, supports_rtc

log = logging.getLogger("robolearn.inference.server")

SERVICE = "robolearn.inference.PolicyServer"


def method_path(name: str) -> str:
    """Full gRPC method path, e.g. ``/robolearn.inference.PolicyServer/Predict``."""
    return f"/{SERVICE}/{name}"


class PolicyServer(RpcService):
    """Serve one policy over gRPC.

    Args:
        policy: a :class:`~robolearn.policies.base.PolicyModule` (e.g. from ``load_policy``); put in eval mode.
        host: address to bind; a non-loopback one requires ``token``.
        port: TCP port; ``0`` picks a free one (see :attr:`port` after :meth:`start`).
        token: shared secret clients must send; ``None`` = no authentication (loopback only).
        actions_per_chunk: keep only the first ``n`` actions of each predicted chunk (``None``: all).
        device: where the policy runs (``"cpu"``, ``"cuda"``...).
        max_message_bytes: largest request/reply accepted (also the gRPC message size limits).
        max_workers: gRPC handler threads (predictions themselves are serialized by a lock).
    Raises:
        ValueError: non-loopback ``host`` without a token, an empty token, or ``actions_per_chunk < 1``.
    """

    def __init__(self, policy: Any, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
                 actions_per_chunk: int | None = None, device: str | torch.device = "cpu",
                 max_message_bytes: int = DEFAULT_MAX_BYTES, max_workers: int = 4):
        if actions_per_chunk is not None and int(actions_per_chunk) < 1:
            raise ValueError(f"actions_per_chunk must be >= 1 or None, got {actions_per_chunk}")
        super().__init__(host, port, token, max_message_bytes, max_workers,
                         token_hint="set token=... (or ROBOLEARN_INFERENCE_TOKEN)")
        self.policy = policy.to(device).eval()
        self.device = torch.device(device)
        self.actions_per_chunk = None if actions_per_chunk is None else int(actions_per_chunk)
        self._lock = threading.Lock()
        self.n_predictions = 0

    service = SERVICE
    label = "policy server"

    def methods(self) -> dict[str, tuple[str, Callable[[dict], dict]]]:
        """``Ready``, ``Reset`` and ``Predict`` (see the module docstring)."""
        return {"Ready": ("ready", self._ready), "Reset": ("reset", self._reset),
                "Predict": ("observation", self._predict)}

    def _ready(self, msg: dict) -> dict:
        return {
            "type": "ready_reply",
            "policy": type(self.policy).__name__,
            "input_features": {k: f.to_dict() for k, f in self.policy.input_features.items()},
            "action_dim": int(self.policy.features[ACTION].shape[0]),
            "actions_per_chunk": self.actions_per_chunk,
            "supports_rtc": supports_rtc(self.policy),
        }

    def _reset(self, msg: dict) -> dict:
        with self._lock:
            self.policy.reset()
        return {"type": "reset_reply"}

    def _predict(self, msg: dict) -> dict:
        timestep = msg.get("timestep")
        if not isinstance(timestep, int) or isinstance(timestep, bool) or timestep < 0:
            raise ValueError(f"'timestep' must be an integer >= 0, got {timestep!r}")
        observation = msg.get("observation")
        if not isinstance(observation, dict):
            raise ValueError(f"'observation' must be a map of tensors, got {type(observation).__name__}")
        task = msg.get("task")
        if task is not None and not isinstance(task, str):
            raise ValueError(f"'task' must be a string or null, got {type(task).__name__}")
        batch = wire_to_policy(observation, self.policy.input_features)
        for key, value in batch.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                bad = int((~torch.isfinite(value)).sum())
                raise ValueError(f"observation {key!r} has {bad} non-finite value(s) (NaN/inf); refused")
        with self._lock:
            start = time.perf_counter()
            batch = {k: v.to(self.device) for k, v in batch.items()}
            batch = self.policy._prepare_observation(batch)  # e.g. Diffusion's observation history
            if task is not None:
                batch["task"] = [task]
            rtc = msg.get("rtc")
            chunk = (self.policy.predict_action_chunk(batch) if rtc is None
                     else predict_with_rtc(self.policy, batch, rtc))[0]
            if self.actions_per_chunk is not None:
                chunk = chunk[: self.actions_per_chunk]
            chunk = chunk.float().cpu()
            elapsed = time.perf_counter() - start
            self.n_predictions += 1
        if not bool(torch.isfinite(chunk).all()):
            # never sent: the client would execute it on a robot
            raise ValueError(f"the policy produced {int((~torch.isfinite(chunk)).sum())} non-finite action value(s) "
                             f"for timestep {timestep}; nothing sent")
        return {
            "type": "actions",
            "timestep": timestep,
            "timesteps": torch.arange(timestep, timestep + chunk.shape[0], dtype=torch.int64),
            "actions": chunk,
            "inference_s": elapsed,
        }


def server_from_config(cfg: Any) -> PolicyServer:
    """Build (not start) a :class:`PolicyServer` from a composed ``conf/serve.yaml``: loads
    ``cfg.policy.path`` with :func:`robolearn.policies.load_policy` on ``cfg.policy.device``, in bfloat16 or
    int8-quantized when ``cfg.policy.quantize`` is not ``none`` (:mod:`robolearn.policies.quantize`).

    Raises:
        FileNotFoundError: the policy folder lacks ``config.yaml``/``model.safetensors``.
        ValueError: an unknown ``policy.quantize`` mode, or int8 quantization of a policy that is not a VLA. See
            :class:`PolicyServer`.
    """
    from robolearn.policies import load_policy

    policy = load_policy(cfg.policy.path, map_location=cfg.policy.device, quantize=cfg.policy.get("quantize"))
    return PolicyServer(policy, host=cfg.host, port=cfg.port, token=cfg.token, actions_per_chunk=cfg.actions_per_chunk,
                        device=cfg.policy.device, max_message_bytes=int(cfg.max_message_mb * 1024 * 1024))


def main() -> None:
    """Hydra entry point (``conf/serve.yaml``): serve until Ctrl-C."""
    import hydra
    from omegaconf import DictConfig

    from robolearn.utils.schema import CONF_DIR, register_schemas

    register_schemas()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="serve")
    def _run(cfg: DictConfig) -> None:
        server = server_from_config(cfg)
        server.start()
        quantized = getattr(server.policy, "quantization", None)
        mode = f" ({quantized['mode']})" if quantized else ""
        print(f"serving {type(server.policy).__name__}{mode} from {cfg.policy.path} on {server.address} "
              f"(auth {'on' if cfg.token else 'off'}); Ctrl-C to stop", flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()

    _run()


if __name__ == "__main__":
    main()
