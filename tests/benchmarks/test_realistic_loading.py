"""benchmarks/realistic_loading.py at tiny scale: the generated dataset (robolearn's v3.0 writer, two cameras,
resumed and reused), the robolearn measurement end to end and the rows/keys of the results file; with the side venv
(``/work/lerobot_venv`` with ``lerobot[dataset]``), the lerobot probe too (skipped where it is missing, as in CI)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robolearn.datasets.lerobot_dataset import LeRobotDataset
from robolearn.utils import provenance

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "realistic_loading.py"
LEROBOT_PYTHON = Path("/work/lerobot_venv/bin/python")
ROW_KEYS = {
    "dataset", "num_workers", "robolearn_samples_per_s", "lerobot_samples_per_s", "ratio_robolearn_to_lerobot",
    "robolearn_peak_rss_main_mib", "robolearn_peak_rss_worker_mib", "robolearn_private_main_mib",
    "robolearn_private_worker_mib", "lerobot_peak_rss_main_mib", "lerobot_peak_rss_worker_mib",
    "lerobot_private_main_mib", "lerobot_private_worker_mib", "robolearn_pss_main_mib", "robolearn_pss_worker_mib",
    "lerobot_pss_main_mib", "lerobot_pss_worker_mib", "raw_decode_frames_per_s_single",
    "raw_decode_frames_per_s_default", "raw_decode_samples_per_s_bound_single",
}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("_bench_realistic_loading", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "out.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--allow-dirty", "--variants", "av1", "--work-dir",
           str(tmp_path / "work"), "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_help_and_dirty_refusal(bench, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--help"])
    with pytest.raises(SystemExit) as exc:
        bench.main()
    assert exc.value.code == 0 and "--allow-dirty" in capsys.readouterr().out
    monkeypatch.setattr(provenance, "git_state", lambda path: {"commit": "0" * 40, "dirty": True, "branch": "main",
                                                               "diff_sha256": "0" * 64})
    monkeypatch.setattr(sys, "argv", [str(SCRIPT)])
    with pytest.raises(SystemExit) as exc:  # refused before generating or measuring anything
        bench.main()
    assert "benchmarks/realistic_loading.py" in str(exc.value.code) and "--allow-dirty" in str(exc.value.code)


def test_synthetic_frames_are_deterministic_and_move(bench):
    cam = bench.SyntheticCamera(48, 64, seed=1)
    a, b = cam.frame(0, 5), cam.frame(0, 5)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(cam.frame(0, 6), a) and not np.array_equal(cam.frame(1, 5), a)
    assert not np.array_equal(bench.SyntheticCamera(48, 64, seed=2).frame(0, 5), a)
    with pytest.raises(ValueError, match="at least 8x8"):
        bench.SyntheticCamera(4, 64, seed=0)


def test_generate_resumes_then_reuses(bench, tmp_path):
    root = bench.dataset_dir(tmp_path, "av1", 2, 0.5, 48, 64, 10)
    first = bench.generate(root, "libsvtav1", 1, 0.5, 48, 64, 10)  # an interrupted run: 1 of 2 episodes
    assert first["episodes_written"] == 1 and not first["reused"]
    second = bench.generate(root, "libsvtav1", 2, 0.5, 48, 64, 10)
    assert second["episodes_written"] == 1 and not second["reused"]
    assert bench.generate(root, "libsvtav1", 2, 0.5, 48, 64, 10)["reused"]
    with pytest.raises(ValueError, match="more than the 1 asked"):
        bench.generate(root, "libsvtav1", 1, 0.5, 48, 64, 10)
    ds = LeRobotDataset("bench/realistic", root=root)
    assert ds.meta.total_episodes == 2 and len(ds) == 10 and ds.meta.video_keys == list(bench.CAMERAS)
    item = ds[7]
    assert tuple(item["observation.images.wrist"].shape) == (3, 48, 64)
    assert tuple(item["observation.state"].shape) == (6,) and tuple(item["action"].shape) == (6,)
    info = json.loads((root / "meta" / "info.json").read_text())
    video = info["features"]["observation.images.front"]["info"]
    assert video["video.codec"] == "av1" and video["video.pix_fmt"] == "yuv420p" and video["video.g"] == 2


@pytest.mark.timeout(300)
def test_quick_run_robolearn_only(tmp_path):
    rec = _run(tmp_path, "--workers", "0", "--lerobot-python", "none")
    assert rec["benchmark"] == "realistic_loading"
    assert {"source", "command", "hardware", "versions", "wall_s", "settings", "datasets", "rows", "runs"} <= set(rec)
    assert rec["lerobot"]["measured"] is False and "not measured" in rec["lerobot"]["why_not"]
    ds = rec["datasets"]["av1"]
    assert ds["episodes"] == 2 and ds["image"] == [48, 64] and ds["codec"] == "libsvtav1"
    assert len(ds["fingerprint"]) == 64 and ds["raw_decode"]["frames_per_s_single"] > 0
    assert set(ds["raw_decode"]["per_camera"]) == {"observation.images.front", "observation.images.wrist"}
    [row] = rec["rows"]
    assert set(row) == ROW_KEYS
    assert row["dataset"] == "av1" and row["num_workers"] == 0
    assert row["robolearn_samples_per_s"] > 0 and row["robolearn_peak_rss_main_mib"] > 0
    assert row["robolearn_peak_rss_worker_mib"] is None  # no workers
    assert row["lerobot_samples_per_s"] is None and row["ratio_robolearn_to_lerobot"] is None
    [run] = rec["runs"]["av1/workers_0/robolearn"]
    assert run["image_batch_shape"] == [32, 2, 3, 48, 64] and run["action_batch_shape"] == [32, 50, 6]
    # the README row formatter reads this file (a ratio without lerobot is a dash)
    spec = importlib.util.spec_from_file_location("_bench_readme_table", REPO / "benchmarks" / "readme_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    bench_cell, result_cell = table._realistic_loading(rec)
    assert "2 × 1 s, 2 cameras 64×48" in bench_cell and result_cell.startswith("AV1: – (0 workers;")


@pytest.mark.timeout(300)
def test_quick_run_against_lerobot(bench, tmp_path):
    why = bench.lerobot_unavailable(LEROBOT_PYTHON)
    if why:
        pytest.skip(f"lerobot side venv not usable: {why}")
    rec = _run(tmp_path, "--workers", "2", "--lerobot-python", str(LEROBOT_PYTHON))
    assert rec["lerobot"]["measured"] is True
    [row] = rec["rows"]
    assert set(row) == ROW_KEYS and row["num_workers"] == 2
    assert row["lerobot_samples_per_s"] > 0 and row["ratio_robolearn_to_lerobot"] > 0
    for lib in ("robolearn", "lerobot"):
        assert row[f"{lib}_peak_rss_worker_mib"] > 0 and row[f"{lib}_private_worker_mib"] > 0
        [run] = rec["runs"][f"av1/workers_2/{lib}"]
        assert run["image_batch_shape"] == [32, 2, 3, 48, 64] and run["action_batch_shape"] == [32, 50, 6]
        assert len(run["peak_rss_mib"]["workers"]) == 2
    assert rec["runs"]["av1/workers_2/lerobot"][0]["versions"]["lerobot"] == "0.6.1"
