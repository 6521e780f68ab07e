"""SIGKILL at any moment loses at most the episode in progress; repair and resume recover the folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from robolearn.datasets.repair import check_dataset, main as repair_main, repair_dataset
from robolearn.datasets.writer import LeRobotDatasetWriter
from tests.record.conftest import REPO, assert_synth_episodes, write_synth

POINTS = ["frames", "encode"] + [f"move{k}" for k in range(1, 7)]


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("killed")
    subprocess.run([sys.executable, str(REPO / "tests" / "record" / "_crash_child.py"), str(base), *POINTS],
                   check=True, timeout=120)
    return base


def test_kill_points_keep_saved_episodes_and_repair_then_resume(killed):
    left_dirty = 0
    for point in POINTS:
        root = killed / point
        info = json.loads((root / "meta" / "info.json").read_text())
        committed = list(range(info["total_episodes"]))
        assert committed in ([0], [0, 1]), point
        if point in ("frames", "encode"):
            assert committed == [0], f"{point}: nothing of episode 1 may be committed"
        problems = check_dataset(root)
        left_dirty += bool(problems)
        if problems:
            with pytest.raises(RuntimeError, match="robolearn.datasets.repair"):
                LeRobotDatasetWriter.resume(root)
        fixed = repair_dataset(root)
        assert len(fixed) == len(problems)
        assert check_dataset(root) == [], point
        assert not list(root.rglob("*.tmp")), point
        assert_synth_episodes(root, committed)
        # Resume appends after the committed episodes.
        w = LeRobotDatasetWriter.resume(root)
        write_synth(root, [7], writer=w)
        assert_synth_episodes(root, committed + [7])
    assert left_dirty >= 5, "most kill points must leave something for repair to fix"


def test_frames_kill_leaves_committed_files_byte_identical(tmp_path):
    from tests.record.conftest import tree_digest

    root = tmp_path / "ds"
    write_synth(root, [0])
    before = tree_digest(root)
    subprocess.run([sys.executable, str(REPO / "tests" / "record" / "_crash_child.py"), str(tmp_path), "frames"],
                   check=True, timeout=60)
    after = tree_digest(tmp_path / "frames")
    assert after.keys() == before.keys()
    # Same synthetic content, so even the bytes of every committed file match a clean one-episode dataset.
    assert {k: v for k, v in after.items() if not k.startswith("meta/info")} == \
        {k: v for k, v in before.items() if not k.startswith("meta/info")}
    assert list((tmp_path / "frames").rglob(".episode-stream*.tmp")), "the killed streaming encoder's file stays"
    # Reader ignores the stray file; the repair CLI removes it.
    assert_synth_episodes(tmp_path / "frames", [0])
    assert repair_main([str(tmp_path / "frames")]) == 0
    assert not list((tmp_path / "frames").rglob("*.tmp"))



def test_repair_planted_cut_write(tmp_path):
    """info.json of 1 episode, but data/mp4/episodes/stats/tasks already hold episode 1, plus a stray .tmp."""
    from robolearn.datasets.video_encode import get_video_duration_s

    root = tmp_path / "ds"
    w = write_synth(root, [0])
    old_info = (root / "meta" / "info.json").read_bytes()
    for i in range(6):
        from tests.record.conftest import synth_frame

        w.add_frame(synth_frame(1, i, task="another task"))
    w.save_episode()
    (root / "meta" / "info.json").write_bytes(old_info)
    (root / "data" / "chunk-000" / ".file-000.parquet.123.1.tmp").write_bytes(b"partial")
    mp4 = root / "videos" / "observation.images.cam" / "chunk-000" / "file-000.mp4"
    assert get_video_duration_s(mp4) == pytest.approx(1.2, abs=1e-3)
    problems = check_dataset(root)
    assert len(problems) == 6, problems  # tmp, episodes, data, video, tasks, stats
    report = repair_dataset(root)
    assert all(line.startswith("fixed: ") for line in report) and len(report) == 6
    assert get_video_duration_s(mp4) == pytest.approx(0.6, abs=1e-3)
    assert check_dataset(root) == []
    assert_synth_episodes(root, [0])
