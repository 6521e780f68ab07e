"""Offline replay buffer filled from a real lerobot-written LeRobotDataset (PushT, 96×96 video + state)."""

from __future__ import annotations

import pytest
import torch

from robolearn.datasets import LeRobotDataset
from robolearn.rl.offline import buffer_from_dataset, dataset_transitions


@pytest.fixture(scope="module")
def pusht(shared_datasets):
    return LeRobotDataset("local/pusht_random", root=shared_datasets / "lerobot_written_pusht_random", episodes=[0, 1])


def test_transitions_follow_consecutive_frames_and_end_episodes(pusht):
    tr = dataset_transitions(pusht)
    n = len(pusht)
    assert tr["action"].shape == (n, 2) and tr["observation.image"].shape == (n, 3, 96, 96)
    assert tr["observation.image"].dtype == torch.uint8
    episode = torch.tensor([int(pusht[i]["episode_index"]) for i in range(n)])
    ends = torch.nonzero(torch.cat([episode[1:] != episode[:-1], torch.tensor([True])])).squeeze(1)
    assert tr["next.done"].nonzero().squeeze(1).tolist() == ends.tolist() and len(ends) == 2
    inner = torch.ones(n, dtype=torch.bool)
    inner[ends] = False
    # next observation of frame t is frame t + 1 within an episode ...
    assert torch.equal(tr["next.observation.state"][inner], tr["observation.state"][1:][inner[:-1]])
    assert torch.equal(tr["next.observation.image"][inner], tr["observation.image"][1:][inner[:-1]])
    # ... and the final frame's own observation at an episode end
    assert torch.equal(tr["next.observation.state"][ends], tr["observation.state"][ends])
    rewards = torch.tensor([float(pusht[i]["next.reward"]) for i in range(n)])
    assert torch.allclose(tr["next.reward"], rewards)
    assert torch.equal(tr["observation.state"][5], pusht[5]["observation.state"])


def test_buffer_from_dataset_counts_and_samples(pusht):
    buf = buffer_from_dataset(pusht, observation_keys=["observation.state"], n_step=2, discount=0.5)
    assert len(buf) == len(pusht) == 200
    assert buf.keys.count("observation.image") == 0
    b = buf.gather(torch.tensor([0, 99]))
    r0, r1 = float(pusht[0]["next.reward"]), float(pusht[1]["next.reward"])
    assert b["next.reward"][0].item() == pytest.approx(r0 + 0.5 * r1)
    assert b["next.n_steps"].tolist() == [2.0, 1.0] and b["next.done"].tolist() == [0.0, 1.0]
    with pytest.raises(KeyError, match="observation.environment_state"):
        dataset_transitions(pusht, observation_keys=["observation.environment_state"])
    with pytest.raises(ValueError, match="optimize_memory"):
        buffer_from_dataset(pusht, optimize_memory=True)
