"""Import Diffusion Policy's PushT zarr replay buffer into a LeRobotDataset v3.0 folder.

Source layout (``pusht_cchi_v7_replay.zarr``, zarr v2):

- ``data/img`` float32 ``(N, 96, 96, 3)`` RGB in 0..255
- ``data/state`` float32 ``(N, 5)``: agent x, agent y, block x, block y, block angle (rad); pixels in 0..512
- ``data/keypoint`` float32 ``(N, 9, 2)``: block keypoints (pixels)
- ``data/action`` float32 ``(N, 2)``: target agent position (pixels)
- ``data/n_contacts`` float32 ``(N, 1)`` (not imported)
- ``meta/episode_ends`` int64 ``(E,)``: exclusive end index of each episode

Output features: ``observation.image`` (video 96×96×3), ``observation.state`` = agent (x, y), ``action`` (x, y),
``observation.environment_state`` = the 9 keypoints flattened to 18 values ``(x0, y0, x1, y1, ...)``,
``next.reward`` and ``next.success`` from the block pose of the same frame (see :func:`pusht_coverage`), and
the task ``"Push the T-shaped block onto the target."``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.datasets.writer import LeRobotDatasetWriter

PUSHT_TASK = "Push the T-shaped block onto the target."
PUSHT_GOAL_POSE = (256.0, 256.0, math.pi / 4)  # x, y (pixels), angle (rad) of the target T
PUSHT_SUCCESS_THRESHOLD = 0.95

# The T block of gym-pusht / Diffusion Policy (``add_tee`` with scale 30, length 4), in body coordinates
# (pixels): a 120×30 bar and a 30×90 stem; they share an edge, so the T's area is 3600 + 2700 = 6300 px².
_T_SCALE, _T_LENGTH = 30.0, 4.0
T_BODY_RECTS = (
    np.array([[-_T_LENGTH * _T_SCALE / 2, _T_SCALE], [_T_LENGTH * _T_SCALE / 2, _T_SCALE],
              [_T_LENGTH * _T_SCALE / 2, 0.0], [-_T_LENGTH * _T_SCALE / 2, 0.0]]),
    np.array([[-_T_SCALE / 2, _T_SCALE], [-_T_SCALE / 2, _T_LENGTH * _T_SCALE],
              [_T_SCALE / 2, _T_LENGTH * _T_SCALE], [_T_SCALE / 2, _T_SCALE]]),
)
T_AREA = 6300.0


def t_block_polygons(x: float, y: float, angle: float) -> list[np.ndarray]:
    """World vertices ``(4, 2)`` of the T's two rectangles for a body pose: ``p + R(angle) @ v``.

    ``(x, y)`` is the body origin as pymunk's ``Body.position`` reports it (what the replay buffer's state
    stores), ``angle`` in radians.
    """
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return [r @ rot.T + np.array([x, y]) for r in T_BODY_RECTS]


def _polygon_area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _clip_convex(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland–Hodgman: the part of convex polygon ``subject`` inside convex polygon ``clip``."""
    # Orient the clip polygon counter-clockwise so "inside" is left of every edge.
    x, y = clip[:, 0], clip[:, 1]
    if np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) < 0:
        clip = clip[::-1]
    out = list(subject)
    n = len(clip)
    for i in range(n):
        a, b = clip[i], clip[(i + 1) % n]
        edge = b - a
        inp, out = out, []
        if not inp:
            break

        def side(p: np.ndarray) -> float:
            return edge[0] * (p[1] - a[1]) - edge[1] * (p[0] - a[0])

        prev = inp[-1]
        sp = side(prev)
        for cur in inp:
            sc = side(cur)
            if sc >= 0:
                if sp < 0:
                    out.append(prev + (cur - prev) * (sp / (sp - sc)))
                out.append(cur)
            elif sp >= 0:
                out.append(prev + (cur - prev) * (sp / (sp - sc)))
            prev, sp = cur, sc
    return np.array(out) if out else np.zeros((0, 2))


def pusht_coverage(block_x: float, block_y: float, block_angle: float,
                   goal_pose: tuple[float, float, float] = PUSHT_GOAL_POSE) -> float:
    """Fraction of the goal T's area covered by the block T, in [0, 1] (gym-pusht's ``coverage``).

    Both T's are unions of two rectangles with disjoint interiors, so the intersection area is the sum of the
    four rectangle-rectangle intersections (exact convex clipping).
    """
    block = t_block_polygons(block_x, block_y, block_angle)
    goal = t_block_polygons(*goal_pose)
    inter = sum(_polygon_area(_clip_convex(b, g)) for b in block for g in goal)
    return float(min(max(inter / T_AREA, 0.0), 1.0))


