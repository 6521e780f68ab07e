"""Child process of test_crash.py: for each kill point, fork a process that records synthetic episode 0, then
dies by SIGKILL at that point of episode 1. Usage: python _crash_child.py <base dir> <point> [<point> ...]

Points: ``frames`` (mid-episode, streaming encoders running), ``encode`` (inside save_episode's video encoding),
``move<k>`` (inside save_episode after k of its os.replace calls).
"""

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from robolearn.datasets import writer as W  # noqa: E402
from tests.record.conftest import synth_frame, write_synth  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def run(root: Path, point: str) -> None:
    w = write_synth(root, [0], streaming=(point == "frames"))
    if point == "frames":
        for i in range(4):
            w.add_frame(synth_frame(1, i, task="second task"))
        time.sleep(0.5)  # mid-episode: the background encoders have opened their files
        die()
    for i in range(6):
        w.add_frame(synth_frame(1, i, task="second task"))
    if point == "encode":
        real = W.encode_video_frames

        def encode_then_die(frames, path, *a, **k):
            real(frames, path, *a, **k)
            die()
        W.encode_video_frames = encode_then_die
    else:
        k = int(point.removeprefix("move"))
        real_replace, calls = os.replace, [0]

        def replace_then_maybe_die(src, dst):
            if calls[0] == k:
                die()
            calls[0] += 1
            real_replace(src, dst)
        os.replace = replace_then_maybe_die
    w.save_episode()
    os._exit(0)  # reached only when the kill point lies beyond the save


if __name__ == "__main__":
    base = Path(sys.argv[1])
    pids = []
    for point in sys.argv[2:]:
        pid = os.fork()
        if pid == 0:
            try:
                run(base / point, point)
            finally:
                os._exit(3)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
