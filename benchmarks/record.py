"""Recording benchmark: 2 cameras at 640x480, 30 fps, simulated SO-101 + scripted expert.

Cameras: the MuJoCo software renderer cannot draw two 640x480 views at 30 fps on a CPU machine, so the sim robot
runs state-only (physics + expert) and two *fake* cameras deliver 640x480 RGB frames (8 precomputed frames
cycled, so the camera itself costs ~nothing and the numbers measure the loop, the writer and the encoder).

For each video-encoding mode of the writer (``sync``: encode inside ``save_episode`` right after the episode;
``streaming``: background threads encode during the episode), with and without flushing the saved files to the
disk (``fsync``, the writer's default, so that a power loss cannot lose a saved episode), it records
``--episodes`` episodes of ``--episode-s`` seconds and reports the achieved loop rate, overruns, and the time from
episode end to ``save_episode()`` return. Writes ``benchmarks/results/record.json`` with the provenance of
:func:`robolearn.utils.provenance.results_header` (commit, refused on a dirty tree unless ``--allow-dirty``;
command, hardware, versions, wall time, load average at start and end).

    python benchmarks/record.py [--episodes 2] [--episode-s 4] [--allow-dirty]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from robolearn.datasets.writer import LeRobotDatasetWriter  # noqa: E402
from robolearn.record.frames import robot_dataset_features  # noqa: E402
from robolearn.record.loop import control_loop  # noqa: E402
from robolearn.robots.cameras.fake import FakeCamera  # noqa: E402
from robolearn.robots.sim import SO101SimRobot  # noqa: E402
from robolearn.teleop.scripted import ScriptedTeleop  # noqa: E402
from robolearn.utils import provenance  # noqa: E402


class CachedFakeCamera(FakeCamera):
    """FakeCamera cycling through 8 precomputed frames (no per-frame image synthesis)."""

    def connect(self) -> None:
        super().connect()
        self._cache = [super(CachedFakeCamera, self).frame(k) for k in range(8)]

    def async_read(self, timeout_ms: float = 200.0) -> np.ndarray:
        self.frames_delivered += 1
        return self._cache[self.frames_delivered % 8]


def run_mode(mode: str, episodes: int, episode_s: float, fps: int, root: Path, fsync: bool = True) -> dict:
    cams = {"front": CachedFakeCamera(640, 480, fps, name="front"), "wrist": CachedFakeCamera(640, 480, fps, name="wrist")}
    robot = SO101SimRobot(fps=fps, camera=None, cameras=cams, max_episode_steps=10_000)
    teleop = ScriptedTeleop(robot)
    feats = robot_dataset_features(robot)
    w = LeRobotDatasetWriter.create("bench/record", fps, feats, root=root, streaming_encoding=(mode == "streaming"),
                                    fsync=fsync)
    robot.connect()
    out = []
    try:
        for ep in range(episodes):
            robot.reset(seed=ep)
            stats = control_loop(robot, teleop.get_action, fps, episode_s, writer=w, features=feats, task="bench")
            t0 = time.perf_counter()
            w.save_episode()
            save_s = time.perf_counter() - t0
            out.append({**stats.as_dict(), "save_episode_s": save_s, "commit_s": w.last_commit_s})
    finally:
        robot.disconnect()
    return {"vcodec": w.vcodec, "fsync": fsync, "episodes": out,
            "mean_achieved_hz": float(np.mean([e["achieved_hz"] for e in out])),
            "mean_save_episode_s": float(np.mean([e["save_episode_s"] for e in out])),
            "mean_commit_s": float(np.mean([e["commit_s"] for e in out])),
            "total_overruns": int(sum(e["overruns"] for e in out))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--episode-s", type=float, default=4.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "record.json")
    ap.add_argument("--allow-dirty", action="store_true", help="measure uncommitted code (the result says so)")
    a = ap.parse_args()
    try:
        header = provenance.results_header(Path(__file__).resolve().parents[1], allow_dirty=a.allow_dirty)
    except provenance.SourceStateError as e:
        sys.exit(f"benchmarks/record.py: {e}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_record_"))
    try:
        results = {f"{m}{'' if fsync else '_no_fsync'}": run_mode(m, a.episodes, a.episode_s, a.fps,
                                                                    tmp / f"{m}_{fsync}", fsync=fsync)
                   for m in ("sync", "streaming") for fsync in (True, False)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "benchmark": "record loop, 2 cameras 640x480 @ 30 fps, SO-101 sim (state-only physics + scripted expert)",
        "cameras": "fake (CachedFakeCamera): MuJoCo software rendering of two 640x480 views cannot reach 30 fps here",
        **provenance.finish_header(header),
        "fps": a.fps, "episodes": a.episodes, "episode_s": a.episode_s, "tmp_dir": str(tmp.parent),
        "modes": results,
        # the part of save_episode that fsync changes: moving the staged files into place (and flushing them)
        "fsync_cost_s": {m: round(results[m]["mean_commit_s"] - results[f"{m}_no_fsync"]["mean_commit_s"], 4)
                         for m in ("sync", "streaming")},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({m: {k: v for k, v in r.items() if k != "episodes"} for m, r in results.items()}, indent=2))


if __name__ == "__main__":
    main()
