"""The actor side of HIL-SERL's actor–learner split (Luo et al. 2024): step the env (or robot) with the newest
weights from the learner, let a human take over, stream the transitions to the learner, optionally record the
episodes to a LeRobotDataset.

``python train.py experiment=hil_serl_planar_reach role=actor`` runs :func:`run_actor` on the composed config:
the env is built from ``cfg.dataset`` (``env_id``, ``env_kwargs``, ``max_episode_steps``, ``features_map``) and
wrapped with ``cfg.actor.wrappers``, the policy from ``cfg.policy`` with the features the learner announces (its
weights, normalization statistics included, come from the learner), the intervention source from
``cfg.actor.intervention``. Wire protocol: :mod:`robolearn.rl.hil.protocol`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any, Callable, Mapping

import grpc
import numpy as np
import torch

from robolearn.features import FeatureType, PolicyFeature
from robolearn.inference.codec import DEFAULT_MAX_BYTES, decode, encode
from robolearn.inference.rpc import AUTH_METADATA_KEY
from robolearn.rl.actor import EnvActor
from robolearn.rl.hil.interventions import InterventionSource
from robolearn.rl.hil.protocol import IS_INTERVENTION, METHODS, method_path, stack_transitions

log = logging.getLogger("robolearn.rl.hil.actor")


class LearnerUnavailable(ConnectionError):
    """The learner could not be reached (or failed) within the call's deadline."""


class LearnerRejected(ValueError):
    """The learner refused a message (``INVALID_ARGUMENT`` / ``UNAUTHENTICATED``); the text is the learner's."""


