"""experiments/collect.py on a fabricated multirun directory: hand-checked table numbers and the plots."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from .test_train import REPO

sys.path.insert(0, str(REPO / "experiments"))
import collect  # noqa: E402

# chunk size -> seed -> pc_success at steps 100, 200, 300
SERIES = {
    "1": {"1000": [10, 20, 15], "1001": [12, 18, 18]},
    "20": {"1000": [40, 60, 50], "1001": [50, 70, 70]},
}


def _fake_sweep(root):
    job = 0
    for chunk, seeds in SERIES.items():
        for seed, values in seeds.items():
            d = root / str(job)
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "overrides.yaml").write_text(f"- policy.chunk_size={chunk}\n- seed={seed}\n")
            (d / "csv" / "version_0").mkdir(parents=True)
            lines = ["step,train/loss,eval/pc_success"]
            for i, v in enumerate(values):
                lines.append(f"{(i + 1) * 100 - 50},0.5,")
                lines.append(f"{(i + 1) * 100},,{v}")
            (d / "csv" / "version_0" / "metrics.csv").write_text("\n".join(lines) + "\n")
            job += 1
    (root / "99").mkdir()  # a job folder without results is ignored
    return root


def test_table_numbers(tmp_path):
    runs = collect.load_multirun(_fake_sweep(tmp_path / "sweep"), "eval/pc_success")
    assert len(runs) == 4
    rows = collect.summarize(runs, "eval/pc_success")
    assert [r["group"] for r in rows] == [{"policy.chunk_size": "1"}, {"policy.chunk_size": "20"}]
    r1, r20 = rows
    # chunk 1: best 20 and 18 -> 19 ± 1.414; last 15 and 18 -> 16.5 ± 2.121
    assert r1["n_seeds"] == 2
    np.testing.assert_allclose([r1["best_mean"], r1["best_std"]], [19.0, np.sqrt(2)])
    np.testing.assert_allclose([r1["last_mean"], r1["last_std"]], [16.5, np.std([15, 18], ddof=1)])
    # chunk 20: best 60 and 70 -> 65 ± 7.071; last 50 and 70 -> 60 ± 14.142
    np.testing.assert_allclose([r20["best_mean"], r20["best_std"], r20["last_mean"], r20["last_std"]],
                               [65.0, np.sqrt(50), 60.0, np.sqrt(200)])
    # loss-like metrics take the minimum as best
    loss_runs = collect.load_multirun(tmp_path / "sweep", "train/loss")
    assert collect.summarize(loss_runs, "train/loss")[0]["best_mean"] == 0.5


def test_cli_writes_table_csv_and_plots(tmp_path):
    sweep = _fake_sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "collect.py"), str(sweep), "--table", str(out / "t.md"),
         "--csv", str(out / "t.csv"), "--plot", str(out / "p.png"), "--curves", str(out / "c.png")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    table = (out / "t.md").read_text()
    assert "| policy.chunk_size | seeds | eval/pc_success best | eval/pc_success last |" in table
    assert "| 20 | 2 | 65.000 ± 7.071 | 60.000 ± 14.142 |" in table
    assert (out / "t.csv").read_text().splitlines()[1].startswith("1,2,19.0,")
    for name in ("p.png", "c.png"):
        img = np.asarray(Image.open(out / name))
        assert img.shape[0] > 100 and img.std() > 1


def test_empty_dir_is_an_error(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no Hydra job folders"):
        collect.load_multirun(tmp_path, "eval/pc_success")
