"""Write evaluation outputs: ``eval_info.json``, MP4 videos and a per-episode plot."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from robolearn.eval.metrics import EpisodeResult

EVAL_INFO_NAME = "eval_info.json"
PLOT_NAME = "eval_plot.png"


def write_eval_info(path: str | os.PathLike, info: Mapping[str, Any]) -> Path:
    """Write ``info`` as indented JSON to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        json.dump(info, fh, indent=2)
    os.replace(tmp, path)
    return path


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: int, vcodec: str = "h264") -> Path:
    """Encode ``frames`` (uint8 (H, W, 3) each) to an MP4 at ``fps`` with PyAV (H.264 by default, playable
    everywhere). Odd frame sizes are cropped by one pixel (yuv420p needs even sizes).

    Raises:
        ValueError: no frames, or frames that are not uint8 (H, W, 3).
    """
    from robolearn.datasets.video_encode import encode_video_frames

    if len(frames) == 0:
        raise ValueError(f"write_video: no frames for {path}")
    video = np.stack([np.asarray(f) for f in frames])
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"write_video: frames must be uint8 (H, W, 3), got {video.dtype} {video.shape[1:]}")
    h, w = video.shape[1] // 2 * 2, video.shape[2] // 2 * 2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode_video_frames(np.ascontiguousarray(video[:, :h, :w]), path, fps=fps, vcodec=vcodec, g=None)


def plot_episodes(episodes: Sequence[EpisodeResult], path: str | os.PathLike, title: str = "") -> Path:
    """PNG with two panels over episode index: success (bars) and sum / max reward (lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = [e.episode_index for e in episodes]
    fig, (ax_s, ax_r) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    ax_s.bar(idx, [float(e.success) for e in episodes], color=["tab:green" if e.success else "tab:red" for e in episodes])
    ax_s.set_ylabel("success")
    ax_s.set_ylim(0, 1.05)
    pc = 100.0 * sum(e.success for e in episodes) / max(len(episodes), 1)
    ax_s.set_title(f"{title}  success {pc:.1f}% over {len(episodes)} episodes".strip())
    ax_r.plot(idx, [e.sum_reward for e in episodes], "o-", label="sum reward")
    ax_r.plot(idx, [e.max_reward for e in episodes], "s--", label="max reward")
    ax_r.set_xlabel("episode")
    ax_r.set_ylabel("reward")
    ax_r.legend(loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
