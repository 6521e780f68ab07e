"""Replay buffers for off-policy RL: tensor ring buffer, n-step returns, online/offline mixing (RLPD).

A transition is a dict in lerobot's key layout (single transition: no batch axis; ``extend``: leading axis ``N``):

- ``observation.<...>``: one or more observation keys (states ``(D,)``, cameras ``(C, H, W)`` uint8 or float in
  [0, 1]); cameras (keys starting with ``observation.image``) are stored as uint8;
- ``action``: ``(A,)`` in the env's units;
- ``next.reward``: scalar; ``next.done``: the episode *terminated* (no bootstrapping past it);
  ``next.truncated`` (optional, default False): the episode was cut by a time limit (bootstrapping continues);
- ``next.observation.<...>``: the observation after the action, same keys as ``observation.*``;
- ``complementary_info.<name>`` (optional): extra scalars or vectors stored alongside, e.g.
  ``complementary_info.is_intervention`` (HIL-SERL's human-intervention flag).

``sample`` returns the same keys batched (cameras float32 in [0, 1]), ``next.done``/``next.truncated`` as float32
0/1, and ``next.n_steps`` (float32): the number ``k`` of rewards summed into ``next.reward``; the bootstrap term of
the TD target is then ``discount ** k * (1 - next.done) * V(next.observation)``.

``sample_sequences(batch_size, horizon)`` returns contiguous windows of ``horizon`` transitions of one episode instead
(the batch layout of lerobot's TD-MPC, i.e. what a LeRobotDataset with ``delta_indices`` gives): observations
``(B, horizon + 1, ...)``, ``action`` / ``next.reward`` ``(B, horizon, ...)`` and ``<key>_is_pad`` masks for steps past
the episode's end (see :meth:`ReplayBuffer.gather_sequences`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from robolearn.features import ACTION
from robolearn.rl.augment import random_shift

OBS_PREFIX = "observation."
NEXT_OBS_PREFIX = "next.observation."
INFO_PREFIX = "complementary_info."
REWARD, DONE, TRUNCATED, N_STEPS = "next.reward", "next.done", "next.truncated", "next.n_steps"


def is_image_key(key: str) -> bool:
    """True for lerobot camera keys: ``observation.image`` and ``observation.images.<cam>`` (also ``next.``-prefixed)."""
    key = key[len("next."):] if key.startswith(NEXT_OBS_PREFIX) else key
    return key == "observation.image" or key.startswith("observation.images.")


def _to_uint8_image(x: Tensor) -> Tensor:
    if x.dtype == torch.uint8:
        return x
    return (x.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)


class ReplayBuffer:
    """A fixed-capacity ring buffer of transitions held as tensors on ``device``, with uniform sampling.

    Args:
        capacity: maximum number of transitions; the oldest are overwritten first.
        device: where the storage lives (``"cpu"`` or e.g. ``"cuda"``); samples are returned there.
        n_step: number of rewards summed per sampled transition (1 = ordinary one-step TD). A window stops at the
            end of an episode (``next.done`` or ``next.truncated``) and at the newest transition.
        discount: the discount ``gamma`` used to sum n-step rewards (unused when ``n_step == 1``).
        optimize_memory: do not store ``next.observation.*``; the next observation of slot ``i`` is the observation
            of slot ``i + 1``. Transitions must then be added in time order (checked: a non-final transition's
            next observation must equal the following transition's observation, else ``ValueError``), and
            transitions cut by a time limit (``next.truncated`` and not ``next.done``) are never sampled, since
            their next observation is not kept (about ``1 / episode_length`` of the data).
        drq_pad: DrQ random-shift padding in pixels applied to cameras at sampling (0 = no augmentation);
            observation and next observation are shifted independently, as in DrQ.
        seed: seed of the buffer's sampling generator.

    Raises:
        ValueError: ``capacity < 1``, ``n_step < 1`` or ``discount`` outside [0, 1].
    """

    def __init__(self, capacity: int, device: str | torch.device = "cpu", n_step: int = 1, discount: float = 0.99,
                 optimize_memory: bool = False, drq_pad: int = 0, seed: int = 0) -> None:
        if int(capacity) < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        if int(n_step) < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if not 0.0 <= float(discount) <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {discount}")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.n_step = int(n_step)
        self.discount = float(discount)
        self.optimize_memory = bool(optimize_memory)
        self.drq_pad = int(drq_pad)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.size = 0
        self.pos = 0  # next slot to write
        self.obs_keys: list[str] = []
        self.info_keys: list[str] = []
        self._storage: dict[str, Tensor] = {}
        self._pending_next: dict[str, Tensor] | None = None  # next obs of the newest transition (optimize_memory)

    def __len__(self) -> int:
        return self.size

    @property
    def keys(self) -> list[str]:
        """The stored keys (empty until the first ``add``)."""
        return list(self._storage)

    # ------------------------------------------------------------------ writing
    def _allocate(self, batch: Mapping[str, Tensor]) -> None:
        self.obs_keys = sorted(k for k in batch if k.startswith(OBS_PREFIX))
        if not self.obs_keys:
            raise KeyError(f"a transition needs at least one 'observation.*' key; got {sorted(batch)}")
        for key in (ACTION, REWARD, DONE):
            if key not in batch:
                raise KeyError(f"a transition needs key '{key}'; got {sorted(batch)}")
        self.info_keys = sorted(k for k in batch if k.startswith(INFO_PREFIX))
        stored = list(self.obs_keys) + [ACTION] + self.info_keys
        if not self.optimize_memory:
            stored += ["next." + k for k in self.obs_keys]
        for key in stored:
            src = batch[key]
            dtype = torch.uint8 if is_image_key(key) else (src.dtype if src.is_floating_point() else torch.float32)
            self._storage[key] = torch.zeros((self.capacity, *src.shape[1:]), dtype=dtype, device=self.device)
        self._storage[REWARD] = torch.zeros(self.capacity, dtype=torch.float32, device=self.device)
        self._storage[DONE] = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
        self._storage[TRUNCATED] = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)

    def _check_keys(self, batch: Mapping[str, Tensor]) -> None:
        required = set(self.obs_keys) | {ACTION, REWARD, DONE} | {"next." + k for k in self.obs_keys}
        missing = sorted(required - set(batch))
        extra = sorted(k for k in batch if (k.startswith(OBS_PREFIX) or k.startswith(INFO_PREFIX)) and k not in self._storage)
        missing += [k for k in self.info_keys if k not in batch]
        if missing or extra:
            raise KeyError(f"transition keys differ from the buffer's: missing {missing}, unexpected {extra}; "
                           f"buffer keys {self.keys}")
        n = batch[ACTION].shape[0]
        for key, value in batch.items():
            if key in self._storage and key not in (REWARD, DONE, TRUNCATED):
                if tuple(value.shape) != (n, *self._storage[key].shape[1:]):
                    raise ValueError(f"transition key '{key}' has shape {tuple(value.shape)}, expected "
                                     f"{(n, *self._storage[key].shape[1:])}")

    def add(self, transition: Mapping[str, Any]) -> None:
        """Add one transition (tensors/arrays without a batch axis; see the module docstring for keys)."""
        self.extend({k: torch.as_tensor(v)[None] for k, v in transition.items()})

    def extend(self, batch: Mapping[str, Any]) -> None:
        """Add ``N`` transitions in time order (every value has a leading axis ``N``).

        Raises:
            KeyError: a required key is missing or keys differ from the first added transition.
            ValueError: wrong shapes; with ``optimize_memory``, a non-final transition whose next observation is not
                the following transition's observation.
        """
        batch = {k: torch.as_tensor(v) for k, v in batch.items()}
        if ACTION not in batch:
            raise KeyError(f"a transition needs key '{ACTION}'; got {sorted(batch)}")
        n = int(batch[ACTION].shape[0])
        if n == 0:
            return
        if not self._storage:
            self._allocate(batch)
        self._check_keys(batch)
        done = batch[DONE].reshape(n).bool()
        trunc = batch[TRUNCATED].reshape(n).bool() if TRUNCATED in batch else torch.zeros(n, dtype=torch.bool)
        if self.optimize_memory:
            self._check_continuity(batch, done | trunc, n)
        if n > self.capacity:  # only the newest `capacity` transitions survive
            batch = {k: v[n - self.capacity:] for k, v in batch.items()}
            done, trunc, n = done[n - self.capacity:], trunc[n - self.capacity:], self.capacity
        slots = (self.pos + torch.arange(n)) % self.capacity
        dev_slots = slots.to(self.device)
        for key, store in self._storage.items():
            if key == DONE:
                value = done
            elif key == TRUNCATED:
                value = trunc
            elif key == REWARD:
                value = batch[REWARD].reshape(n).float()
            else:
                value = batch[key]
                value = _to_uint8_image(value) if is_image_key(key) else value.to(store.dtype)
            store[dev_slots] = value.to(self.device)
        if self.optimize_memory:
            self._pending_next = {k: batch["next." + k][-1].to(self.device) for k in self.obs_keys}
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)

    def _check_continuity(self, batch: Mapping[str, Tensor], ended: Tensor, n: int) -> None:
        def same(key: str, a: Tensor, b: Tensor) -> bool:
            if is_image_key(key):
                a, b = _to_uint8_image(a), _to_uint8_image(b)
            return bool(torch.equal(a.to(self.device), b.to(self.device)))

        if self.size > 0 and self._pending_next is not None and not bool(self._storage_end(self._newest())):
            for key in self.obs_keys:
                if not same(key, self._pending_next[key], batch[key][0]):
                    raise ValueError(f"optimize_memory: the new transition's '{key}' is not the previous "
                                     "transition's next observation (add transitions in time order)")
        for i in range(n - 1):
            if bool(ended[i]):
                continue
            for key in self.obs_keys:
                if not same(key, batch["next." + key][i], batch[key][i + 1]):
                    raise ValueError(f"optimize_memory: transition {i}'s 'next.{key}' differs from transition "
                                     f"{i + 1}'s '{key}' although episode did not end there")

    # ------------------------------------------------------------------ reading
    def _newest(self) -> int:
        return (self.pos - 1) % self.capacity

    def _storage_end(self, slot: int | Tensor) -> Tensor:
        return self._storage[DONE][slot] | self._storage[TRUNCATED][slot]

    def _sample_slots(self, batch_size: int) -> Tensor:
        if not self.optimize_memory:
            return torch.randint(0, self.size, (batch_size,), generator=self.generator)
        lost = (self._storage[TRUNCATED][: self.size] & ~self._storage[DONE][: self.size]).cpu()
        valid = torch.nonzero(~lost).squeeze(1)
        if valid.numel() == 0:
            raise RuntimeError("optimize_memory buffer holds only time-limit-truncated transitions; nothing to sample")
        return valid[torch.randint(0, valid.numel(), (batch_size,), generator=self.generator)]

    def sample(self, batch_size: int) -> dict[str, Tensor]:
        """Sample ``batch_size`` transitions uniformly (with replacement).

        Returns:
            ``observation.*`` / ``next.observation.*`` (cameras float32 ``(B, C, H, W)`` in [0, 1], DrQ-shifted when
            ``drq_pad > 0``), ``action`` ``(B, A)``, ``next.reward`` ``(B,)`` (n-step discounted sum),
            ``next.done`` / ``next.truncated`` ``(B,)`` float32 0/1 (of the window's last transition),
            ``next.n_steps`` ``(B,)`` float32, ``complementary_info.*``.

        Raises:
            RuntimeError: the buffer is empty.
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        return self.gather(self._sample_slots(int(batch_size)))

    def gather(self, idx: Tensor) -> dict[str, Tensor]:
        """The transitions starting at storage slots ``idx`` (``(B,)`` int64, ``0 <= idx < len(self)``; slot ``i`` is
        the ``i``-th added transition until the ring wraps), in :meth:`sample`'s layout.

        Raises:
            IndexError: a slot outside ``[0, len(self))``.
        """
        idx = torch.as_tensor(idx, dtype=torch.long).cpu()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.size):
            raise IndexError(f"replay slots must be in [0, {self.size}), got min {int(idx.min())} max {int(idx.max())}")
        last, reward, n_steps = self._windows(idx)
        dev_idx, dev_last = idx.to(self.device), last.to(self.device)
        out: dict[str, Tensor] = {}
        for key in self.obs_keys:
            out[key] = self._storage[key][dev_idx]
            out["next." + key] = self._next_obs(key, last, dev_last)
        out[ACTION] = self._storage[ACTION][dev_idx]
        for key in self.info_keys:
            out[key] = self._storage[key][dev_idx]
        out[REWARD] = reward.to(self.device)
        out[DONE] = self._storage[DONE][dev_last].float()
        out[TRUNCATED] = self._storage[TRUNCATED][dev_last].float()
        out[N_STEPS] = n_steps.to(self.device)
        for key in list(out):
            if is_image_key(key):
                img = out[key].float().div_(255.0)
                out[key] = random_shift(img, self.drq_pad, generator=self.generator) if self.drq_pad else img
        return out

    def sample_sequences(self, batch_size: int, horizon: int) -> dict[str, Tensor]:
        """Sample ``batch_size`` windows of ``horizon`` consecutive transitions, each starting at a uniformly drawn slot
        (with replacement); see :meth:`gather_sequences` for the layout.

        Raises:
            RuntimeError: the buffer is empty.
            ValueError: ``horizon < 1``.
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (int(batch_size),), generator=self.generator)
        return self.gather_sequences(idx, horizon)

    def gather_sequences(self, idx: Tensor, horizon: int) -> dict[str, Tensor]:
        """Windows of ``H = horizon`` transitions starting at storage slots ``idx`` (``(B,)`` int64), in the layout of a
        LeRobotDataset sampled with TD-MPC's ``delta_indices`` (observations ``0..H``, action and reward ``0..H-1``).

        A window holds the ``n`` (1 to ``H``) transitions from its start slot to the end of that episode
        (``next.done`` or ``next.truncated``), the newest transition, or ``H``, whichever comes first. Steps past them
        are padding: they repeat the last real value and are flagged in ``<key>_is_pad``, as lerobot pads windows at
        episode ends. Observation step ``n`` is the next observation of the window's last transition; it is real
        (not padding) unless that transition terminated the episode (``next.done``: like the offline dataset path,
        whose final frame has no successor; a TD target must not bootstrap there) or, with ``optimize_memory``,
        was truncated (its next observation is not kept). No DrQ shift is applied (TD-MPC shifts its own images).

        Returns:
            ``observation.*`` ``(B, H + 1, ...)`` (cameras float32 in [0, 1]) and ``observation.*_is_pad``
            ``(B, H + 1)`` bool; ``action`` ``(B, H, A)``, ``next.reward`` ``(B, H)``, ``next.done`` ``(B, H)`` float32
            0/1, ``complementary_info.*`` ``(B, H, ...)``, each with a ``<key>_is_pad`` ``(B, H)`` bool mask.

        Raises:
            IndexError: a slot outside ``[0, len(self))``.
            ValueError: ``horizon < 1``.
        """
        h = int(horizon)
        if h < 1:
            raise ValueError(f"sequence horizon must be >= 1, got {horizon}")
        idx = torch.as_tensor(idx, dtype=torch.long).cpu()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.size):
            raise IndexError(f"replay slots must be in [0, {self.size}), got min {int(idx.min())} max {int(idx.max())}")
        b = idx.shape[0]
        steps = torch.arange(h)
        slots = (idx[:, None] + steps) % self.capacity  # (B, H)
        done = self._storage[DONE].cpu()
        trunc = self._storage[TRUNCATED].cpu()
        ended = done[slots] | trunc[slots]  # (B, H)
        ended_before = torch.zeros_like(ended)
        ended_before[:, 1:] = ended[:, :-1].cumsum(1) > 0
        ahead = (self._newest() - idx) % self.capacity  # transitions stored after each start slot
        real = (steps[None, :] <= ahead[:, None]) & ~ended_before  # (B, H), a prefix of each row
        n = real.sum(1)  # (B,) >= 1
        clamped = torch.minimum(steps[None, :], (n - 1)[:, None])
        step_slots = slots.gather(1, clamped)  # (B, H): padding repeats the last real transition
        last = step_slots[:, -1]
        next_real = ~done[last]
        if self.optimize_memory:
            next_real &= ~trunc[last]
        obs_steps = torch.arange(h + 1)
        obs_pad = (obs_steps[None, :] > n[:, None]) | ((obs_steps[None, :] == n[:, None]) & ~next_real[:, None])
        obs_slots = torch.cat([step_slots, last[:, None]], 1)  # (B, H + 1)
        use_next = (obs_steps[None, :] >= n[:, None]) & next_real[:, None]  # next observation of `last` (and pads)
        dev = self.device
        dev_last, dev_use_next = last.to(dev), use_next.to(dev)
        out: dict[str, Tensor] = {}
        for key in self.obs_keys:
            value = self._storage[key][obs_slots.to(dev)]  # (B, H + 1, ...)
            nxt = self._next_obs(key, last, dev_last).to(value.dtype)  # (B, ...)
            mask = dev_use_next.reshape(b, h + 1, *([1] * (value.dim() - 2)))
            value = torch.where(mask, nxt[:, None], value)
            out[key] = value.float().div_(255.0) if is_image_key(key) else value
            out[f"{key}_is_pad"] = obs_pad.to(dev)
        pad = (~real).to(dev)
        dev_slots = step_slots.to(dev)
        for key in [ACTION, REWARD, *self.info_keys]:
            out[key] = self._storage[key][dev_slots]
            out[f"{key}_is_pad"] = pad
        out[DONE] = self._storage[DONE][dev_slots].float()
        return out

    def _next_obs(self, key: str, last: Tensor, dev_last: Tensor) -> Tensor:
        if not self.optimize_memory:
            return self._storage["next." + key][dev_last]
        succ = (dev_last + 1) % self.capacity
        value = self._storage[key][succ].clone()
        is_newest = (last == self._newest()).to(self.device)
        if bool(is_newest.any()):
            pending = self._pending_next[key].to(value.dtype) if not is_image_key(key) else _to_uint8_image(self._pending_next[key])
            value[is_newest] = pending
        return value

    def _windows(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For start slots ``idx`` (B,), the last slot of each n-step window, the discounted reward sum, and ``k``."""
        rewards = self._storage[REWARD].cpu() if self.n_step > 1 else None
        if self.n_step == 1:
            return idx, self._storage[REWARD][idx.to(self.device)].cpu(), torch.ones(idx.shape[0])
        done = self._storage[DONE].cpu()
        trunc = self._storage[TRUNCATED].cpu()
        ahead = (self._newest() - idx) % self.capacity  # transitions stored after idx
        last = idx.clone()
        total = torch.zeros(idx.shape[0])
        count = torch.zeros(idx.shape[0])
        active = torch.ones(idx.shape[0], dtype=torch.bool)
        for k in range(self.n_step):
            j = (idx + k) % self.capacity
            if k > 0:
                active &= ahead >= k
                if self.optimize_memory:  # a truncated slot's next observation is not kept
                    active &= ~(trunc[j] & ~done[j])
            total += active.float() * (self.discount ** k) * rewards[j]
            count += active.float()
            last = torch.where(active, j, last)
            active &= ~(done[j] | trunc[j])
        return last, total, count


class MixedReplayBuffer:
    """Sample from an online and an offline buffer in a fixed expected proportion (RLPD, Ball et al. 2023;
    lerobot's ``online_offline`` mixer, default ``online_ratio`` 0.5).

    Each sampled transition comes from the online buffer with probability ``online_ratio`` (the online count of a
    batch is Binomial(batch_size, online_ratio)), and from the offline buffer otherwise. When one buffer is empty
    the whole batch comes from the other. ``complementary_info.*`` keys present in only one buffer are filled with
    zeros for the other's rows.

    Args:
        online, offline: the two :class:`ReplayBuffer` s (same observation and action keys and shapes).
        online_ratio: expected fraction of each batch drawn from ``online``, in [0, 1].
        seed: seed of the split generator.

    Raises:
        ValueError: ``online_ratio`` outside [0, 1].
    """

    def __init__(self, online: ReplayBuffer, offline: ReplayBuffer, online_ratio: float = 0.5, seed: int = 0) -> None:
        if not 0.0 <= float(online_ratio) <= 1.0:
            raise ValueError(f"online_ratio must be in [0, 1], got {online_ratio}")
        self.online, self.offline = online, offline
        self.online_ratio = float(online_ratio)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.last_online_count = 0

    def __len__(self) -> int:
        return len(self.online) + len(self.offline)

    def sample(self, batch_size: int) -> dict[str, Tensor]:
        """``batch_size`` transitions: the first ``last_online_count`` rows from ``online``, the rest from ``offline``.

        Raises:
            RuntimeError: both buffers are empty.
            KeyError: the buffers' observation/action keys differ.
        """
        return self._mixed(batch_size, lambda buffer, n: buffer.sample(n))

    def sample_sequences(self, batch_size: int, horizon: int) -> dict[str, Tensor]:
        """``batch_size`` windows of ``horizon`` transitions (:meth:`ReplayBuffer.sample_sequences`' layout), split
        between the buffers as :meth:`sample` splits transitions.

        Raises:
            RuntimeError: both buffers are empty.
            KeyError: the buffers' observation/action keys differ.
            ValueError: ``horizon < 1``.
        """
        return self._mixed(batch_size, lambda buffer, n: buffer.sample_sequences(n, horizon))

    def _mixed(self, batch_size: int, draw: Callable[[ReplayBuffer, int], dict[str, Tensor]]) -> dict[str, Tensor]:
        if len(self.online) == 0 and len(self.offline) == 0:
            raise RuntimeError("cannot sample: both the online and the offline replay buffers are empty")
        if len(self.offline) == 0:
            n_on = batch_size
        elif len(self.online) == 0:
            n_on = 0
        else:
            n_on = int((torch.rand(batch_size, generator=self.generator) < self.online_ratio).sum())
        self.last_online_count = n_on
        parts = []
        if n_on > 0:
            parts.append(draw(self.online, n_on))
        if batch_size - n_on > 0:
            parts.append(draw(self.offline, batch_size - n_on))
        if len(parts) == 1:
            return parts[0]
        on, off = parts
        core = lambda d: {k for k in d if not k.startswith(INFO_PREFIX)}  # noqa: E731
        if core(on) != core(off):
            raise KeyError(f"online and offline buffers hold different keys: online {sorted(core(on))}, "
                           f"offline {sorted(core(off))}")
        out = {}
        for key in set(on) | set(off):
            a = on.get(key)
            b = off.get(key)
            if a is None:
                a = torch.zeros((n_on, *b.shape[1:]), dtype=b.dtype, device=b.device)
            if b is None:
                b = torch.zeros((batch_size - n_on, *a.shape[1:]), dtype=a.dtype, device=a.device)
            out[key] = torch.cat([a, b.to(a.device, a.dtype)], 0)
        return out
