"""Shared helpers of the recording tests: a synthetic dataset whose every value is known."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
TASK = "synthetic task"
H, W = 32, 32
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
    "observation.images.cam": {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
}


def synth_frame(ep: int, i: int, task: str = TASK) -> dict:
    """Frame ``i`` of episode ``ep``: state [ep, i, 100 ep + i], action [i, -ep], a smooth image shifted by i."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([(4 * x + 6 * i) % 256, (4 * y + 20 * ep) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
    return {"observation.state": np.array([ep, i, 100 * ep + i], np.float32),
            "observation.images.cam": img,
            "action": np.array([i, -ep], np.float32), "task": task}


def write_synth(root: Path, episodes: list[int], n_frames: int = 6, streaming: bool = False, writer=None):
    """Record episodes with the given ``ep`` values (create a dataset at ``root`` unless ``writer`` is given)."""
    from robolearn.datasets.writer import LeRobotDatasetWriter

    w = writer or LeRobotDatasetWriter.create("test/synth", 10, FEATURES, root=root, vcodec="libx264",
                                              streaming_encoding=streaming)
    for ep in episodes:
        for i in range(n_frames):
            w.add_frame(synth_frame(ep, i))
        w.save_episode()
    return w


def assert_synth_episodes(root: Path, episodes: list[int], n_frames: int = 6) -> None:
    """The dataset at ``root`` loads with robolearn's reader and holds exactly these synthetic episodes."""
    from robolearn.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("test/synth", root=root)
    assert len(ds) == len(episodes) * n_frames
    assert ds.meta.total_episodes == len(episodes)
    for k, ep in enumerate(episodes):
        for i in (0, n_frames - 1):
            item = ds[k * n_frames + i]
            exp = synth_frame(ep, i)
            assert int(item["episode_index"]) == k and int(item["frame_index"]) == i
            np.testing.assert_array_equal(item["observation.state"].numpy(), exp["observation.state"])
            np.testing.assert_array_equal(item["action"].numpy(), exp["action"])
            assert abs(float(item["timestamp"]) - i / 10) < 1e-6
            img = item["observation.images.cam"].permute(1, 2, 0).numpy() * 255
            assert np.abs(img - exp["observation.images.cam"]).mean() < 12, "decoded frame differs from the recorded one"


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every non-temporary file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".tmp")}
