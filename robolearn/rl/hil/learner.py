"""The learner side of HIL-SERL's actor–learner split (Luo et al. 2024): a gRPC server that receives transitions
from remote actors and serves the newest policy weights, and the DataModule that trains on them.

``python train.py experiment=hil_serl_planar_reach role=learner`` is an ordinary ``train.py`` run whose DataModule
is :class:`RemoteActorDataModule`: instead of stepping an env itself it fills its online replay buffer with the
transitions actors push, and publishes the policy's weights every ``weights_push_every`` gradient updates.
Transitions flagged ``complementary_info.is_intervention`` go to both the online and the offline (demonstration)
buffer, as in the paper. Wire protocol: :mod:`robolearn.rl.hil.protocol`.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from typing import Any, Callable, Mapping

import torch

from robolearn.features import ACTION, PolicyFeature
from robolearn.inference.codec import DEFAULT_MAX_BYTES
from robolearn.inference.rpc import RpcService
from robolearn.rl.actor import EpisodeStats
from robolearn.rl.datamodule import OnlineRLDataModule
from robolearn.rl.hil.protocol import IS_INTERVENTION, SERVICE, validate_episodes, validate_transitions
from robolearn.rl.replay import MixedReplayBuffer, ReplayBuffer

log = logging.getLogger("robolearn.rl.hil.learner")


class TransitionServer(RpcService):
    """gRPC server of the learner: queues validated transition batches and serves published weights.

    Args:
        features: the policy's features (transitions are validated against them).
        policy_name: reported in the handshake.
        host, port: address to bind (``port=0`` picks a free one; see :attr:`port` after :meth:`start`).
        token: shared secret actors send as ``authorization: Bearer <token>``; required off loopback.
        max_message_bytes: largest message accepted or sent (also the gRPC limits).
        max_transitions_per_message: largest ``N`` of one ``PushTransitions``.
        max_queued_messages: received batches waiting for the training loop; when full, the oldest is dropped
            (and counted in :attr:`dropped`), so a fast actor cannot exhaust the learner's memory.

    Raises:
        ValueError: a non-loopback ``host`` without a token, or an empty token.
    """

    def __init__(self, features: Mapping[str, PolicyFeature], policy_name: str = "", host: str = "127.0.0.1",
                 port: int = 0, token: str | None = None, max_message_bytes: int = DEFAULT_MAX_BYTES,
                 max_transitions_per_message: int = 10_000, max_queued_messages: int = 1000) -> None:
        super().__init__(host, port, token, max_message_bytes, max_workers=4,
                         token_hint="set dataset.token (e.g. ${oc.env:ROBOLEARN_HIL_TOKEN})")
        self.features = dict(features)
        self.policy_name = policy_name
        self.max_transitions_per_message = int(max_transitions_per_message)
        self.inbox: queue.Queue = queue.Queue(maxsize=int(max_queued_messages))
        self.arrived = threading.Event()
        self._weights: dict[str, torch.Tensor] | None = None
        self.weights_version = 0
        self._lock = threading.Lock()
        self.received = 0  # transitions accepted
        self.dropped = 0  # batches dropped because the inbox was full
        self.actors: dict[str, float] = {}  # actor_id -> time of its last message

    service = SERVICE
    label = "learner's transition server"

    def methods(self) -> dict[str, tuple[str, Callable[[dict], dict]]]:
        """``Ready``, ``PushTransitions`` and ``GetWeights`` (:mod:`robolearn.rl.hil.protocol`)."""
        return {"Ready": ("actor_ready", self._ready), "PushTransitions": ("transitions", self._push),
                "GetWeights": ("get_weights", self._get_weights)}

    def stop(self, grace: float | None = 0.5) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds). Safe to call twice."""
        super().stop(grace)

    # ------------------------------------------------------------------ learner API
    def publish(self, state_dict: Mapping[str, torch.Tensor]) -> int:
        """Make ``state_dict`` (copied to CPU now) the weights actors receive; returns the new version (1, 2, ...)."""
        weights = {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}
        with self._lock:
            self._weights = weights
            self.weights_version += 1
            return self.weights_version

    def drain(self) -> list[tuple[dict[str, torch.Tensor], list[dict[str, float]]]]:
        """All ``(transitions, episodes)`` received since the last call, oldest first."""
        out = []
        while True:
            try:
                out.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        self.arrived.clear()
        if not self.inbox.empty():
            self.arrived.set()
        return out

    def _actor_id(self, msg: dict) -> str:
        actor_id = msg.get("actor_id")
        if not isinstance(actor_id, str) or not actor_id:
            raise ValueError(f"'actor_id' must be a non-empty string, got {actor_id!r}")
        self.actors[actor_id] = time.monotonic()
        return actor_id

    def _ready(self, msg: dict) -> dict:
        self._actor_id(msg)
        return {"type": "learner_ready", "features": {k: f.to_dict() for k, f in self.features.items()},
                "policy": self.policy_name, "weights_version": self.weights_version}

    def _push(self, msg: dict) -> dict:
        self._actor_id(msg)
        batch = validate_transitions(msg.get("transitions"), self.features, self.max_transitions_per_message)
        episodes = validate_episodes(msg.get("episodes", []))
        try:
            self.inbox.put_nowait((batch, episodes))
        except queue.Full:
            self.inbox.get_nowait()
            self.dropped += 1
            self.inbox.put_nowait((batch, episodes))
        n = int(batch[ACTION].shape[0])
        self.received += n
        self.arrived.set()
        return {"type": "transitions_reply", "accepted": n, "weights_version": self.weights_version}

    def _get_weights(self, msg: dict) -> dict:
        have = msg.get("have_version", 0)
        if not isinstance(have, int) or isinstance(have, bool):
            raise ValueError(f"'have_version' must be an integer, got {have!r}")
        with self._lock:
            version, weights = self.weights_version, self._weights
        return {"type": "weights", "version": version, "state_dict": None if have == version else weights}


