"""Replay buffer: storage, n-step windows against hand-computed returns, memory-optimized next observations,
online/offline mixing ratio, DrQ random shift."""

from __future__ import annotations

import math

import pytest
import torch

from robolearn.rl.augment import random_shift
from robolearn.rl.replay import MixedReplayBuffer, ReplayBuffer


def _episode(rewards, start=0.0, done_last=True, truncated_last=False):
    """Transitions of one episode whose state is the step counter (obs t = start + t, next obs = start + t + 1)."""
    n = len(rewards)
    t = torch.arange(n, dtype=torch.float32) + start
    done = torch.zeros(n, dtype=torch.bool)
    trunc = torch.zeros(n, dtype=torch.bool)
    done[-1] = done_last
    trunc[-1] = truncated_last
    return {
        "observation.state": t[:, None].repeat(1, 2),
        "action": -t[:, None],
        "next.reward": torch.tensor(rewards, dtype=torch.float32),
        "next.done": done,
        "next.truncated": trunc,
        "next.observation.state": (t + 1)[:, None].repeat(1, 2),
    }


def test_one_step_sample_layout_and_values():
    buf = ReplayBuffer(capacity=10)
    buf.extend(_episode([1.0, 2.0, 3.0]))
    batch = buf.gather(torch.tensor([0, 2]))
    assert set(batch) == {"observation.state", "next.observation.state", "action", "next.reward", "next.done",
                          "next.truncated", "next.n_steps"}
    assert batch["observation.state"].tolist() == [[0, 0], [2, 2]]
    assert batch["next.observation.state"].tolist() == [[1, 1], [3, 3]]
    assert batch["action"].tolist() == [[0.0], [-2.0]]
    assert batch["next.reward"].tolist() == [1.0, 3.0]
    assert batch["next.done"].tolist() == [0.0, 1.0]
    assert batch["next.n_steps"].tolist() == [1.0, 1.0]
    sample = buf.sample(64)
    assert sample["observation.state"].shape == (64, 2)
    assert torch.equal(sample["next.observation.state"], sample["observation.state"] + 1)


def test_ring_overwrites_oldest_and_rejects_bad_keys():
    buf = ReplayBuffer(capacity=4)
    buf.extend(_episode([0.0] * 3))
    buf.extend(_episode([0.0] * 3, start=10))
    assert len(buf) == 4 and buf.pos == 2
    # slots 0, 1 now hold the 2nd episode's 2nd and 3rd transitions; slots 2, 3 the 2nd episode start and the 1st's end
    assert buf.gather(torch.arange(4))["observation.state"][:, 0].tolist() == [11, 12, 2, 10]
    with pytest.raises(KeyError, match="missing"):
        buf.add({"observation.state": torch.zeros(2), "action": torch.zeros(1), "next.reward": 0.0, "next.done": False})
    with pytest.raises(ValueError, match="shape"):
        buf.extend({**_episode([0.0]), "observation.state": torch.zeros(1, 3)})
    with pytest.raises(IndexError):
        buf.gather(torch.tensor([4]))


def test_n_step_returns_match_hand_computed_values():
    gamma = 0.5
    buf = ReplayBuffer(capacity=20, n_step=3, discount=gamma)
    buf.extend(_episode([1.0, 2.0, 3.0, 4.0, 5.0]))  # terminates at slot 4
    buf.extend(_episode([10.0, 20.0], start=100, done_last=False, truncated_last=True))  # slots 5, 6 (time limit)
    buf.extend(_episode([7.0, 8.0], start=200, done_last=False))  # slots 7, 8: still running
    b = buf.gather(torch.tensor([0, 3, 4, 5, 7, 8]))
    expected = [1 + 0.5 * 2 + 0.25 * 3, 4 + 0.5 * 5, 5.0, 10 + 0.5 * 20, 7 + 0.5 * 8, 8.0]
    assert b["next.reward"].tolist() == pytest.approx(expected)
    assert b["next.n_steps"].tolist() == [3.0, 2.0, 1.0, 2.0, 2.0, 1.0]
    assert b["next.done"].tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert b["next.truncated"].tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    # next observation: the one after the window's last transition
    assert b["next.observation.state"][:, 0].tolist() == [3.0, 5.0, 5.0, 102.0, 202.0, 202.0]


def test_optimize_memory_reads_next_obs_from_the_following_slot():
    buf = ReplayBuffer(capacity=8, optimize_memory=True)
    assert "next.observation.state" not in buf.keys
    buf.extend(_episode([1.0, 2.0, 3.0], done_last=False, truncated_last=True))
    buf.extend(_episode([4.0, 5.0], start=50, done_last=False))
    assert "next.observation.state" not in buf.keys
    b = buf.gather(torch.tensor([0, 1, 3, 4]))
    assert b["next.observation.state"][:, 0].tolist() == [1.0, 2.0, 51.0, 52.0]  # slot 4 (newest): kept aside
    for _ in range(20):  # the time-limit-truncated slot 2 is never sampled (its next observation is not kept)
        assert 2 not in buf.sample(16)["observation.state"][:, 0].tolist()
    with pytest.raises(ValueError, match="time order"):
        buf.extend(_episode([0.0], start=99))  # slot 4 did not end, but 99 is not its next observation (52)


