"""experiments/collect.py on a fabricated multirun directory: hand-checked table numbers, the plots, and the
provenance checks (against a throw-away git repository, so they do not depend on this checkout's state)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _fake_repo(root):
    """A git repository whose first commit lacks conf/experiment/chunks.yaml and whose second adds it."""
    root.mkdir()
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    (root / "conf" / "policy").mkdir(parents=True)
    (root / "conf" / "policy" / "act.yaml").write_text("chunk_size: 20\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "policy")
    old = _git(root, "rev-parse", "HEAD")
    (root / "conf" / "experiment").mkdir()
    (root / "conf" / "experiment" / "chunks.yaml").write_text("# @package _global_\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "experiment")
    return root, old, _git(root, "rev-parse", "HEAD")


def _provenance(job, commit, dirty=False):
    git = {"commit": commit, "dirty": dirty, "branch": "main", **({"diff_sha256": "ab" * 32} if dirty else {})}
    with open(job / "provenance.jsonl", "a") as f:
        f.write(json.dumps({"git": git, "seed": 1000}) + "\n")


def _fake_sweep(root, commit=None):
    """The SERIES sweep; with ``commit`` every job records a clean start at it and selected experiment=chunks."""
    job = 0
    for chunk, seeds in SERIES.items():
        for seed, values in seeds.items():
            d = root / str(job)
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "overrides.yaml").write_text(f"- policy.chunk_size={chunk}\n- seed={seed}\n")
            (d / ".hydra" / "hydra.yaml").write_text(
                "hydra:\n  runtime:\n    choices:\n      experiment: chunks\n      policy: act\n"
                "      hydra/launcher: basic\n      logger: null\n")
            if commit:
                _provenance(d, commit)
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


def _collect(*args):
    return subprocess.run([sys.executable, str(REPO / "experiments" / "collect.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_table_csv_and_plots(tmp_path):
    repo, _, head = _fake_repo(tmp_path / "repo")
    sweep = _fake_sweep(tmp_path / "sweep", commit=head)
    out = tmp_path / "out"
    proc = _collect(sweep, "--repo", repo, "--table", out / "t.md", "--csv", out / "t.csv", "--plot", out / "p.png",
                    "--curves", out / "c.png")
    assert proc.returncode == 0, proc.stderr
    table = (out / "t.md").read_text()
    assert "| policy.chunk_size | seeds | eval/pc_success best | eval/pc_success last | commit |" in table
    assert f"| 20 | 2 | 65.000 ± 7.071 | 60.000 ± 14.142 | {head[:7]} |" in table
    assert (out / "t.csv").read_text().splitlines()[1].startswith("1,2,19.0,")
    assert (out / "t.csv").read_text().splitlines()[1].endswith(f",{head},0")
    for name in ("p.png", "c.png"):
        img = np.asarray(Image.open(out / name))
        assert img.shape[0] > 100 and img.std() > 1


def test_empty_dir_is_an_error(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no Hydra job folders"):
        collect.load_multirun(tmp_path, "eval/pc_success")


def test_provenance_checks_refuse_dirty_foreign_and_unrecorded_runs(tmp_path):
    repo, old, head = _fake_repo(tmp_path / "repo")
    sweep = _fake_sweep(tmp_path / "sweep", commit=head)
    runs = collect.load_multirun(sweep, "eval/pc_success", repo=repo)
    assert [r.problems for r in runs] == [[]] * 4 and all(r.commits == [head] for r in runs)

    jobs = sorted(p for p in sweep.iterdir() if (p / "provenance.jsonl").is_file())
    _provenance(jobs[0], head, dirty=True)  # resumed from a dirty tree
    (jobs[1] / "provenance.jsonl").write_text("")
    _provenance(jobs[1], old)  # a commit without conf/experiment/chunks.yaml
    (jobs[2] / "provenance.jsonl").unlink()
    (jobs[3] / "provenance.jsonl").write_text("")
    _provenance(jobs[3], "f" * 40)  # not in the repository
    problems = {Path(r.path).name: r.problems for r in collect.load_multirun(sweep, "eval/pc_success", repo=repo)}
    assert "dirty tree" in problems[jobs[0].name][0]
    assert problems[jobs[1].name] == [f"{jobs[1]}: commit {old[:7]} does not contain conf/experiment/chunks.yaml, "
                                      "which the run selected"]
    assert "no provenance.jsonl" in problems[jobs[2].name][0]
    assert "is not in the repository" in problems[jobs[3].name][0]

    refused = _collect(sweep, "--repo", repo, "--table", tmp_path / "t.md")
    assert refused.returncode != 0 and "refusing runs whose provenance does not hold" in refused.stderr
    assert not (tmp_path / "t.md").exists()
    allowed = _collect(sweep, "--repo", repo, "--allow-dirty", "--table", tmp_path / "t.md")
    assert allowed.returncode == 0, allowed.stderr
    assert "UNVERIFIED (2/2 runs)" in (tmp_path / "t.md").read_text()


def test_runs_resumed_at_another_commit_are_unverified(tmp_path):
    repo, old, head = _fake_repo(tmp_path / "repo")
    sweep = _fake_sweep(tmp_path / "sweep", commit=head)
    job = sorted(p for p in sweep.iterdir() if (p / "provenance.jsonl").is_file())[0]
    _provenance(job, old)
    commits, problems = collect.check_provenance(job, repo)
    assert commits == [head, old]
    assert any("different commits" in p for p in problems)
