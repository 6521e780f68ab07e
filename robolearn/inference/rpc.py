"""A small gRPC service base shared by robolearn's servers (the async-inference policy server and the HIL-SERL
learner's transition server).

Transport: ``grpcio`` generic handlers on raw bytes (no protoc code generation); every request and reply is a
:mod:`robolearn.inference.codec` message (msgpack + safetensors, never pickle). Authentication: a shared token sent
as gRPC metadata ``authorization: Bearer <token>``, compared in constant time on every call; a token is required
to bind anything but a loopback address. A request that fails to decode or validate is answered with
``INVALID_ARGUMENT`` (a wrong token with ``UNAUTHENTICATED``, an unexpected exception with ``INTERNAL``) and the
server keeps serving.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from concurrent import futures
from typing import Any, Callable, Mapping

import grpc

from robolearn.inference.codec import DEFAULT_MAX_BYTES, CodecError, decode, encode

log = logging.getLogger("robolearn.inference.rpc")

AUTH_METADATA_KEY = "authorization"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (``127.0.0.0/8``, ``::1``); False for anything else,
    including ``0.0.0.0``/``::`` (all interfaces) and host names other than ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_address(host: str, port: int) -> str:
    """``host:port`` (IPv6 hosts bracketed: ``[::1]:8080``)."""
    h = host.strip("[]")
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


# Longest error detail logged or returned to a peer: a message that quotes its input must not copy a whole request.
MAX_DETAIL_CHARS = 1000


def bounded(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with the number of characters left out appended."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _identity(b: bytes) -> bytes:
    return b


class RpcService:
    """Base of a unary-only gRPC service on codec messages.

    Subclasses define :attr:`service` (the gRPC service name), :attr:`label` (for messages) and
    :meth:`methods`, ``{method name: (expected request "type", handler(message dict) -> reply dict)}``; a handler
    raises ``KeyError``/``ValueError``/``TypeError`` for an invalid request (answered ``INVALID_ARGUMENT``).

    Args:
        host: address to bind; a non-loopback one requires ``token``.
        port: TCP port; ``0`` picks a free one (see :attr:`port` after :meth:`start`).
        token: shared secret clients must send; ``None`` = no authentication (loopback only).
        max_message_bytes: largest request/reply accepted (also the gRPC message size limits).
        max_workers: gRPC handler threads.
        token_hint: how to set the token, appended to the refusal message.
    Raises:
        ValueError: a non-loopback ``host`` without a token, or an empty token.
    """

    service = ""
    label = "server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_BYTES, max_workers: int = 4, token_hint: str = "set token=..."):
        if token is not None and not str(token):
            raise ValueError("token must be a non-empty string or None")
        if token is None and not is_loopback(host):
            raise ValueError(f"refusing to serve the {self.label} on non-loopback address {host!r} without a token: "
                             f"{token_hint}, or bind to 127.0.0.1")
        self.host, self.port = host, int(port)
        self._token = None if token is None else str(token).encode()
        self.max_message_bytes = int(max_message_bytes)
        self.max_workers = int(max_workers)
        self._server: grpc.Server | None = None
        self.rejected = 0  # requests answered INVALID_ARGUMENT
        self.last_error: str | None = None

    def methods(self) -> Mapping[str, tuple[str, Callable[[dict], dict]]]:
        """``{method: (request type, handler)}`` of this service."""
        raise NotImplementedError(f"{type(self).__name__} must define methods()")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> int:
        """Bind and start serving in background threads; return the bound port.

        Raises:
            RuntimeError: already started, or the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError(f"{self.label} already started")
        limits = [("grpc.max_receive_message_length", self.max_message_bytes),
                  ("grpc.max_send_message_length", self.max_message_bytes)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers), options=limits)
        handlers = {name: self._handler(name, kind, fn) for name, (kind, fn) in self.methods().items()}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(self.service, handlers),))
        address = bind_address(self.host, self.port)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as e:
            raise RuntimeError(f"cannot bind the {self.label} to {address}: {e}") from e
        if port == 0:
            raise RuntimeError(f"cannot bind the {self.label} to {address}")
        server.start()
        self._server, self.port = server, port
        log.info("%s listening on %s, auth %s", self.label, self.address, "on" if self._token else "off")
        return port

    @property
    def address(self) -> str:
        """``host:port`` to give a client."""
        return bind_address(self.host, self.port)

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

    def __enter__(self):
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
                detail = bounded(e.args[0] if isinstance(e, KeyError) and e.args else str(e))
                self.rejected += 1
                self.last_error = f"{name}: {detail}"
                log.warning("%s rejected a %s request: %s", self.label, name, detail)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {detail}")
            except Exception as e:  # keep serving whatever one call raises
                # the traceback ends with the whole message: keep it only when the message is short
                log.error("%s: %s failed: %s", self.label, name, bounded(f"{type(e).__name__}: {e}"),
                          exc_info=len(str(e)) <= MAX_DETAIL_CHARS)
                context.abort(grpc.StatusCode.INTERNAL, bounded(f"{name}: {type(e).__name__}: {e}"))

        return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=_identity,
                                                   response_serializer=_identity)
