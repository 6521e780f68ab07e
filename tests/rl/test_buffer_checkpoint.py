"""Replay buffers saved beside checkpoints (robolearn.rl.buffer_checkpoint): exact round trip (contents, ring
position, sampling generator), capacity changes keep the newest transitions in order, optimize_memory's pending next
observation, atomic writes (a failed save leaves the previous sidecar and no partial one), pruning, no pickle, and the
DataModule's state_dict / load_state_dict path including a damaged sidecar."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from robolearn.rl import buffer_checkpoint as bc
from robolearn.rl.buffer_checkpoint import buffer_nbytes, load_buffer, read_meta, save_buffers
from robolearn.rl.replay import ReplayBuffer


def transitions(n: int, start: int = 0, image: bool = False) -> dict[str, torch.Tensor]:
    """``n`` distinguishable transitions (values encode their index), episodes of 5 steps."""
    i = torch.arange(start, start + n, dtype=torch.float32)
    out = {
        "observation.state": torch.stack([i, -i], 1),
        "next.observation.state": torch.stack([i + 1, -i - 1], 1),
        "action": (i / 100)[:, None].repeat(1, 3),
        "next.reward": i * 0.5,
        "next.done": (i % 5) == 4,
        "next.truncated": torch.zeros(n, dtype=torch.bool),
        "complementary_info.is_intervention": (i % 2)[:, None],
    }
    if image:
        img = (i[:, None, None, None] % 7 / 7).expand(n, 3, 4, 4).contiguous()
        out["observation.images.cam"] = img
        out["next.observation.images.cam"] = img
    return out


def test_round_trip_restores_contents_ring_position_and_sampling(tmp_path):
    buf = ReplayBuffer(8, seed=3)
    buf.extend(transitions(6, image=True))
    buf.extend(transitions(5, start=6, image=True))  # wrapped ring: pos 3
    assert (buf.size, buf.pos) == (8, 3)
    folder = save_buffers(tmp_path, "step_000010", {"online": buf, "offline": None})
    meta = read_meta(folder)
    assert meta["buffers"]["offline"] == {"size": 0}
    assert meta["buffers"]["online"]["size"] == 8 and meta["buffers"]["online"]["pos"] == 3
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "online.safetensors"]  # no pickle

    new = ReplayBuffer(8, seed=99)
    assert load_buffer(new, folder, "online") == 8
    assert (new.size, new.pos, new.obs_keys, new.info_keys) == (8, 3, buf.obs_keys, buf.info_keys)
    for k in buf._storage:
        assert torch.equal(new._storage[k], buf._storage[k]), k
    assert new._storage["observation.images.cam"].dtype == torch.uint8
    torch.testing.assert_close(new.sample(5), buf.sample(5))  # the generator state came back
    assert load_buffer(ReplayBuffer(4), folder, "offline") == 0
    with pytest.raises(ValueError, match="empty buffer"):
        load_buffer(new, folder, "online")
    with pytest.raises(FileNotFoundError):
        load_buffer(ReplayBuffer(4), folder, "nope")


def test_other_capacity_keeps_the_newest_in_time_order(tmp_path):
    buf = ReplayBuffer(8)
    buf.extend(transitions(6))
    buf.extend(transitions(5, start=6))  # holds transitions 3..10, the ring wrapped at slot 3
    folder = save_buffers(tmp_path, "s", {"online": buf})
    small = ReplayBuffer(5)
    assert load_buffer(small, folder, "online") == 5
    assert small._storage["observation.state"][:, 0].tolist() == [6, 7, 8, 9, 10] and small.pos == 0
    big = ReplayBuffer(20)
    assert load_buffer(big, folder, "online") == 8
    assert big._storage["observation.state"][:8, 0].tolist() == list(range(3, 11)) and big.pos == 8
    big.extend(transitions(2, start=11))  # keeps filling after the restored ones
    assert big._storage["observation.state"][:10, 0].tolist() == list(range(3, 13))


def test_optimize_memory_keeps_the_pending_next_observation(tmp_path):
    buf = ReplayBuffer(10, optimize_memory=True)
    t = transitions(3)
    t["next.done"][:] = False
    buf.extend(t)
    folder = save_buffers(tmp_path, "s", {"online": buf})
    with pytest.raises(ValueError, match="optimize_memory"):
        load_buffer(ReplayBuffer(10), folder, "online")
    new = ReplayBuffer(10, optimize_memory=True)
    load_buffer(new, folder, "online")
    assert torch.equal(new._pending_next["observation.state"], buf._pending_next["observation.state"])
    bad = transitions(1, start=7)  # not the continuation of transition 2: still refused after the restore
    with pytest.raises(ValueError, match="previous"):
        new.extend(bad)
    new.extend(transitions(1, start=3))


def test_failed_save_leaves_previous_sidecar_and_no_partial_one(tmp_path, monkeypatch):
    buf = ReplayBuffer(10)
    buf.extend(transitions(4))
    first = save_buffers(tmp_path, "step_000001", {"online": buf})
    before = (first / "online.safetensors").read_bytes()
    buf.extend(transitions(2, start=4))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bc, "save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_buffers(tmp_path, "step_000001", {"online": buf})  # replacing the same step
    with pytest.raises(OSError):
        save_buffers(tmp_path, "step_000002", {"online": buf})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000001"]  # no temporary folders left
    assert (first / "online.safetensors").read_bytes() == before
    assert read_meta(first)["buffers"]["online"]["size"] == 4


def test_keep_prunes_older_sidecars_and_leftovers(tmp_path):
    buf = ReplayBuffer(10)
    buf.extend(transitions(3))
    (tmp_path / ".step_000000.tmp-1-abc").mkdir()  # a save killed midway by another process
    for step in range(4):
        save_buffers(tmp_path, f"step_{step:06d}", {"online": buf}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000002", "step_000003"]
    with pytest.raises(ValueError):
        save_buffers(tmp_path, "x", {"online": buf}, keep=0)
    with pytest.raises(ValueError):
        save_buffers(tmp_path, "../x", {"online": buf})


def test_nbytes_counts_the_filled_slots():
    buf = ReplayBuffer(100)
    buf.extend(transitions(10))
    # state 2 floats x2 (next), action 3 floats, info 1 float, reward 4 bytes, done 1, truncated 1
    assert buffer_nbytes(buf) == 10 * (2 * 2 * 4 + 3 * 4 + 4 + 4 + 1 + 1)


class _Trainer:
    def __init__(self, root, step=0, ckpt_path=None):
        self.default_root_dir, self.global_step, self.ckpt_path = str(root), step, ckpt_path
        self.checkpoint_callback = None
        self.loggers = []


def _datamodule(**kw):
    from robolearn.rl.datamodule import OnlineRLDataModule

    return OnlineRLDataModule("robolearn.envs.planar_arm:robolearn/PlanarReach-v0",
                              {"agent_pos": "observation.state", "environment_state": "observation.environment_state"},
                              env_kwargs={"control": "velocity", "max_episode_steps": 10}, batch_size=4,
                              online_step_before_learning=5, stats_steps=10, drq_pad=0, **kw)


def test_datamodule_saves_with_its_state_dict_and_restores_at_connect(tmp_path, caplog):
    from robolearn.policies.sac import SACPolicy
    from tests.presets import smoke_policy_kwargs

    dm = _datamodule()
    dm.trainer = _Trainer(tmp_path, step=7)
    policy = SACPolicy(features=dm.features, stats=dm.stats, **smoke_policy_kwargs("sac"))
    dm.connect(policy)
    for _ in range(3):
        dm.next_batch()
    state = dm.state_dict()
    saved = state["replay_buffers"]
    assert saved == {"folder": "step_000007", "online": len(dm.online_buffer), "offline": 0}
    folder = tmp_path / "checkpoints" / "replay_buffers" / "step_000007"
    assert (folder / "online.safetensors").is_file()
    ckpt = tmp_path / "checkpoints" / "step_000007.ckpt"

    dm2 = _datamodule()
    dm2.trainer = _Trainer(tmp_path, ckpt_path=str(ckpt))
    dm2.load_state_dict(json.loads(json.dumps(state)))
    dm2.connect(policy)
    assert len(dm2.online_buffer) == saved["online"] and dm2.num_batches == 3
    for k, v in dm.online_buffer._storage.items():
        assert torch.equal(dm2.online_buffer._storage[k], v), k

    # a sidecar that does not match the checkpoint: empty buffers and a warning, training goes on
    meta = json.loads((folder / "meta.json").read_text())
    meta["buffers"]["online"]["size"] -= 1
    (folder / "meta.json").write_text(json.dumps(meta))
    dm3 = _datamodule()
    dm3.trainer = _Trainer(tmp_path, ckpt_path=str(ckpt))
    dm3.load_state_dict(state)
    with caplog.at_level(logging.WARNING):
        dm3.connect(policy)
    assert len(dm3.online_buffer) == 0 and "NOT restored" in caplog.text
    dm3.next_batch()  # warms up again

    off = _datamodule(save_replay_buffers=False)
    off.trainer = _Trainer(tmp_path / "off", step=1)
    off.connect(policy)
    off.next_batch()
    assert "replay_buffers" not in off.state_dict() and not (tmp_path / "off").exists()