def test_images_stored_as_uint8_and_returned_in_unit_range():
    buf = ReplayBuffer(capacity=4)
    img = torch.rand(2, 3, 8, 8)
    buf.extend({"observation.image": img, "next.observation.image": img.flip(0), "action": torch.zeros(2, 1),
                "next.reward": torch.zeros(2), "next.done": torch.zeros(2, dtype=torch.bool)})
    assert buf._storage["observation.image"].dtype == torch.uint8
    out = buf.gather(torch.tensor([0, 1]))["observation.image"]
    assert out.dtype == torch.float32
    assert torch.allclose(out, img, atol=0.5 / 255 + 1e-6)


def test_mixer_online_fraction_within_binomial_tolerance():
    def buffer(value, n):
        buf = ReplayBuffer(capacity=n, seed=int(value))
        buf.extend({**_episode([0.0] * n), "complementary_info.source": torch.full((n,), value)})
        return buf

    online, offline = buffer(1.0, 50), buffer(0.0, 80)
    ratio, batch = 0.3, 4000
    mixed = MixedReplayBuffer(online, offline, online_ratio=ratio, seed=0)
    src = mixed.sample(batch)["complementary_info.source"]
    frac = float(src.mean())
    assert abs(frac - ratio) < 4 * math.sqrt(ratio * (1 - ratio) / batch)
    assert int(src.sum()) == mixed.last_online_count
    assert float(MixedReplayBuffer(online, offline, 1.0).sample(64)["complementary_info.source"].mean()) == 1.0
    assert float(MixedReplayBuffer(online, offline, 0.0).sample(64)["complementary_info.source"].mean()) == 0.0
    empty = ReplayBuffer(capacity=4)
    assert float(MixedReplayBuffer(online, empty, 0.1).sample(32)["complementary_info.source"].mean()) == 1.0
    with pytest.raises(ValueError, match="online_ratio"):
        MixedReplayBuffer(online, offline, 1.5)


def test_mixer_fills_info_keys_missing_from_one_buffer():
    online = ReplayBuffer(capacity=8)
    online.extend({**_episode([0.0] * 4), "complementary_info.is_intervention": torch.ones(4)})
    offline = ReplayBuffer(capacity=8)
    offline.extend(_episode([0.0] * 4))
    b = MixedReplayBuffer(online, offline, 0.5, seed=1).sample(100)
    assert b["complementary_info.is_intervention"].shape == (100,)
    n_on = int(b["complementary_info.is_intervention"].sum())
    assert 0 < n_on < 100 and b["observation.state"].shape == (100, 2)


def test_random_shift_values_and_shapes():
    img = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    pad = 2
    assert torch.equal(random_shift(img, pad, offsets=torch.full((2, 2), pad)), img)  # (pad, pad) = identity
    out = random_shift(img, pad, offsets=torch.tensor([[0, 0], [4, 3]]))
    for b, (dy, dx) in enumerate([(0, 0), (4, 3)]):
        for y in range(5):
            for x in range(6):  # padded[y + dy, x + dx] with edge replication = img[clamp(y + dy - pad), clamp(x + dx - pad)]
                sy, sx = min(max(y + dy - pad, 0), 4), min(max(x + dx - pad, 0), 5)
                assert torch.equal(out[b, :, y, x], img[b, :, sy, sx])
    rnd = random_shift(img.to(torch.uint8), 4, generator=torch.Generator().manual_seed(0))
    assert rnd.shape == img.shape and rnd.dtype == torch.uint8
    with pytest.raises(ValueError, match="offsets"):
        random_shift(img, pad, offsets=torch.tensor([[5, 0], [0, 0]]))


def test_drq_applied_at_sampling_to_camera_keys_only():
    buf = ReplayBuffer(capacity=16, drq_pad=4, seed=3)
    img = torch.zeros(16, 3, 12, 12, dtype=torch.uint8)
    img[:, :, 4:8, 4:8] = 255  # a white square: a shift moves it
    buf.extend({"observation.image": img, "next.observation.image": img, "observation.state": torch.zeros(16, 2),
                "next.observation.state": torch.zeros(16, 2), "action": torch.zeros(16, 1),
                "next.reward": torch.zeros(16), "next.done": torch.zeros(16, dtype=torch.bool)})
    b = buf.sample(64)
    assert b["observation.image"].shape == (64, 3, 12, 12)
    centers = {tuple(torch.nonzero(b["observation.image"][i, 0] > 0.5).float().mean(0).tolist()) for i in range(64)}
    assert len(centers) > 5  # different shifts per sample
    assert torch.equal(b["observation.state"], torch.zeros(64, 2))