class LearnerClient:
    """gRPC client of a :class:`~robolearn.rl.hil.learner.TransitionServer`.

    Args:
        address: ``host:port`` of the learner.
        token: shared secret (None when the learner has no authentication).
        actor_id: this actor's name in the learner's logs (default: ``<hostname>-<pid>``).
        timeout_s: deadline of each call, s.
        max_message_bytes: largest message sent or accepted.
    """

    def __init__(self, address: str, token: str | None = None, actor_id: str | None = None, timeout_s: float = 10.0,
                 max_message_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.address = address
        self.actor_id = actor_id or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.timeout_s = float(timeout_s)
        self.max_message_bytes = int(max_message_bytes)
        self._metadata = ((AUTH_METADATA_KEY, f"Bearer {token}"),) if token else ()
        limits = [("grpc.max_receive_message_length", self.max_message_bytes),
                  ("grpc.max_send_message_length", self.max_message_bytes)]
        self._channel = grpc.insecure_channel(address, options=limits)
        self._calls = {m: self._channel.unary_unary(method_path(m)) for m in METHODS}

    def close(self) -> None:
        """Close the channel. Safe to call twice."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def call(self, method: str, message: dict, reply_type: str, wait_for_ready: bool = False) -> dict:
        """Send ``message`` to ``method`` and decode the reply.

        Raises:
            LearnerRejected: the learner refused the message (its reason in the text).
            LearnerUnavailable: unreachable, deadline passed, or an internal learner error.
        """
        if self._channel is None:
            raise RuntimeError("LearnerClient is closed")
        data = encode(message, max_bytes=self.max_message_bytes)
        try:
            reply = self._calls[method](data, timeout=self.timeout_s, metadata=self._metadata,
                                        wait_for_ready=wait_for_ready)
        except grpc.RpcError as e:
            text = f"learner at {self.address} failed {method}: {e.code().name}: {e.details()}"
            if e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED):
                raise LearnerRejected(text) from None
            raise LearnerUnavailable(text) from None
        return decode(reply, expected_type=reply_type, max_bytes=self.max_message_bytes)

    def ready(self, wait_for_ready: bool = True) -> dict:
        """The handshake: ``{"features", "policy", "weights_version"}`` (waits up to ``timeout_s`` for the learner)."""
        return self.call("Ready", {"type": "actor_ready", "actor_id": self.actor_id}, "learner_ready", wait_for_ready)

    def push(self, transitions: Mapping[str, torch.Tensor], episodes: list[dict] | None = None) -> dict:
        """Send a batch ``{key: (N, ...)}``; returns ``{"accepted", "weights_version"}``."""
        return self.call("PushTransitions", {"type": "transitions", "actor_id": self.actor_id,
                                             "transitions": dict(transitions), "episodes": episodes or []},
                         "transitions_reply")

    def get_weights(self, have_version: int = 0) -> tuple[int, dict[str, torch.Tensor] | None]:
        """``(version, state_dict)``; ``state_dict`` is None when ``have_version`` is already the newest."""
        reply = self.call("GetWeights", {"type": "get_weights", "have_version": int(have_version)}, "weights")
        return int(reply["version"]), reply["state_dict"]


def writer_features(features: Mapping[str, PolicyFeature], use_videos: bool = True) -> dict[str, dict]:
    """LeRobotDataset feature specs for recording actor episodes: the observations (cameras ``[H, W, C]``
    video/image), ``action``, ``next.reward``, ``next.done`` and ``complementary_info.is_intervention``."""
    out: dict[str, dict] = {}
    for key, f in features.items():
        if f.type is FeatureType.VISUAL:
            c, h, w = f.shape
            out[key] = {"dtype": "video" if use_videos else "image", "shape": [h, w, c],
                        "names": ["height", "width", "channels"]}
        elif f.type is not FeatureType.REWARD:
            out[key] = {"dtype": "float32", "shape": list(f.shape), "names": None}
    out["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    out["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    out[IS_INTERVENTION] = {"dtype": "float32", "shape": [1], "names": None}
    return out


class HILActor:
    """Steps an env with the learner's newest policy, with optional human interventions, and streams transitions.

    Args:
        env: a gymnasium env (Box actions), already wrapped.
        features_map: ``{native dotted observation key: dataset key}``.
        client: the :class:`LearnerClient`.
        policy_factory: ``policy_factory(features=..., stats=None) -> PolicyModule`` (e.g. a Hydra partial of
            ``cfg.policy``); called once with the learner's features, then loaded with the learner's weights.
        intervention: a human (or scripted) :class:`~robolearn.rl.hil.interventions.InterventionSource`, or None.
        push_every: send transitions in batches of this many (and at every episode end).
        pull_every: ask for new weights every this many env steps (and at every episode end).
        success_key: ``info`` key of the success flag.
        seed: env / action-sampler seed.
        device: where the policy runs.
        writer: a :class:`~robolearn.datasets.writer.LeRobotDatasetWriter` created with :func:`writer_features`
            (each finished episode is saved to it), or None.
        task: the dataset ``task`` string of recorded frames.
        max_pending: transitions kept while the learner is unreachable (oldest dropped beyond it).
        intervention_penalty: RLIF's reward for the policy's action at each takeover (> 0; 0: off), sent as an
            extra transition (:class:`~robolearn.rl.actor.EnvActor`); neither recorded nor counted as an
            intervention.

    Until the first weights arrive the actor samples the action space uniformly.
    """

    def __init__(self, env: Any, features_map: Mapping[str, str], client: LearnerClient,
                 policy_factory: Callable[..., Any], intervention: InterventionSource | None = None,
                 push_every: int = 32, pull_every: int = 100, success_key: str = "is_success", seed: int = 0,
                 device: str = "cpu", writer: Any = None, task: str = "hil-serl", max_pending: int = 100_000,
                 intervention_penalty: float = 0.0) -> None:
        if push_every < 1 or pull_every < 1:
            raise ValueError(f"push_every ({push_every}) and pull_every ({pull_every}) must be >= 1")
        self.env_actor = EnvActor(env, features_map, seed=seed, success_key=success_key,
                                  intervention_penalty=float(intervention_penalty))
        self.client = client
        self.policy_factory = policy_factory
        self.intervention = intervention
        self.push_every, self.pull_every = int(push_every), int(pull_every)
        self.device = torch.device(device)
        self.writer, self.task = writer, task
        self.max_pending = int(max_pending)
        self.policy = None
        self.features: dict[str, PolicyFeature] | None = None
        self.weights_version = 0
        self.pending: list[dict[str, torch.Tensor]] = []
        self.pending_episodes: list[dict] = []
        self.sent = 0
        self.interventions = 0
        self._episode_interventions = 0
        self._new_episode = True
        if intervention is not None:
            intervention.bind(env)

    # ------------------------------------------------------------------ learner
    def connect(self) -> dict:
        """Handshake with the learner, build the policy for its features and pull its weights.

        Raises:
            LearnerUnavailable: the learner did not answer within the client's ``timeout_s``.
            ValueError: the env's observation keys or shapes differ from the learner's features (named).
        """
        info = self.client.ready()
        self.features = {k: PolicyFeature.from_dict(v) for k, v in info["features"].items()}
        obs = self.env_actor.current_observation
        problems = [f"'{k}' {tuple(obs[k].shape) if k in obs else 'missing'} vs learner {f.shape}"
                    for k, f in self.features.items() if f.type is not FeatureType.ACTION
                    and f.type is not FeatureType.REWARD and (k not in obs or tuple(obs[k].shape) != tuple(f.shape))]
        if problems:
            raise ValueError("the actor's env observations differ from the learner's features: " + "; ".join(problems))
        self.policy = self.policy_factory(features=self.features, stats=None).to(self.device).eval()
        self.pull_weights()
        return info

    def pull_weights(self) -> bool:
        """Load newer weights from the learner if there are any; True when they changed."""
        version, state = self.client.get_weights(self.weights_version)
        if state is None:
            return False
        self.policy.load_state_dict(state)
        self.weights_version = version
        return True

    def flush(self) -> int:
        """Send the pending transitions (and finished episodes); returns how many were sent (0 when unreachable:
        they stay pending).

        Raises:
            LearnerRejected: the learner refused them (a bug or a features mismatch: not retried).
        """
        if not self.pending:
            return 0
        batch = stack_transitions(self.pending)
        try:
            self.client.push(batch, self.pending_episodes)
        except LearnerUnavailable as e:
            log.warning("%s; keeping %d transitions to resend", e, len(self.pending))
            if len(self.pending) > self.max_pending:
                del self.pending[: len(self.pending) - self.max_pending]
            return 0
        n = len(self.pending)
        self.sent += n
        self.pending, self.pending_episodes = [], []
        return n

    # ------------------------------------------------------------------ env loop
    def _action_fn(self, flag: list[bool]) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        def act(obs: dict[str, torch.Tensor]) -> torch.Tensor:
            human = self.intervention.intervene(obs) if self.intervention is not None else None
            if human is not None:
                flag[0] = True
                return torch.as_tensor(np.asarray(human, dtype=np.float32)).reshape(1, -1)
            if self.policy is None or self.weights_version == 0:
                return torch.from_numpy(self.env_actor.random_action())[None]
            sample = getattr(self.policy, "sample_action", None) or self.policy.select_action
            with torch.no_grad():
                return sample({k: v.to(self.device) for k, v in obs.items()})

        return act

    def step(self) -> dict[str, torch.Tensor]:
        """One env step: policy or human action, transition queued for the learner (and the recorder)."""
        if self._new_episode:
            self.env_actor.current_observation  # resets the env for a new episode
            if self.intervention is not None:
                self.intervention.reset()
            self._new_episode = False
        flag = [False]
        transition, finished = self.env_actor.step(self._action_fn(flag))
        # the actor's own source (flag) or the env's teleoperator (RobotEnv's info["is_intervention"], EnvActor)
        human = flag[0] or bool(transition[IS_INTERVENTION] > 0.5)
        transition[IS_INTERVENTION] = torch.tensor(1.0 if human else 0.0)
        self.interventions += int(human)
        self._episode_interventions += int(human)
        if self.env_actor.rejected is not None:
            self.pending.append(self.env_actor.rejected)
        self.pending.append(transition)
        if self.writer is not None:
            self._record(transition)
        if finished is not None:
            self.pending_episodes.append({"episode_return": finished.episode_return, "success": finished.success,
                                          "length": finished.length, "env_step": finished.env_step,
                                          "interventions": self._episode_interventions,
                                          "sim_success": finished.sim_success})
            self._episode_interventions = 0
            self._new_episode = True
            reset = getattr(self.policy, "reset", None)
            if reset is not None:  # action queues / planner warm starts must not leak into the next episode
                reset()
            if self.writer is not None:
                self.writer.save_episode()
        if finished is not None or len(self.pending) >= self.push_every:
            self.flush()
        if finished is not None or self.env_actor.env_steps % self.pull_every == 0:
            try:
                self.pull_weights()
            except LearnerUnavailable as e:
                log.warning("%s; acting with weights version %d", e, self.weights_version)
        return transition

    def _record(self, t: Mapping[str, torch.Tensor]) -> None:
        frame = {k: t[k].numpy() for k in self.writer.features if k in t}
        frame["next.reward"] = t["next.reward"].reshape(1).numpy().astype(np.float32)
        frame["next.done"] = t["next.done"].reshape(1).numpy().astype(bool)
        frame[IS_INTERVENTION] = t[IS_INTERVENTION].reshape(1).numpy().astype(np.float32)
        frame["task"] = self.task
        self.writer.add_frame(frame)

    def run(self, max_env_steps: int | None = None, learner_timeout_s: float = 300.0) -> int:
        """Step until ``max_env_steps`` (None: forever, until Ctrl-C or the learner is gone for
        ``learner_timeout_s`` seconds); returns the env steps taken.

        Raises:
            LearnerUnavailable: no successful exchange with the learner for ``learner_timeout_s`` seconds.
        """
        if self.policy is None:
            self.connect()
        last_ok = time.monotonic()
        steps = 0
        try:
            while max_env_steps is None or steps < max_env_steps:
                sent_before = self.sent
                self.step()
                steps += 1
                if self.sent > sent_before or not self.pending:
                    last_ok = time.monotonic()
                elif time.monotonic() - last_ok > learner_timeout_s:
                    raise LearnerUnavailable(f"no contact with the learner at {self.client.address} for "
                                             f"{learner_timeout_s} s; stopping the actor")
        except KeyboardInterrupt:
            log.info("actor stopped by Ctrl-C after %d env steps", steps)
        finally:
            self.flush_quietly()
        return steps

    def flush_quietly(self) -> None:
        """Best-effort final send (errors logged)."""
        try:
            self.flush()
        except (LearnerRejected, LearnerUnavailable) as e:
            log.warning("final flush failed: %s", e)


def run_actor(cfg: Any) -> int:
    """``role=actor``: build env, wrappers, intervention source, client (and recorder) from the composed config
    and run :meth:`HILActor.run`; returns the env steps taken.

    Config used: ``cfg.dataset.{env_id, env_kwargs, max_episode_steps, features_map, success_key, host, port,
    token, max_message_mb}`` and ``cfg.actor.{learner_address (default host:port), wrappers (list of partial
    wrapper configs), intervention, push_every, pull_every, max_env_steps, learner_timeout_s, device, record,
    num_threads, intervention_penalty}``; ``cfg.actor.record`` is null or ``{repo_id, root, fps, task, use_videos}``; ``num_threads``
    (torch intra-op threads of this process, null: torch's default) keeps the actor's small network from competing
    with the learner for the cores (see :func:`robolearn.rl.hil.roles.split_threads`).

    Raises:
        ValueError: the config lacks ``dataset.env_id`` (not an online-RL experiment).
    """
    from hydra.utils import instantiate

    ds, ac = cfg.dataset, cfg.get("actor") or {}
    if ac.get("num_threads"):
        torch.set_num_threads(int(ac.num_threads))
    if ds.get("env_id") is None:
        raise ValueError("role=actor needs an online-RL dataset config with 'env_id' (e.g. experiment="
                         "hil_serl_planar_reach); the selected dataset has none")
    import gymnasium as gym

    kwargs = dict(ds.get("env_kwargs") or {})
    if ds.get("max_episode_steps") is not None:
        kwargs["max_episode_steps"] = int(ds.max_episode_steps)
    env = gym.make(str(ds.env_id), **kwargs)  # "module:Id" imports module first
    for wrapper in ac.get("wrappers") or []:
        env = instantiate(wrapper)(env)
    intervention = instantiate(ac.intervention) if ac.get("intervention") else None
    address = ac.get("learner_address") or f"{ds.get('host', '127.0.0.1')}:{ds.get('port', 50051)}"
    client = LearnerClient(address, token=ds.get("token"), timeout_s=float(ac.get("timeout_s", 30.0)),
                           max_message_bytes=int(float(ds.get("max_message_mb", 64)) * 1024 * 1024))
    writer = None
    features_map = dict(ds.features_map)
    actor = HILActor(env, features_map, client, lambda **kw: instantiate(cfg.policy, **kw), intervention,
                     push_every=int(ac.get("push_every", 32)), pull_every=int(ac.get("pull_every", 100)),
                     success_key=str(ds.get("success_key", "is_success")), seed=int(cfg.seed) + 1,
                     device=str(ac.get("device", "cpu")),
                     intervention_penalty=float(ac.get("intervention_penalty", 0.0) or 0.0))
    try:
        if intervention is not None:
            intervention.connect()
        actor.connect()
        rec = ac.get("record")
        if rec:
            from robolearn.datasets.writer import LeRobotDatasetWriter

            fps = int(rec.get("fps") or env.metadata.get("render_fps") or 10)
            writer = LeRobotDatasetWriter.create(str(rec.repo_id), fps, writer_features(actor.features,
                                                 bool(rec.get("use_videos", True))), root=rec.get("root"),
                                                 use_videos=bool(rec.get("use_videos", True)))
            actor.writer, actor.task = writer, str(rec.get("task") or "hil-serl")
        log.info("actor %s connected to the learner at %s (weights v%d)", client.actor_id, address,
                 actor.weights_version)
        max_steps = ac.get("max_env_steps")
        return actor.run(None if max_steps is None else int(max_steps), float(ac.get("learner_timeout_s", 300.0)))
    finally:
        if writer is not None:
            writer.clear_episode_buffer()  # an unfinished episode is not saved
            writer.finalize()
        if intervention is not None:
            intervention.disconnect()
        client.close()
        env.close()


__all__ = ["HILActor", "LearnerClient", "LearnerRejected", "LearnerUnavailable", "run_actor", "writer_features"]