def _fit_to_buffer(buffer: ReplayBuffer, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``batch`` restricted to ``buffer``'s ``complementary_info.*`` keys (missing ones zero-filled), so that
    intervention transitions can join an offline buffer loaded from a dataset without those columns."""
    if not len(buffer):
        return dict(batch)
    n = int(batch[ACTION].shape[0])
    out = {k: v for k, v in batch.items() if not k.startswith("complementary_info.") or k in buffer.info_keys}
    for key in buffer.info_keys:
        if key not in out:
            shape = buffer._storage[key].shape[1:]
            out[key] = torch.zeros((n, *shape))
    return out


class RemoteActorDataModule(OnlineRLDataModule):
    """:class:`~robolearn.rl.datamodule.OnlineRLDataModule` fed by remote actors over gRPC (HIL-SERL's learner).

    Every argument of :class:`~robolearn.rl.datamodule.OnlineRLDataModule` is accepted (the env is built here only
    for its features and, without an offline dataset, its observation statistics; it is never stepped), plus:

    Args:
        host, port: where the learner listens for actors (``port=0``: a free port, see ``server.port``).
        token: shared secret; required unless ``host`` is a loopback address.
        weights_push_every: publish the policy's weights every this many gradient updates (batches); the first
            version is published when training starts.
        wait_log_s: while fewer than ``online_step_before_learning`` transitions have arrived the loader waits,
            logging every this many seconds.
        wait_timeout_s: give up (``TimeoutError``) when no actor has sent enough transitions after this many
            seconds; None waits forever.
        max_message_mb: largest gRPC message, MiB.
        max_transitions_per_message, max_queued_messages: see :class:`TransitionServer`.

    Training never waits for actors once the warm-up is reached: if an actor dies the learner keeps sampling what
    its buffers hold, and a restarted actor simply connects again. ``utd_ratio`` is not enforced across processes
    (actors run at their own pace); the effective ratio is logged as ``env/updates_per_transition``.

    Logged per episode reported by an actor, in one row: ``env/episode_return``, ``env/success``,
    ``env/episode_length``, ``env/steps`` (the actor's env steps so far), ``env/intervention_rate`` (the fraction of
    the episode's steps a human drove), ``env/rejected_messages``, ``env/updates_per_transition``, and
    ``env/sim_success`` when the actor reports the simulator's own success (e.g. beside a reward classifier's).
    """

    def __init__(self, *args: Any, host: str = "127.0.0.1", port: int = 50051, token: str | None = None,
                 weights_push_every: int = 100, wait_log_s: float = 10.0, wait_timeout_s: float | None = None,
                 max_message_mb: float = 64.0, max_transitions_per_message: int = 10_000,
                 max_queued_messages: int = 1000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if int(weights_push_every) < 1:
            raise ValueError(f"weights_push_every must be >= 1, got {weights_push_every}")
        self.host, self.port, self.token = host, int(port), token
        self.weights_push_every = int(weights_push_every)
        self.wait_log_s = float(wait_log_s)
        self.wait_timeout_s = wait_timeout_s
        self.max_message_bytes = int(max_message_mb * 1024 * 1024)
        self.max_transitions_per_message = int(max_transitions_per_message)
        self.max_queued_messages = int(max_queued_messages)
        self.server: TransitionServer | None = None
        self.received_transitions = 0
        self.received_interventions = 0

    # ------------------------------------------------------------------ connection
    def connect(self, policy: Any) -> None:
        """Build the buffers (an empty offline buffer when no dataset is given, for interventions), start the
        transition server and publish the first weights."""
        super().connect(policy)
        if self.offline_buffer is None:
            has_images = bool(getattr(policy, "image_keys", []))
            self.offline_buffer = ReplayBuffer(self.offline_buffer_capacity, device=self.storage_device,
                                               n_step=self.n_step, discount=float(getattr(policy, "discount", 0.99)),
                                               drq_pad=self.drq_pad if has_images else 0, seed=self.seed + 1)
        if not isinstance(self.sampler, MixedReplayBuffer):  # also an offline buffer restored from a checkpoint
            self.sampler = MixedReplayBuffer(self.online_buffer, self.offline_buffer, self.online_ratio, seed=self.seed)
        if self.server is None:
            self.server = TransitionServer(self.features, type(policy).__name__, self.host, self.port, self.token,
                                           self.max_message_bytes, self.max_transitions_per_message,
                                           self.max_queued_messages)
            self.server.start()
        self.publish_weights()

    def publish_weights(self) -> int:
        """Publish the connected policy's ``state_dict`` to the actors; returns the version."""
        return self.server.publish(self.policy.state_dict())

    def teardown(self, stage: str) -> None:
        self.close()

    def close(self) -> None:
        """Stop the transition server. Safe to call twice."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    # ------------------------------------------------------------------ data
    def ingest(self) -> int:
        """Move every received batch into the buffers (interventions into both); returns transitions added.
        A batch the buffers refuse (keys or shapes differ from earlier ones) is logged and skipped."""
        added = 0
        for batch, episodes in self.server.drain():
            try:
                self.online_buffer.extend(batch)
                mask = batch[IS_INTERVENTION] > 0.5
                if bool(mask.any()):
                    self.offline_buffer.extend(_fit_to_buffer(self.offline_buffer,
                                                              {k: v[mask] for k, v in batch.items()}))
                    self.received_interventions += int(mask.sum())
            except (KeyError, ValueError) as e:
                log.warning("learner skipped a batch of %d transitions: %s", int(batch[ACTION].shape[0]), e)
                continue
            n = int(batch[ACTION].shape[0])
            added += n
            self.received_transitions += n
            for ep in episodes:
                sim_success = bool(ep["sim_success"]) if "sim_success" in ep else None
                self._log_episode(EpisodeStats(ep["episode_return"], bool(ep["success"]), int(ep["length"]),
                                               int(ep["env_step"]), sim_success),
                                  {"env/intervention_rate": ep["interventions"] / max(ep["length"], 1)})
        return added

    def next_batch(self) -> dict[str, torch.Tensor]:
        """Ingest what actors sent; wait for ``online_step_before_learning`` transitions before the first batch;
        publish weights every ``weights_push_every`` batches; sample ``batch_size`` transitions.

        Raises:
            RuntimeError: before :meth:`connect`. TimeoutError: ``wait_timeout_s`` passed during the warm-up.
        """
        if self.server is None:
            raise RuntimeError("RemoteActorDataModule.next_batch before connect(policy) (train_dataloader does it)")
        self.ingest()
        start = last_log = time.monotonic()
        while len(self.online_buffer) < max(1, self.online_step_before_learning):
            self.server.arrived.wait(0.1)
            self.ingest()
            now = time.monotonic()
            if now - last_log >= self.wait_log_s:
                log.info("learner waiting for actors on %s: %d/%d warm-up transitions", self.server.address,
                         len(self.online_buffer), self.online_step_before_learning)
                last_log = now
            if self.wait_timeout_s is not None and now - start > self.wait_timeout_s:
                raise TimeoutError(f"no actor sent {self.online_step_before_learning} transitions to the learner at "
                                   f"{self.server.address} within {self.wait_timeout_s} s (got {len(self.online_buffer)});"
                                   " start one with `python train.py ... role=actor`")
        self.num_batches += 1
        if self.num_batches % self.weights_push_every == 0:
            self.publish_weights()
        if getattr(self, "horizon", None) is not None:  # windowed policies (TD-MPC)
            return self.sampler.sample_sequences(self.batch_size, self.horizon)
        return self.sampler.sample(self.batch_size)

    def _log_episode(self, ep: EpisodeStats, extra: dict[str, float] | None = None) -> None:
        """The base class's episode row plus ``env/rejected_messages`` and ``env/updates_per_transition`` (one row,
        so that a CSV log pairs every episode's success with its ``env/intervention_rate``)."""
        server = {"env/rejected_messages": float(self.server.rejected) if self.server is not None else 0.0,
                  "env/updates_per_transition": self.num_batches / max(1, self.received_transitions)}
        super()._log_episode(ep, {**server, **(extra or {})})

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "received_transitions": self.received_transitions}


def _merged_signature() -> inspect.Signature:
    """The base class's parameters followed by this class's own (so config schemas list every argument)."""
    base = [p for p in inspect.signature(OnlineRLDataModule.__init__).parameters.values()]
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in
           inspect.signature(RemoteActorDataModule.__init__).parameters.values()
           if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return inspect.Signature([*base, *own])


RemoteActorDataModule.__init__.__signature__ = _merged_signature()
