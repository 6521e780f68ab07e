"""``OnlineRLDataModule``: online RL as a data source for Lightning (HIL-SERL / RLPD style, in one process).

``train.py`` treats it like the imitation DataModule: it exposes ``features`` and ``stats`` before the policy
exists, and ``trainer.fit(policy, datamodule=dm)`` drives it. Its train loader is an endless stream: before each
batch it steps the env with the *current* policy (one env step per ``utd_ratio`` batches, after
``online_step_before_learning`` uniformly random warm-up steps), adds the transition to the online replay buffer, then
samples a batch (mixed with an offline buffer of demonstrations at ``online_ratio`` when a dataset is given): single
transitions, or episode windows with padding masks for a policy with TD-MPC's ``delta_indices``. The policy is found
through ``self.trainer.lightning_module`` when the loader is built (no change to ``train.py``).
"""

from __future__ import annotations

import math
import logging
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import gymnasium as gym
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from robolearn.envs.observation import env_policy_features
from robolearn.features import ACTION, REWARD, FeatureType, PolicyFeature
from robolearn.rl.actor import EnvActor, EpisodeStats, mapped_features
from robolearn.rl.offline import buffer_from_dataset
from robolearn.rl.replay import MixedReplayBuffer, ReplayBuffer

log = logging.getLogger(__name__)


class _TransitionStream(IterableDataset):
    """Endless iterable of replay batches; each ``next`` steps the env first (see :meth:`OnlineRLDataModule.next_batch`)."""

    def __init__(self, datamodule: "OnlineRLDataModule") -> None:
        super().__init__()
        self.datamodule = datamodule

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.datamodule.next_batch()


