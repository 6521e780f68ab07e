"""Dataset visualization: a headless .rrd recording and the static HTML/PNG summary."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def pusht(shared_datasets):
    return shared_datasets / "lerobot_written_pusht_random"


def test_rrd_holds_every_frame_and_series(pusht, tmp_path):
    from robolearn.tools.viz import _open, log_episode_to_rerun

    ds = _open(pusht, 2)
    out = tmp_path / "ep2.rrd"
    log_episode_to_rerun(ds, save=out, spawn=False)
    assert out.stat().st_size > 10_000
    import collections

    from rerun.chunk import RrdReader

    rows = collections.Counter()
    for chunk in RrdReader(out).stream():
        rows[str(chunk.entity_path)] += chunk.num_rows
    # every frame: one image and one scalar per named dimension
    for path in ("/observation.image", "/observation.state/x", "/observation.state/y", "/action/x", "/action/y"):
        assert rows[path] == 100, (path, dict(rows))


def test_html_summary(pusht, tmp_path):
    out = tmp_path / "page"
    proc = subprocess.run([sys.executable, "-m", "robolearn.tools.viz", str(pusht), "--episode", "1",
                           "--html", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text()
    assert "episode 1" in page and "observation.state" in page and "100 frames" in page
    for name in ("features.png", "frames.png", "episode_lengths.png"):
        img = np.asarray(Image.open(out / name))
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 1  # a drawn picture, not blank


def test_unknown_episode_is_named(pusht):
    from robolearn.tools.viz import _open

    with pytest.raises(KeyError, match="episodes \\[42\\]"):
        _open(pusht, 42)