def pusht_reward_success(state: np.ndarray, threshold: float = PUSHT_SUCCESS_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """PushT reward ``clip(coverage / threshold, 0, 1)`` (float32) and success ``coverage > threshold`` (bool).

    Args:
        state: ``(T, 5)`` replay-buffer states (agent x, agent y, block x, block y, block angle).

    Returns:
        ``(reward (T,), success (T,))``, computed from each frame's own block pose.
    """
    cov = np.array([pusht_coverage(float(s[2]), float(s[3]), float(s[4])) for s in np.asarray(state)])
    return np.clip(cov / threshold, 0.0, 1.0).astype(np.float32), cov > threshold


def pusht_features() -> dict[str, dict[str, Any]]:
    """The features the importer writes (lerobot feature dicts, without the 5 defaults)."""
    return {
        "observation.image": {"dtype": "video", "shape": [96, 96, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "observation.environment_state": {
            "dtype": "float32", "shape": [18], "names": [f"keypoint_{i}.{c}" for i in range(9) for c in "xy"]},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
    }


def convert_pusht_zarr(zarr_path: str | os.PathLike, repo_id: str, root: str | os.PathLike, fps: int = 10,
                       max_episodes: int | None = None, vcodec: str = "auto", task: str = PUSHT_TASK,
                       progress: bool = True, **writer_kwargs: Any) -> Path:
    """Convert the PushT replay buffer at ``zarr_path`` into a new dataset at ``root``.

    Args:
        zarr_path: the ``.zarr`` folder.
        repo_id: recorded in the dataset (e.g. ``"local/pusht"``).
        root: output folder; must not exist.
        fps: frame rate of the recording (10 for PushT).
        max_episodes: convert only the first N episodes (None: all).
        vcodec: video encoder (see :class:`LeRobotDatasetWriter`).
        task: the task string of every frame.
        progress: show a tqdm progress bar over episodes.
        writer_kwargs: passed on to :meth:`LeRobotDatasetWriter.create`.

    Returns:
        The dataset root.

    Raises:
        FileExistsError: ``root`` exists. KeyError: an expected zarr array is missing.
    """
    import zarr

    z = zarr.open(str(zarr_path), mode="r")
    ends = np.asarray(z["meta/episode_ends"][:], dtype=np.int64)
    img, state, keypoint, action = z["data/img"], z["data/state"], z["data/keypoint"], z["data/action"]
    n_eps = len(ends) if max_episodes is None else min(int(max_episodes), len(ends))
    starts = np.concatenate([[0], ends[:-1]])
    it = range(n_eps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="pusht zarr -> LeRobotDataset", unit="ep")
    with LeRobotDatasetWriter.create(repo_id, fps, pusht_features(), root=root, robot_type="pusht",
                                     vcodec=vcodec, **writer_kwargs) as w:
        for ep in it:
            s, e = int(starts[ep]), int(ends[ep])
            frames = np.clip(np.round(np.asarray(img[s:e])), 0, 255).astype(np.uint8)
            st = np.asarray(state[s:e], dtype=np.float32)
            kp = np.asarray(keypoint[s:e], dtype=np.float32).reshape(e - s, 18)
            act = np.asarray(action[s:e], dtype=np.float32)
            reward, success = pusht_reward_success(st)
            for i in range(e - s):
                w.add_frame({
                    "observation.image": frames[i],
                    "observation.state": st[i, :2].copy(),
                    "action": act[i],
                    "observation.environment_state": kp[i],
                    "next.reward": reward[i:i + 1],
                    "next.success": success[i:i + 1],
                    "task": task,
                })
            w.save_episode()
    return Path(root)


def main_zarr(args: Any) -> None:
    """CLI entry for ``python -m robolearn.tools.convert zarr ...`` (see ``__main__``)."""
    t0 = time.perf_counter()
    root = convert_pusht_zarr(args.path, args.repo_id, args.root, fps=args.fps, max_episodes=args.max_episodes,
                              vcodec=args.vcodec, task=args.task, progress=not args.no_progress)
    print(f"wrote {root} in {time.perf_counter() - t0:.1f} s")
