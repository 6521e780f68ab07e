"""``info`` summary and the validator: a clean dataset reports nothing; planted defects are found and located."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robolearn.tools.info import dataset_summary
from robolearn.tools.info import main as info_main
from robolearn.datasets.validate import has_errors, validate_dataset

from tests.tools.test_edit import CAM, LENGTHS, make_tiny

DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
VIDEO = f"videos/{CAM}/chunk-000/file-000.mp4"


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("info") / "tiny")


@pytest.fixture()
def copy(clean, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(clean, dst)
    return dst


def _errors(root: Path):
    return [p for p in validate_dataset(root) if p.severity == "error"]


def test_clean_dataset_has_no_problems(clean, capsys):
    assert validate_dataset(clean) == []
    assert info_main([str(clean), "--validate"]) == 0
    out = capsys.readouterr().out
    assert "0 error(s), 0 warning(s)" in out and "av1 16x16" in out
    s = dataset_summary(clean)
    assert (s["episodes"], s["frames"], s["fps"]) == (4, sum(LENGTHS), 10)
    assert s["tasks"] == ["pick", "place"] and s["codecs"][CAM].startswith("av1")
    assert s["features"]["observation.state"]["shape"] == [3] and s["sizes"]["videos"] > 0


def test_real_lerobot_dataset_is_clean(shared_datasets):
    assert validate_dataset(shared_datasets / "lerobot_written_pusht_random") == []


def test_index_gap_is_located(copy, capsys):
    t = pq.read_table(copy / DATA)
    idx = t.column("index").to_numpy().copy()
    idx[7:] += 1  # gap between rows 6 and 7
    t = t.set_column(t.column_names.index("index"), "index", pa.array(idx))
    pq.write_table(t, copy / DATA)
    errs = _errors(copy)
    gap = [p for p in errs if "index jumps from 6 to 8" in p.message]
    assert gap and gap[0].location == f"{DATA} row 7"
    assert info_main([str(copy), "--validate"]) == 1
    assert "index jumps" in capsys.readouterr().out


def test_wrong_to_timestamp_is_located(copy):
    t = pq.read_table(copy / EPISODES)
    col = f"videos/{CAM}/to_timestamp"
    v = t.column(col).to_numpy().copy()
    v[2] += 0.5
    t = t.set_column(t.column_names.index(col), col, pa.array(v))
    pq.write_table(t, copy / EPISODES)
    errs = _errors(copy)
    assert len(errs) == 1, errs
    assert errs[0].location == f"{VIDEO} episode 2" and "to_timestamp" in errs[0].message


def test_stats_shape_error_is_located(copy):
    stats = json.loads((copy / "meta/stats.json").read_text())
    stats["action"]["mean"] = [0.0, 0.0, 0.0]
    del stats["observation.state"]["q99"]
    (copy / "meta/stats.json").write_text(json.dumps(stats))
    probs = validate_dataset(copy)
    shape = [p for p in probs if p.location == "meta/stats.json action/mean"]
    assert shape and "expected [2]" in shape[0].message and shape[0].severity == "error"
    assert any(p.location == "meta/stats.json observation.state" and "q99" in p.message for p in probs)


def test_truncated_mp4_is_located(copy):
    path = copy / VIDEO
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size * 2 // 3)
    errs = _errors(copy)
    assert any(p.location == VIDEO and "truncated" in p.message for p in errs), errs
    # The episodes whose frames were cut off are named too.
    assert any(p.location.startswith(f"{VIDEO} episode 3") for p in errs)
    assert has_errors(errs)


def test_frame_index_and_timestamp_defects(copy):
    t = pq.read_table(copy / DATA)
    fi = t.column("frame_index").to_numpy().copy()
    ts = t.column("timestamp").to_numpy().copy()
    fi[LENGTHS[0]] = 5  # episode 1 does not restart at 0
    ts[2] += 0.01
    t = t.set_column(t.column_names.index("frame_index"), "frame_index", pa.array(fi))
    t = t.set_column(t.column_names.index("timestamp"), "timestamp", pa.array(ts))
    pq.write_table(t, copy / DATA)
    errs = _errors(copy)
    assert any(p.location == f"{DATA} row {LENGTHS[0]}" and "frame_index" in p.message for p in errs), errs
    assert any(p.location == f"{DATA} row 2" and "frame_index/fps" in p.message for p in errs), errs


def test_totals_and_unreferenced_data_file(copy):
    info = json.loads((copy / "meta/info.json").read_text())
    info["total_frames"] += 1
    (copy / "meta/info.json").write_text(json.dumps(info))
    t = pq.read_table(copy / DATA)
    stray = t.slice(0, 2).set_column(t.column_names.index("episode_index"), "episode_index", pa.array([9, 9]))
    pq.write_table(stray, copy / "data/chunk-000/file-001.parquet")
    errs = _errors(copy)
    locs = {p.location: p.message for p in errs}
    assert "total_frames" in " ".join(locs) and f"{sum(LENGTHS)}" in locs["meta/info.json total_frames"]
    assert "not referenced" in locs["data/chunk-000/file-001.parquet"]
    assert "episode_index 9" in locs["data/chunk-000/file-001.parquet row 0"]


def test_unreadable_dataset_exit_code(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30}))
    probs = validate_dataset(tmp_path)
    assert len(probs) == 1 and probs[0].location == "meta/info.json" and "v2.1" in probs[0].message
    assert info_main([str(tmp_path)]) == 2
