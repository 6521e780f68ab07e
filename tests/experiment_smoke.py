"""Shared checks of the experiment scripts' smoke runs (``experiments/dagger_so101.py``, ``experiments/distill_vla.py``):
run a script in smoke mode in a temporary folder, and check the provenance, rows, episode seeds, table and resume
behaviour that every experiment's ``results.json`` must have."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from robolearn.utils.provenance import git_state

REPO = Path(__file__).resolve().parents[1]


class SmokeRun:
    """``python experiments/<script> --smoke --allow-dirty`` with its runs, results and data under ``tmp_path``.

    Attributes:
        cmd: the command line (list); ``env``: its environment (offline Hub, data dir in ``tmp_path / "data"``).
        runs, results: the ``--out`` and ``--results`` folders.
    """

    def __init__(self, script: str, tmp_path: Path, *extra: str):
        self.script = script
        self.runs, self.results = tmp_path / "runs", tmp_path / "results"
        self.data = tmp_path / "data"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROBOLEARN_DATA_DIR": str(self.data),
                    "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
        self.cmd = [sys.executable, f"experiments/{script}", "--smoke", "--allow-dirty", *extra,
                    "--out", str(self.runs), "--results", str(self.results)]

    def run(self, *more: str, timeout: int = 1500) -> subprocess.CompletedProcess:
        """Run the command (``more`` appended) from the repository root; output captured as text."""
        return subprocess.run([*self.cmd, *more], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def run_ok(self, *more: str, timeout: int = 1500) -> subprocess.CompletedProcess:
        """:meth:`run`, asserting exit status 0 (the output's tails in the message otherwise)."""
        proc = self.run(*more, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def record(self) -> dict:
        """The ``results.json`` written by the last run."""
        return json.loads((self.results / "results.json").read_text())

    def check_record(self, record: dict, arms: list[str]) -> str:
        """Provenance and rows of a smoke ``results.json`` whose rows are ``arms``; returns the commit it ran at.

        The commit is HEAD at the start of the run, or an ancestor of HEAD now when commits land while it runs.
        """
        commit = record["source"]["commit"]
        assert len(commit) == 40 and record["smoke"] is True
        assert subprocess.run(["git", "merge-base", "--is-ancestor", commit, git_state(REPO)["commit"]],
                              cwd=REPO).returncode == 0
        assert record["command"].startswith(f"python experiments/{self.script} --smoke")
        assert record["wall_s"] > 0 and record["compute_s"] > 0
        assert [r["arm"] for r in record["rows"]] == arms
        for row in record["rows"]:
            assert row["episodes"] == 2 and row["n_seeds"] == 1
            assert 0 <= row["ci95_low"] <= row["pc_success"] <= row["ci95_high"] <= 100
        return commit

    def check_same_episode_seeds(self, arms: list[str]) -> None:
        """Every arm (trained as ``<arm>/seed1000``) was evaluated on the same episode seeds."""
        infos = [json.loads((self.runs / arm / "seed1000" / "evals" / arm / "eval_info.json").read_text())
                 for arm in arms]
        assert len({json.dumps([e.get("seed") for e in info["per_episode"]]) for info in infos}) == 1

    def check_table(self, commit: str, arms: list[str]) -> str:
        """``table.md`` marked as a smoke run with the commit and a row per arm, and ``table.csv``; returns the table."""
        table = (self.results / "table.md").read_text()
        assert table.startswith("# SMOKE RUN") and f"commit {commit[:7]}" in table
        for arm in arms:
            assert f"| {arm} |" in table
        assert (self.results / "table.csv").read_text().startswith("arm,")
        return table

    def check_resume(self, record: dict, skipped: int, other_params_error: str) -> None:
        """A rerun skips ``skipped`` stages and keeps the rows; a rerun with other parameters is refused."""
        again = self.run_ok(timeout=900)
        assert again.stdout.count("(skipped)") == skipped
        assert self.record()["rows"] == record["rows"]
        other = self.run("--episodes", "3", timeout=300)
        assert other.returncode != 0 and other_params_error in other.stderr
