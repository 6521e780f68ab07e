"""The import contracts of pyproject.toml hold, and they catch an upward import when one is added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    cache = root / ".grimp_cache_test"
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                           "--config", str(root / "pyproject.toml"), "--cache-dir", str(cache)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_import_contracts(tmp_path):
    shutil.copytree(REPO / "robolearn", tmp_path / "robolearn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    result = _lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_an_upward_import_from_the_format_core_breaks_the_contracts(tmp_path):
    shutil.copytree(REPO / "robolearn", tmp_path / "robolearn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    stats = tmp_path / "robolearn" / "datasets" / "stats.py"
    # a lazy import inside a function counts too
    stats.write_text(stats.read_text() + "\n\ndef _upward():\n    from robolearn.datamodules import lerobot\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "robolearn.datasets.stats -> robolearn.datamodules.lerobot" in result.stdout
    assert "BROKEN" in result.stdout
