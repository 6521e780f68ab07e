"""Robot client of async inference (Shukor et al. 2025, SmolVLA, Sec. 3.3): executes actions from a local
queue at the robot's fps while chunks are predicted remotely by a :class:`~robolearn.inference.server.PolicyServer`.

Each control tick (one every ``1/fps`` seconds):

1. pop the earliest queued action and send it to the robot (if the queue is empty the robot holds still and
   the tick is counted as *starved*);
2. if no request is in flight and the queue holds fewer than ``chunk_size_threshold * chunk_size`` actions
   (``chunk_size`` = length of the last chunk received; an empty queue always asks), read an observation and
   hand it, stamped with ``timestep`` = number of actions executed so far, to the receiver thread.

The receiver thread sends the observation (``Predict``), merges the returned chunk (timesteps ``k .. k+n-1``)
into the queue with the chosen merge function (:mod:`robolearn.inference.merge`), and records the round-trip
latency. ``chunk_size_threshold=0`` waits for an empty queue (synchronous chunking, as ``select_action``);
``1`` asks again as soon as one action has been executed.

With real-time chunking (``rtc.enabled``, flow-matching policies only; :mod:`robolearn.inference.rtc`) each
observation also carries the queue's remainder and the inference delay, the server continues that plan, and the new
chunk replaces the queued tail (``aggregate_fn_name`` is not used).

CLI: ``python -m robolearn.inference.client robot=<group option> robot.port=... server_address=host:port``
(config ``conf/robot_client.yaml``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import torch

from robolearn.features import FeatureType, PolicyFeature
from robolearn.inference.action_queue import TimedActionQueue
from robolearn.inference.codec import DEFAULT_MAX_BYTES, decode, encode
from robolearn.inference.merge import get_merge_fn, latest_only
from robolearn.inference.observation import robot_to_wire
from robolearn.inference.rtc import ClientRTC
from robolearn.inference.server import AUTH_METADATA_KEY, method_path
from robolearn.robots.features import hw_to_dataset_features, vector_to_action

log = logging.getLogger("robolearn.inference.client")


class InferenceServerError(RuntimeError):
    """The policy server answered a call with an error status (``code`` is the ``grpc.StatusCode``)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.code = code


class AuthenticationError(InferenceServerError, PermissionError):
    """The server refused the token (missing or wrong)."""


@dataclass
class RoundTrip:
    """One ``Predict`` call: observation ``timestep``, round-trip time and server inference time (seconds); the
    first action executed from the chunk is that of timestep ``timestep + dropped``; ``inference_delay``: the delay
    (control steps) sent with an RTC request, else None."""

    timestep: int
    queue_size_at_request: int
    round_trip_s: float
    inference_s: float
    n_actions: int
    dropped: int
    merged: int
    added: int
    inference_delay: int | None = None


