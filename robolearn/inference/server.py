"""Policy server of async inference (Shukor et al. 2025, SmolVLA, Sec. 3.3): predicts an action chunk for each
observation a :class:`~robolearn.inference.client.RobotClient` sends.

Transport: gRPC (``grpcio``) with generic handlers on raw bytes (no protoc code generation); payloads are
:mod:`robolearn.inference.codec` messages (msgpack + safetensors, never pickle). Service
``robolearn.inference.PolicyServer`` with three unary methods:

- ``Ready`` (``{"type": "ready"}``) -> ``{"type": "ready_reply", "policy", "input_features", "action_dim",
  "actions_per_chunk"}``: the handshake, used by the client to check its robot's features;
- ``Reset`` (``{"type": "reset"}``) -> ``{"type": "reset_reply"}``: ``policy.reset()`` at episode start;
- ``Predict`` (``{"type": "observation", "timestep": k, "timestamp": s, "observation": {key: tensor},
  "task": str | None}``) -> ``{"type": "actions", "timestep": k, "timesteps": int64 (n,), "actions": float32
  (n, A), "inference_s": s}``, the chunk of ``policy.predict_action_chunk`` for timesteps ``k .. k+n-1``.

Authentication: a shared token sent as gRPC metadata ``authorization: Bearer <token>`` and checked (in
constant time) on every call. A token is REQUIRED when binding to anything but a loopback address.
The channel is not encrypted: on an untrusted network run it through an SSH tunnel or VPN.

A malformed or invalid request is answered with ``INVALID_ARGUMENT`` (a wrong token with
``UNAUTHENTICATED``) and the server keeps serving.

CLI: ``python -m robolearn.inference.server policy.path=<pretrained_model dir> [host=127.0.0.1 port=8080]
[token=...]`` (config ``conf/serve.yaml``; the token is best given as ``ROBOLEARN_INFERENCE_TOKEN``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from concurrent import futures
from typing import Any, Callable

import grpc
import torch

from robolearn.features import ACTION
from robolearn.inference.codec import DEFAULT_MAX_BYTES, CodecError, decode, encode
from robolearn.inference.observation import wire_to_policy

log = logging.getLogger("robolearn.inference.server")

SERVICE = "robolearn.inference.PolicyServer"
AUTH_METADATA_KEY = "authorization"


def method_path(name: str) -> str:
    """Full gRPC method path, e.g. ``/robolearn.inference.PolicyServer/Predict``."""
    return f"/{SERVICE}/{name}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (``127.0.0.0/8``, ``::1``); False for anything else,
    including ``0.0.0.0``/``::`` (all interfaces) and host names other than ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind_address(host: str, port: int) -> str:
    h = host.strip("[]")
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


def _identity(b: bytes) -> bytes:
    return b


class PolicyServer:
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
        if token is not None and not str(token):
            raise ValueError("token must be a non-empty string or None")
        if token is None and not is_loopback(host):
            raise ValueError(f"refusing to serve on non-loopback address {host!r} without a token: set token=... "
                             "(or ROBOLEARN_INFERENCE_TOKEN), or bind to 127.0.0.1")
        if actions_per_chunk is not None and int(actions_per_chunk) < 1:
            raise ValueError(f"actions_per_chunk must be >= 1 or None, got {actions_per_chunk}")
        self.policy = policy.to(device).eval()
        self.device = torch.device(device)
        self.host, self.port = host, int(port)
        self._token = None if token is None else str(token).encode()
        self.actions_per_chunk = None if actions_per_chunk is None else int(actions_per_chunk)
        self.max_message_bytes = int(max_message_bytes)
        self.max_workers = max_workers
        self._server: grpc.Server | None = None
        self._lock = threading.Lock()
        self.n_predictions = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> int:
        """Bind and start serving in background threads; return the bound port.

        Raises:
            RuntimeError: already started, or the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("server already started")
        limits = [("grpc.max_receive_message_length", self.max_message_bytes),
                  ("grpc.max_send_message_length", self.max_message_bytes)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers), options=limits)
        handlers = {
            "Ready": self._handler("Ready", "ready", self._ready),
            "Reset": self._handler("Reset", "reset", self._reset),
            "Predict": self._handler("Predict", "observation", self._predict),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        address = _bind_address(self.host, self.port)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as e:
            raise RuntimeError(f"cannot bind policy server to {address}: {e}") from e
        if port == 0:
            raise RuntimeError(f"cannot bind policy server to {address}")
        server.start()
        self._server, self.port = server, port
        log.info("policy server (%s) listening on %s, auth %s", type(self.policy).__name__,
                 _bind_address(self.host, port), "on" if self._token else "off")
        return port

    @property
    def address(self) -> str:
        """``host:port`` to give a client."""
        return _bind_address(self.host, self.port)

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds). Safe to call twice."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout`` seconds); True if it stopped."""
        if self._server is None:
            return True
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> "PolicyServer":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ handlers
    def _authorized(self, context: grpc.ServicerContext) -> bool:
        if self._token is None:
            return True
        sent = dict(context.invocation_metadata()).get(AUTH_METADATA_KEY, "")
        return hmac.compare_digest(sent.encode(), b"Bearer " + self._token)

    def _handler(self, name: str, request_type: str, fn: Callable[[dict], dict]) -> grpc.RpcMethodHandler:
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            if not self._authorized(context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              f"{name}: missing or wrong token (send metadata '{AUTH_METADATA_KEY}: Bearer <token>')")
            try:
                reply = fn(decode(request, expected_type=request_type, max_bytes=self.max_message_bytes))
                return encode(reply, max_bytes=self.max_message_bytes)
            except (CodecError, KeyError, ValueError, TypeError) as e:
                detail = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
                log.warning("%s: rejected request: %s", name, detail)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {detail}")
            except Exception as e:  # keep serving whatever the policy raises
                log.exception("%s failed", name)
                context.abort(grpc.StatusCode.INTERNAL, f"{name}: {type(e).__name__}: {e}")

        return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=_identity,
                                                   response_serializer=_identity)

    def _ready(self, msg: dict) -> dict:
        return {
            "type": "ready_reply",
            "policy": type(self.policy).__name__,
            "input_features": {k: f.to_dict() for k, f in self.policy.input_features.items()},
            "action_dim": int(self.policy.features[ACTION].shape[0]),
            "actions_per_chunk": self.actions_per_chunk,
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
        with self._lock:
            start = time.perf_counter()
            batch = {k: v.to(self.device) for k, v in batch.items()}
            batch = self.policy._prepare_observation(batch)  # e.g. Diffusion's observation history
            if task is not None:
                batch["task"] = [task]
            chunk = self.policy.predict_action_chunk(batch)[0]
            if self.actions_per_chunk is not None:
                chunk = chunk[: self.actions_per_chunk]
            chunk = chunk.float().cpu()
            elapsed = time.perf_counter() - start
            self.n_predictions += 1
        return {
            "type": "actions",
            "timestep": timestep,
            "timesteps": torch.arange(timestep, timestep + chunk.shape[0], dtype=torch.int64),
            "actions": chunk,
            "inference_s": elapsed,
        }


def server_from_config(cfg: Any) -> PolicyServer:
    """Build (not start) a :class:`PolicyServer` from a composed ``conf/serve.yaml``: loads
    ``cfg.policy.path`` with :func:`robolearn.policies.load_policy` on ``cfg.policy.device``.

    Raises:
        FileNotFoundError: the policy folder lacks ``config.yaml``/``model.safetensors``. See :class:`PolicyServer`.
    """
    from robolearn.policies import load_policy

    policy = load_policy(cfg.policy.path, map_location=cfg.policy.device)
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
        print(f"serving {type(server.policy).__name__} from {cfg.policy.path} on {server.address} "
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