class OnlineRLDataModule(L.LightningDataModule):
    """Env + replay buffers + actor, serving SAC-style transition batches, or TD-MPC-style episode windows when the
    policy's ``delta_indices`` ask for them (see :meth:`set_delta_indices`), to ``trainer.fit``.

    Args:
        env_id: gymnasium id; ``"module:Id"`` imports ``module`` first (e.g.
            ``"robolearn.envs.planar_arm:robolearn/PlanarReach-v0"``).
        features_map: ``{native dotted observation key: dataset key}`` (``observation.state``,
            ``observation.environment_state``, ``observation.image`` / ``observation.images.<cam>``); a key mapped
            to None is dropped.
        env_kwargs: keyword arguments of ``gymnasium.make``.
        max_episode_steps: time limit passed to ``gymnasium.make`` (None: the env's own).
        success_key: ``info`` key of the success flag.
        batch_size: transitions per batch.
        online_buffer_capacity, offline_buffer_capacity: buffer sizes in transitions (lerobot 100 000 each).
        online_step_before_learning: uniformly random env steps before the first batch (lerobot 100).
        utd_ratio: gradient updates (batches) per env step; None = the policy's ``utd_ratio`` (else 1).
        online_ratio: fraction of each batch from the online buffer when an offline dataset is given (lerobot 0.5).
        offline_repo_id, offline_root, offline_episodes: a LeRobotDataset of demonstrations for the offline buffer
            (its observation keys must be the env's mapped keys); None = online only.
        n_step: n-step returns (1 = one-step TD); the discount is the policy's ``discount`` (else 0.99).
        optimize_memory: do not store next observations in the online buffer (see :class:`ReplayBuffer`).
        storage_device: device of the buffers (``"cpu"``, ``"cuda"``).
        drq_pad: DrQ random-shift padding (pixels) for cameras at sampling; 0 disables; ignored without cameras.
        stats_steps: random env steps used to estimate observation statistics when no offline dataset gives them.
        stats_reset_every: the env is reset every this many of those steps, so that the statistics see many initial
            states and goals rather than a few long episodes.
        seed: seed of the env, the action sampler and the buffers.
        save_replay_buffers: save the online and offline buffers with every Lightning checkpoint and restore them
            on resume (:mod:`robolearn.rl.buffer_checkpoint`: a safetensors sidecar folder
            ``<checkpoint dir>/replay_buffers/step_<N>/`` written atomically; disk: the filled part of the buffers,
            about ``(2 x observation bytes + action bytes + 20) x transitions`` per saved checkpoint). False: the
            checkpoint holds only the counters and a resumed run starts with empty buffers.
        replay_buffers_keep: sidecar folders kept (the newest; >= 1); older checkpoints resume without buffers.

    ``stats``: observation statistics (``mean``, ``std``, ``min``, ``max``, ``count``; cameras ``(C, 1, 1)``) from the
    offline dataset's ``meta/stats.json`` when given, else from ``stats_steps`` random env steps; ``action`` statistics
    are always the action space bounds (``min = low``, ``max = high``, uniform mean/std), so a tanh policy with MIN_MAX
    normalization covers exactly the valid actions.

    Env metrics are sent to the trainer's loggers at every episode end: ``env/episode_return``, ``env/success``
    (0/1), ``env/episode_length`` and ``env/steps`` (at ``trainer.global_step``).

    Raises:
        ValueError: bad sizes or ratios; an unbounded action space; policy windows other than TD-MPC's layout
            requested in ``set_delta_indices``; an offline dataset that lacks an env observation key.
    """

    def __init__(
        self,
        env_id: str,
        features_map: Mapping[str, str],
        env_kwargs: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = None,
        success_key: str = "is_success",
        batch_size: int = 256,
        online_buffer_capacity: int = 100_000,
        offline_buffer_capacity: int = 100_000,
        online_step_before_learning: int = 100,
        utd_ratio: int | None = None,
        online_ratio: float = 0.5,
        offline_repo_id: str | None = None,
        offline_root: str | None = None,
        offline_episodes: Sequence[int] | None = None,
        n_step: int = 1,
        optimize_memory: bool = False,
        storage_device: str = "cpu",
        drq_pad: int = 4,
        stats_steps: int = 2000,
        stats_reset_every: int = 10,
        seed: int = 0,
        save_replay_buffers: bool = True,
        replay_buffers_keep: int = 2,
    ) -> None:
        super().__init__()
        if int(replay_buffers_keep) < 1:
            raise ValueError(f"replay_buffers_keep must be >= 1, got {replay_buffers_keep}")
        if batch_size < 1 or online_step_before_learning < 0 or stats_steps < 1:
            raise ValueError(f"batch_size ({batch_size}) and stats_steps ({stats_steps}) must be >= 1 and "
                             f"online_step_before_learning ({online_step_before_learning}) >= 0")
        if utd_ratio is not None and utd_ratio < 1:
            raise ValueError(f"utd_ratio must be >= 1, got {utd_ratio}")
        self.env_id = env_id
        self.features_map = mapped_features(features_map)
        self.env_kwargs = dict(env_kwargs or {})
        self.max_episode_steps = max_episode_steps
        self.success_key = success_key
        self.batch_size = int(batch_size)
        self.online_buffer_capacity = int(online_buffer_capacity)
        self.offline_buffer_capacity = int(offline_buffer_capacity)
        self.online_step_before_learning = int(online_step_before_learning)
        self.utd_ratio_override = utd_ratio
        self.online_ratio = float(online_ratio)
        self.offline_repo_id = offline_repo_id
        self.offline_root = Path(offline_root).expanduser() if offline_root else None
        self.offline_episodes = list(offline_episodes) if offline_episodes is not None else None
        self.n_step = int(n_step)
        self.optimize_memory = bool(optimize_memory)
        self.storage_device = storage_device
        self.drq_pad = int(drq_pad)
        self.stats_steps = int(stats_steps)
        self.stats_reset_every = max(1, int(stats_reset_every))
        self.seed = int(seed)
        self.save_replay_buffers = bool(save_replay_buffers)
        self.replay_buffers_keep = int(replay_buffers_keep)
        self.env = self.make_env()
        space = self.env.action_space
        if not isinstance(space, gym.spaces.Box) or not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ValueError(f"env {env_id!r}: OnlineRLDataModule needs a bounded Box action space, got {space}")
        self._stats: dict[str, dict[str, np.ndarray]] | None = None
        self._offline_dataset = None
        self.actor: EnvActor | None = None
        self.online_buffer: ReplayBuffer | None = None
        self.offline_buffer: ReplayBuffer | None = None
        self.sampler: ReplayBuffer | MixedReplayBuffer | None = None
        self.policy = None
        self.utd_ratio = 1
        self.num_batches = 0
        self.horizon: int | None = None  # set by set_delta_indices for windowed policies (TD-MPC)
        self._restored: dict[str, Any] = {}
        self._buffers_folder: Path | None = None  # sidecar to restore the buffers from at connect()

    # ------------------------------------------------------------------ env and facts
    def make_env(self) -> gym.Env:
        """A new env instance from ``env_id``/``env_kwargs``/``max_episode_steps``."""
        kwargs = dict(self.env_kwargs)
        if self.max_episode_steps is not None:
            kwargs["max_episode_steps"] = int(self.max_episode_steps)
        return gym.make(self.env_id, **kwargs)

    @property
    def features(self) -> dict[str, PolicyFeature]:
        """The env's mapped observation features plus ``action`` ``(A,)``."""
        feats = env_policy_features(self.env.observation_space, self.features_map)
        feats[ACTION] = PolicyFeature(FeatureType.ACTION, tuple(int(s) for s in self.env.action_space.shape))
        return feats

    @property
    def fps(self) -> int | None:
        """The env's control rate (``metadata["render_fps"]``) when it declares one."""
        fps = self.env.metadata.get("render_fps")
        return int(fps) if fps else None

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Normalization statistics (see the class docstring); computed once."""
        if self._stats is None:
            self._stats = self._compute_stats()
        return self._stats

    def _compute_stats(self) -> dict[str, dict[str, np.ndarray]]:
        obs_keys = [k for k in self.features if k != ACTION]
        stats: dict[str, dict[str, np.ndarray]] = {}
        if self.offline_repo_id is not None:
            ds_stats = self.offline_dataset().meta.stats or {}
            for key in obs_keys:
                if key in ds_stats:
                    stats[key] = {n: np.asarray(v, dtype=np.float32) for n, v in ds_stats[key].items()}
        todo = [k for k in obs_keys if k not in stats]
        if todo:
            stats.update(self._rollout_stats(todo))
        space = self.env.action_space
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        stats[ACTION] = {"min": low, "max": high, "mean": (low + high) / 2,
                         "std": ((high - low) / math.sqrt(12.0)).astype(np.float32),
                         "count": np.array([self.stats_steps])}
        return stats

    def _rollout_stats(self, keys: list[str]) -> dict[str, dict[str, np.ndarray]]:
        env = self.make_env()
        actor = EnvActor(env, self.features_map, seed=self.seed + 10_000, success_key=self.success_key)
        values: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for i in range(self.stats_steps):
            if i % self.stats_reset_every == 0:
                actor.reset()
            transition, _ = actor.step(None)
            for k in keys:
                values[k].append(transition[k])
        env.close()
        out = {}
        for k in keys:
            x = torch.stack(values[k]).double()
            dims = (0, 2, 3) if self.features[k].type is FeatureType.VISUAL else (0,)
            shape = (-1, 1, 1) if self.features[k].type is FeatureType.VISUAL else x.shape[1:]
            out[k] = {
                "mean": x.mean(dims).reshape(shape).float().numpy(),
                "std": x.std(dims).reshape(shape).float().numpy(),
                "min": x.amin(dims).reshape(shape).float().numpy(),
                "max": x.amax(dims).reshape(shape).float().numpy(),
                "count": np.array([x.shape[0]]),
            }
        return out

    def offline_dataset(self):
        """The offline :class:`~robolearn.datasets.LeRobotDataset` (loaded once), or None."""
        if self.offline_repo_id is None:
            return None
        if self._offline_dataset is None:
            from robolearn.datasets.lerobot_dataset import LeRobotDataset

            self._offline_dataset = LeRobotDataset(self.offline_repo_id, root=self.offline_root,
                                                   episodes=self.offline_episodes)
        return self._offline_dataset

    def set_delta_indices(self, delta_indices: Mapping[str, Sequence[int] | None]) -> None:
        """Choose what batches hold from the policy's windows.

        No windows (every value empty or None, e.g. SAC): single transitions (:meth:`ReplayBuffer.sample`). TD-MPC's
        windows, ``action`` (and optionally ``next.reward``) ``[0, ..., H-1]`` and every windowed observation key
        ``[0, ..., H]``: episode windows of ``H`` steps with padding masks (:meth:`ReplayBuffer.sample_sequences`);
        :attr:`horizon` is then ``H``.

        Raises:
            ValueError: any other window layout (names the keys, their offsets and what is served), or a windowed
                key that is neither ``action``, ``next.reward`` nor one of the env's observation keys.
        """
        windowed = {k: [int(i) for i in v] for k, v in delta_indices.items() if v}
        if not windowed:
            self.horizon = None
            return
        obs_keys = [k for k in self.features if k != ACTION]
        unknown = sorted(k for k in windowed if k not in (*obs_keys, ACTION, REWARD))
        h = len(windowed.get(ACTION, []))
        expected = {k: list(range(h + 1)) for k in windowed if k in obs_keys}
        expected.update({k: list(range(h)) for k in (ACTION, REWARD) if k in windowed})
        if unknown or h == 0 or windowed != expected or not any(k in obs_keys for k in windowed):
            raise ValueError(
                f"OnlineRLDataModule serves single-step transitions (no windows) or TD-MPC-style episode windows "
                f"(action and next.reward [0..H-1], observations [0..H]); the policy asks for windows {windowed}"
                + (f", and {unknown} are not env observation keys ({obs_keys}), 'action' or '{REWARD}'" if unknown else ""))
        if self.n_step != 1:
            raise ValueError(f"n_step={self.n_step}: n-step returns apply to single transitions; a windowed policy "
                             "(horizon H) computes its own multi-step targets, set dataset.n_step=1")
        self.horizon = h

    # ------------------------------------------------------------------ buffers and actor
    def connect(self, policy: Any) -> None:
        """Build the buffers and the actor for ``policy`` (called by :meth:`train_dataloader`)."""
        self.policy = policy
        self.utd_ratio = int(self.utd_ratio_override or getattr(policy, "utd_ratio", 1))
        discount = float(getattr(policy, "discount", 0.99))
        obs_keys = [k for k in self.features if k != ACTION]
        has_images = any(self.features[k].type is FeatureType.VISUAL for k in obs_keys)
        # Windowed policies (TD-MPC) augment their own images; DrQ is for single transitions.
        kwargs = dict(device=self.storage_device, n_step=self.n_step, discount=discount,
                      drq_pad=self.drq_pad if has_images and self.horizon is None else 0)
        if self.online_buffer is None:
            self.online_buffer = ReplayBuffer(self.online_buffer_capacity, optimize_memory=self.optimize_memory,
                                              seed=self.seed, **kwargs)
            restored_offline = self._restore_buffers(kwargs)
            self.actor = EnvActor(self.env, self.features_map, seed=self.seed, success_key=self.success_key)
            self.actor.env_steps = self._restored.get("env_steps", 0)
        else:
            restored_offline = False
        self.sampler = self.online_buffer
        if self.offline_repo_id is not None:
            if self.offline_buffer is None and not restored_offline:
                dataset = self.offline_dataset()
                missing = [k for k in obs_keys if k not in dataset.features]
                if missing:
                    raise ValueError(f"offline dataset {self.offline_repo_id!r} lacks the env's observation keys "
                                     f"{missing}; it has {sorted(dataset.features)}")
                self.offline_buffer = buffer_from_dataset(dataset, min(self.offline_buffer_capacity, len(dataset)),
                                                          observation_keys=obs_keys, seed=self.seed + 1, **kwargs)
            self.sampler = MixedReplayBuffer(self.online_buffer, self.offline_buffer, self.online_ratio, seed=self.seed)

    def env_step(self, random: bool = False) -> EpisodeStats | None:
        """One env step (uniform random action, or the connected policy's ``sample_action``/``select_action``),
        added to the online buffer; logs and returns the finished episode, if any."""
        action_fn = None
        if not random:
            policy = self.policy
            act = getattr(policy, "sample_action", None) or policy.select_action
            device = getattr(policy, "device", torch.device("cpu"))

            def action_fn(obs):
                return act({k: v.to(device) for k, v in obs.items()})

        transition, finished = self.actor.step(action_fn)
        self.online_buffer.add(transition)
        if finished is not None:
            self._log_episode(finished)
            reset = getattr(self.policy, "reset", None)
            if reset is not None:  # action queues and planner warm starts must not leak into the next episode
                reset()
        return finished

    def next_batch(self) -> dict[str, torch.Tensor]:
        """Warm up (random steps until the online buffer holds ``online_step_before_learning`` transitions), take one
        policy env step every ``utd_ratio`` batches, then sample ``batch_size`` transitions (or, for a windowed policy,
        ``batch_size`` windows of :attr:`horizon` steps)."""
        if self.sampler is None:
            raise RuntimeError("OnlineRLDataModule.next_batch before connect(policy) (train_dataloader does it)")
        while len(self.online_buffer) < max(1, self.online_step_before_learning):
            self.env_step(random=True)
        if self.num_batches % self.utd_ratio == 0:
            self.env_step()
        self.num_batches += 1
        if self.horizon is not None:
            return self.sampler.sample_sequences(self.batch_size, self.horizon)
        return self.sampler.sample(self.batch_size)

    def _log_episode(self, ep: EpisodeStats, extra: dict[str, float] | None = None) -> None:
        """Log one finished episode's ``env/*`` metrics (and ``extra`` ones) as one row at the trainer's step;
        ``env/sim_success`` only when the episode carries the simulator's own success."""
        trainer = self._trainer_or_none()
        if trainer is None:
            return
        metrics = {"env/episode_return": ep.episode_return, "env/success": float(ep.success),
                   "env/episode_length": float(ep.length), "env/steps": float(ep.env_step), **(extra or {})}
        if ep.sim_success is not None:
            metrics["env/sim_success"] = float(ep.sim_success)
        for lg in trainer.loggers:
            lg.log_metrics(metrics, step=trainer.global_step)

    def _trainer_or_none(self):
        return getattr(self, "trainer", None)

    # ------------------------------------------------------------------ Lightning hooks
    def train_dataloader(self) -> DataLoader:
        trainer = self._trainer_or_none()
        policy = trainer.lightning_module if trainer is not None else self.policy
        if policy is None:
            raise RuntimeError("OnlineRLDataModule needs the policy: use it through trainer.fit(policy, datamodule=dm) "
                               "or call connect(policy) first")
        self.connect(policy)
        return DataLoader(_TransitionStream(self), batch_size=None, num_workers=0)

    def _checkpoint_dir(self) -> Path | None:
        trainer = self._trainer_or_none()
        if trainer is None:
            return None
        cb = getattr(trainer, "checkpoint_callback", None)
        dirpath = getattr(cb, "dirpath", None)
        return Path(dirpath) if dirpath else Path(trainer.default_root_dir) / "checkpoints"

    def save_buffers(self) -> dict[str, Any] | None:
        """Write the buffers' sidecar for the checkpoint being saved (see ``save_replay_buffers``); returns what the
        checkpoint records about it (``{"folder", "online", "offline"}``: name and sizes), or None when nothing is
        saved (option off, no trainer or no buffer yet).

        Raises:
            OSError: the sidecar could not be written (the checkpoint is then not written either).
        """
        from robolearn.rl.buffer_checkpoint import SIDECAR_DIR, buffer_nbytes, save_buffers

        directory = self._checkpoint_dir()
        if not self.save_replay_buffers or directory is None or self.online_buffer is None:
            return None
        name = f"step_{int(self.trainer.global_step):06d}"
        record = {"folder": name, "online": len(self.online_buffer), "offline": len(self.offline_buffer or ())}
        if not getattr(self.trainer, "is_global_zero", True):  # one writer when several processes checkpoint
            return record
        buffers = {"online": self.online_buffer, "offline": self.offline_buffer}
        folder = save_buffers(directory / SIDECAR_DIR, name, buffers, keep=self.replay_buffers_keep)
        nbytes = sum(buffer_nbytes(b) for b in buffers.values() if b is not None)
        log.info("replay buffers saved to %s (online %d, offline %d transitions, %.1f MB)", folder,
                 len(self.online_buffer), len(self.offline_buffer or ()), nbytes / 1e6)
        return record

    def _restore_buffers(self, kwargs: Mapping[str, Any]) -> bool:
        """Load the buffers from the sidecar named by the resumed checkpoint (at :meth:`connect`); True when the
        offline buffer came from it (then the offline dataset is not loaded again)."""
        from robolearn.rl.buffer_checkpoint import load_buffer, read_meta

        folder, saved = self._buffers_folder, self._restored.get("replay_buffers")
        if folder is None or not saved:
            return False
        try:
            meta = read_meta(folder)["buffers"]
            sizes = {k: int(meta.get(k, {}).get("size", -1)) for k in ("online", "offline")}
            if sizes != {"online": int(saved["online"]), "offline": int(saved["offline"])}:
                raise ValueError(f"sizes {sizes} differ from the checkpoint's {saved}")
            n_on = load_buffer(self.online_buffer, folder, "online")
            restored_offline = False
            if sizes["offline"] > 0:
                # the saved capacity (e.g. a demonstration buffer sized to its dataset), so the ring comes back as it was
                offline = ReplayBuffer(int(meta["offline"]["capacity"]), seed=self.seed + 1, **kwargs)
                load_buffer(offline, folder, "offline")
                self.offline_buffer = offline
                restored_offline = True
        except (OSError, ValueError, KeyError) as e:
            log.warning("replay buffers NOT restored from %s (%s): training resumes with empty buffers", folder, e)
            self.online_buffer = ReplayBuffer(self.online_buffer.capacity, optimize_memory=self.optimize_memory,
                                              seed=self.seed, **kwargs)
            return False
        log.info("replay buffers restored from %s: online %d, offline %d transitions", folder, n_on,
                 len(self.offline_buffer or ()))
        return restored_offline

    def state_dict(self) -> dict[str, Any]:
        """Counters saved in Lightning checkpoints, and (``save_replay_buffers``) the name and sizes of the replay
        buffers' sidecar folder, written now (:meth:`save_buffers`)."""
        state: dict[str, Any] = {"env_steps": self.actor.env_steps if self.actor else 0,
                                 "num_batches": self.num_batches}
        saved = self.save_buffers()
        if saved is not None:
            state["replay_buffers"] = saved
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the counters; the buffers named in ``state_dict["replay_buffers"]`` are read at :meth:`connect`
        from ``<folder of the resumed checkpoint>/replay_buffers/<name>`` (so a moved run folder still resumes)."""
        from robolearn.rl.buffer_checkpoint import SIDECAR_DIR

        self._restored = dict(state_dict)
        self.num_batches = int(state_dict.get("num_batches", 0))
        if self.actor is not None:
            self.actor.env_steps = int(state_dict.get("env_steps", 0))
        saved = state_dict.get("replay_buffers")
        trainer = self._trainer_or_none()
        ckpt = getattr(trainer, "ckpt_path", None) if trainer is not None else None
        self._buffers_folder = None
        if saved and ckpt:
            self._buffers_folder = Path(ckpt).absolute().parent / SIDECAR_DIR / str(saved["folder"])
        elif saved:
            log.warning("replay buffers of the checkpoint (%s) not restored: the checkpoint's path is unknown",
                        saved.get("folder"))