def latency_summary(values_s: list[float]) -> dict[str, float | int]:
    """``{"n", "mean_ms", "p50_ms", "p95_ms", "max_ms"}`` of a list of durations in seconds."""
    if not values_s:
        return {"n": 0}
    ms = np.asarray(values_s) * 1000.0
    return {"n": int(ms.size), "mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max())}


class RobotClient:
    """Drive a :class:`~robolearn.robots.robot.Robot` with action chunks from a remote policy server.

    Args:
        robot: a connected robot; its observation dict is converted with ``robolearn.robots.features``
            (``observation.state`` and ``observation.images.<cam>``) and actions are sent as ``{name: float}``
            in ``robot.action_features`` order.
        server_address: ``host:port`` of the policy server.
        token: shared secret (``None`` when the server has no authentication).
        fps: control frequency (Hz) of :meth:`run`.
        chunk_size_threshold: ``g`` in [0, 1]; a new observation is sent when the queue holds fewer than
            ``g * chunk_size`` actions (SmolVLA's ``g``; lerobot's default 0.5).
        aggregate_fn_name: merge function for overlapping timesteps (``weighted_average``, ``latest_only``,
            ``average``, ``conservative``); not used with RTC.
        task: language instruction sent with each observation (for language-conditioned policies) or ``None``.
        timeout_s: deadline of each gRPC call.
        max_message_bytes: largest message sent or accepted.
        rtc: real-time chunking settings (:class:`~robolearn.inference.rtc.ClientRTC` or a mapping of its fields,
            e.g. ``conf/robot_client.yaml``'s ``rtc``); None or ``enabled: false``: the plain merged queue.
    Raises:
        ValueError: ``fps <= 0``, a threshold outside [0, 1], an unknown merge function, invalid ``rtc``
            settings, or a robot with a camera among its action features.
    """

    def __init__(self, robot: Any, server_address: str, token: str | None = None, fps: float = 30.0,
                 chunk_size_threshold: float = 0.5, aggregate_fn_name: str = "weighted_average",
                 task: str | None = None, timeout_s: float = 30.0, max_message_bytes: int = DEFAULT_MAX_BYTES,
                 rtc: Any = None):
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if not 0.0 <= chunk_size_threshold <= 1.0:
            raise ValueError(f"chunk_size_threshold must be in [0, 1], got {chunk_size_threshold}")
        self.robot = robot
        self.server_address = server_address
        self.fps = float(fps)
        self.chunk_size_threshold = float(chunk_size_threshold)
        self.task = task
        self.timeout_s = timeout_s
        self.max_message_bytes = int(max_message_bytes)
        merge_fn = get_merge_fn(aggregate_fn_name)
        self.rtc = ClientRTC.from_config(rtc)
        self._rtc_warned = False
        # RTC's chunk already continues the queued plan: it replaces the tail instead of being blended with it
        self.queue = TimedActionQueue(latest_only if self.rtc.enabled else merge_fn)
        self.obs_features = hw_to_dataset_features(robot.observation_features, "observation")
        self.action_names = list(robot.action_features)
        hw_to_dataset_features(robot.action_features, "action")  # raises on a camera in the action features
        self._metadata = ((AUTH_METADATA_KEY, f"Bearer {token}"),) if token else ()
        self.chunk_size: int | None = None  # length of the last chunk received
        self.server_info: dict[str, Any] | None = None
        self.round_trips: list[RoundTrip] = []
        self.n_executed = 0
        self.n_starved = 0
        self._channel: grpc.Channel | None = None
        self._calls: dict[str, Any] = {}
        self._outbox: queue.Queue = queue.Queue(maxsize=1)
        self._idle = threading.Event()
        self._idle.set()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ connection
    def connect(self) -> dict[str, Any]:
        """Open the channel, do the ``Ready`` handshake, check the robot against the policy's features,
        ``Reset`` the policy and start the receiver thread. Returns the server's ``ready_reply``.

        Raises:
            AuthenticationError: the server refused the token.
            InferenceServerError: the server is unreachable within ``timeout_s`` or answered an error.
            ValueError: the robot lacks a policy input or a shape/action size differs (naming them), or RTC is
                enabled and the served policy is not a flow-matching one.
        """
        limits = [("grpc.max_receive_message_length", self.max_message_bytes),
                  ("grpc.max_send_message_length", self.max_message_bytes)]
        self._channel = grpc.insecure_channel(self.server_address, options=limits)
        self._calls = {name: self._channel.unary_unary(method_path(name)) for name in ("Ready", "Reset", "Predict")}
        try:
            info = self._call("Ready", {"type": "ready"}, "ready_reply")
            self._check_features(info)
            self._call("Reset", {"type": "reset"}, "reset_reply")
        except BaseException:
            self.close()
            raise
        self.server_info = info
        self._stop.clear()
        self._thread = threading.Thread(target=self._receiver, name="robot-client-receiver", daemon=True)
        self._thread.start()
        return info

    def close(self) -> None:
        """Stop the receiver thread and close the channel. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1.0)
            self._thread = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> "RobotClient":
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: str, message: dict, reply_type: str) -> dict:
        if self._channel is None:
            raise RuntimeError("RobotClient is not connected; call connect() first")
        data = encode(message, max_bytes=self.max_message_bytes)
        try:
            reply = self._calls[method](data, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
            text = f"policy server at {self.server_address} failed {method}: {code.name}: {details}"
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise AuthenticationError(f"{text} (check the token)", code) from None
            raise InferenceServerError(text, code) from None
        return decode(reply, expected_type=reply_type, max_bytes=self.max_message_bytes)

    def _check_features(self, info: dict) -> None:
        problems = []
        for key, spec in info["input_features"].items():
            feat = PolicyFeature.from_dict(spec)
            if key not in self.obs_features:
                problems.append(f"'{key}' missing (robot gives {sorted(self.obs_features)})")
                continue
            have = tuple(self.obs_features[key]["shape"])
            want = (feat.shape[1], feat.shape[2], feat.shape[0]) if feat.type is FeatureType.VISUAL else feat.shape
            if have != tuple(want):
                problems.append(f"'{key}' has shape {have} on the robot, the policy expects {tuple(want)}")
        if int(info["action_dim"]) != len(self.action_names):
            problems.append(f"policy outputs {info['action_dim']} actions, the robot takes {len(self.action_names)}: "
                            f"{self.action_names}")
        if problems:
            raise ValueError(f"robot '{getattr(self.robot, 'name', type(self.robot).__name__)}' does not match the "
                             f"policy {info.get('policy')}: " + "; ".join(problems))
        if self.rtc.enabled and not info.get("supports_rtc"):
            raise ValueError(f"rtc.enabled=true but the served policy {info.get('policy')} does not support real-time "
                             "chunking (it needs a flow-matching policy: SmolVLA, pi0, pi0.5); set rtc.enabled=false")

    # ------------------------------------------------------------------ receiver thread
    def _receiver(self) -> None:
        while not self._stop.is_set():
            try:
                timestep, observation, queue_size, rtc = self._outbox.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                start = time.perf_counter()
                message = {"type": "observation", "timestep": timestep, "timestamp": time.time(),
                           "observation": observation, "task": self.task}
                if rtc is not None:
                    message["rtc"] = rtc
                reply = self._call("Predict", message, "actions")
                rtt = time.perf_counter() - start
                actions, timesteps = reply["actions"], reply["timesteps"]
                if actions.dim() != 2 or actions.shape[1] != len(self.action_names):
                    raise InferenceServerError(f"server sent actions of shape {tuple(actions.shape)}, expected "
                                               f"(n, {len(self.action_names)})")
                if not bool(torch.isfinite(actions).all()):
                    raise InferenceServerError(f"server sent {int((~torch.isfinite(actions)).sum())} non-finite "
                                               f"action value(s) for timestep {timestep}; none is executed")
                counts = self.queue.merge_chunk(timesteps, actions.float())
                self.chunk_size = int(actions.shape[0])
                self.round_trips.append(RoundTrip(timestep, queue_size, rtt, float(reply["inference_s"]),
                                                  int(actions.shape[0]), **counts,
                                                  inference_delay=None if rtc is None else rtc["inference_delay"]))
            except BaseException as e:  # surfaced by the control loop at its next tick
                self._error = e
                self._stop.set()
            finally:
                self._idle.set()

    # ------------------------------------------------------------------ control loop
    def _should_request(self) -> bool:
        if not self._idle.is_set():
            return False
        n = len(self.queue)
        if n == 0 or self.chunk_size is None:
            return True
        return n < self.chunk_size_threshold * self.chunk_size

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def step(self) -> dict[str, float] | None:
        """One control tick (execute the next action, then maybe send an observation).

        Returns:
            the action the robot reports it executed, or ``None`` on a starved tick.
        Raises:
            whatever the receiver thread hit since the last tick (e.g. :class:`InferenceServerError`);
            RuntimeError when not connected.
        """
        self._raise_pending_error()
        if self._thread is None or self._stop.is_set():
            raise RuntimeError("RobotClient is not connected (or its receiver stopped after an error raised "
                               "earlier); call connect() first")
        sent = None
        item = self.queue.pop()
        if item is None:
            self.n_starved += 1
        else:
            sent = self.robot.send_action(vector_to_action(item[1].numpy(), self.action_names))
            self.n_executed += 1
        if self._should_request():
            observation = robot_to_wire(self.robot.get_observation(), self.obs_features)
            rtc = self._rtc_request() if self.rtc.enabled else None
            self._idle.clear()
            self._outbox.put((self.queue.next_timestep, observation, len(self.queue), rtc))
        return sent

    def _rtc_request(self) -> dict[str, Any]:
        """The ``rtc`` field: the queued actions of timesteps ``next, next+1, ...`` (the plan the new chunk, stamped
        from ``next``, continues) and the inference delay (no request is in flight, so the queue is not changing)."""
        start = self.queue.next_timestep
        timesteps, actions = self.queue.snapshot()
        n = 0
        while n < len(timesteps) and timesteps[n] == start + n:
            n += 1
        remainder = actions[:n] if actions is not None and n else None
        delay = self.rtc.delay(list(self.round_trips), self.fps)
        if n and delay >= min(self.rtc.horizon(n), n) and not self._rtc_warned:
            self._rtc_warned = True
            log.warning("RTC: the inference delay (%d steps) reaches the execution horizon (%d) or the queued "
                        "remainder (%d): only the frozen prefix continues the plan, nothing is guided; raise "
                        "rtc.execution_horizon or chunk_size_threshold", delay, self.rtc.horizon(n), n)
        return self.rtc.request(remainder, delay)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is in flight (or ``timeout`` s); True if idle. Raises a receiver error."""
        ok = self._idle.wait(timeout)
        self._raise_pending_error()
        return ok

    def run(self, duration_s: float | None = None, max_steps: int | None = None) -> dict[str, Any]:
        """Tick at ``fps`` until ``duration_s`` seconds or ``max_steps`` ticks (or Ctrl-C); return :meth:`summary`.

        Raises:
            ValueError: neither limit given. Errors from :meth:`step`.
        """
        if duration_s is None and max_steps is None:
            raise ValueError("give duration_s or max_steps")
        period = 1.0 / self.fps
        start = next_tick = time.perf_counter()
        steps = 0
        try:
            while (max_steps is None or steps < max_steps) and (duration_s is None or time.perf_counter() - start < duration_s):
                self.step()
                steps += 1
                next_tick += period
                time.sleep(max(0.0, next_tick - time.perf_counter()))
        except KeyboardInterrupt:
            log.info("stopped by Ctrl-C after %d ticks", steps)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Counts and latency statistics: ticks executed/starved, chunks received, round trip and server
        inference time in ms (n, mean, p50, p95, max)."""
        trips = list(self.round_trips)
        return {
            "executed": self.n_executed,
            "starved": self.n_starved,
            "chunks": len(trips),
            "round_trip": latency_summary([t.round_trip_s for t in trips]),
            "inference": latency_summary([t.inference_s for t in trips]),
        }


def run_from_config(cfg: Any, robot: Any | None = None) -> dict[str, Any]:
    """Run a client from a composed ``conf/robot_client.yaml`` for ``cfg.duration_s`` seconds and return
    :meth:`RobotClient.summary`. The robot is ``robot`` if given, else ``instantiate(cfg.robot)``; it is
    connected for the run and disconnected afterwards.

    Raises:
        ValueError: no robot given and ``cfg.robot`` is null (the message says what to pass).
    """
    from hydra.utils import instantiate

    if robot is None:
        if cfg.get("robot") is None:
            raise ValueError("no robot selected: pass robot=<option of conf/robot/> (e.g. robot=so101_follower "
                             "robot.port=/dev/ttyACM0)")
        robot = instantiate(cfg.robot)
    with robot:
        client = RobotClient(robot, cfg.server_address, token=cfg.token, fps=cfg.fps,
                             chunk_size_threshold=cfg.chunk_size_threshold, aggregate_fn_name=cfg.aggregate_fn_name,
                             task=cfg.task or None, timeout_s=cfg.timeout_s, rtc=cfg.get("rtc"))
        with client:
            return client.run(duration_s=cfg.duration_s)


def main() -> None:
    """Hydra entry point (``conf/robot_client.yaml``)."""
    import hydra
    from omegaconf import DictConfig

    from robolearn.utils.schema import CONF_DIR, register_schemas

    register_schemas()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="robot_client")
    def _run(cfg: DictConfig) -> None:
        print(run_from_config(cfg), flush=True)

    _run()


if __name__ == "__main__":
    main()

