"""Durability of the writer: saved episodes are flushed to the disk; a dataset killed during its first episode says
what to run, and resuming into it works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from robolearn.datasets.errors import EmptyDatasetError
from robolearn.datasets.lerobot_dataset import LeRobotDataset
from robolearn.datasets.repair import main as repair_main
from robolearn.datasets.validate import validate_dataset
from robolearn.datasets.writer import LeRobotDatasetWriter

FEATURES = {"observation.state": {"dtype": "float32", "shape": [2], "names": None},
            "action": {"dtype": "float32", "shape": [2], "names": None}}


def _frames(writer, n: int) -> None:
    for i in range(n):
        writer.add_frame({"observation.state": np.full(2, i, np.float32), "action": np.zeros(2, np.float32),
                          "task": "push"})


def test_save_episode_flushes_every_committed_file_and_folder(tmp_path, monkeypatch):
    synced: list[str] = []
    real_open, real_fsync = os.open, os.fsync
    names: dict[int, str] = {}

    def tracking_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        names[fd] = str(path)
        return fd

    def tracking_fsync(fd):
        synced.append(names.get(fd, "?"))
        return real_fsync(fd)

    writer = LeRobotDatasetWriter.create("a/b", 10, FEATURES, root=tmp_path / "ds")
    _frames(writer, 3)
    monkeypatch.setattr(os, "open", tracking_open)
    monkeypatch.setattr(os, "fsync", tracking_fsync)
    writer.save_episode()
    monkeypatch.undo()
    root = tmp_path / "ds"
    synced_files = {Path(p).name.split(".")[1] if Path(p).name.startswith(".") else Path(p).name for p in synced}
    for name in ("info", "stats", "tasks", "file-000"):
        assert any(s.startswith(name) for s in synced_files), (name, synced)
    assert {str(root / "meta"), str(root / "data" / "chunk-000")} <= set(synced)  # the renames themselves
    # fsync=False: nothing flushed (for throwaway data)
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    fast = LeRobotDatasetWriter.create("a/b", 10, FEATURES, root=tmp_path / "fast", fsync=False)
    _frames(fast, 2)
    fast.save_episode()
    assert calls == []


def test_killed_during_the_first_episode_says_what_to_run_and_resumes(tmp_path, capsys):
    root = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from robolearn.datasets.writer import LeRobotDatasetWriter
        w = LeRobotDatasetWriter.create("a/b", 10, {FEATURES!r}, root={str(root)!r})
        for i in range(5):
            w.add_frame({{"observation.state": np.zeros(2, np.float32), "action": np.zeros(2, np.float32),
                         "task": "push"}})
        os.kill(os.getpid(), signal.SIGKILL)  # killed before save_episode
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with pytest.raises(EmptyDatasetError, match=rf"{root} holds no saved episode .* dataset.root={root} resume=true"):
        LeRobotDataset("a/b", root=root)
    problems = [str(p) for p in validate_dataset(root)]
    assert len(problems) == 1 and "holds no saved episode" in problems[0]
    assert repair_main([str(root)]) == 0
    assert "holds no saved episode" in capsys.readouterr().out
    writer = LeRobotDatasetWriter.resume(root)  # what record.py resume=true does
    _frames(writer, 4)
    writer.save_episode()
    assert len(LeRobotDataset("a/b", root=root)) == 4 and validate_dataset(root) == []
