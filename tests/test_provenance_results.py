"""Provenance header of the benchmark results files (``robolearn.utils.provenance.results_header``), and the
benchmark scripts' use of it: ``--help`` works, and a dirty tree is refused before any measurement."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from robolearn.utils import provenance
from robolearn.utils.provenance import SourceStateError, finish_header, results_header

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["aloha_experts", "dataloading", "gpu_check", "inference", "main_job", "record", "rl", "startup", "vla"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throw-away git checkout with one committed file."""
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q")
    _git(r, "config", "user.email", "test@example.com")
    _git(r, "config", "user.name", "Test")
    (r / "bench.py").write_text("print('bench')\n")
    _git(r, "add", "bench.py")
    _git(r, "commit", "-q", "-m", "init")
    return r


def test_clean_checkout(repo: Path):
    (repo / "untracked.txt").write_text("not tracked: does not make the tree dirty\n")
    header = results_header(repo, argv=[str(repo / "bench.py"), "--seconds", "2", "--name", "a b"])
    assert header["source"] == {"commit": _git(repo, "rev-parse", "HEAD").strip(), "clean": True}
    assert header["command"] == "python bench.py --seconds 2 --name 'a b'"
    assert header["time"].endswith("+00:00")
    assert set(header["hardware"]) >= {"cpu", "cpus", "gpus"}
    assert header["versions"]["python"] and "torch" in header["versions"]
    assert len(header["load_average_1_5_15min"]["start"]) == 3
    assert "wall_s" not in header
    finish_header(header)
    assert header["wall_s"] >= 0 and len(header["load_average_1_5_15min"]["end"]) == 3
    json.loads(json.dumps(header))  # plain JSON


def test_dirty_checkout_is_refused_unless_allowed(repo: Path):
    (repo / "bench.py").write_text("print('changed')\n")
    with pytest.raises(SourceStateError, match="uncommitted changes.*--allow-dirty"):
        results_header(repo, argv=["bench.py"])
    assert issubclass(SourceStateError, RuntimeError)
    header = results_header(repo, argv=["bench.py"], allow_dirty=True)
    diff = _git(repo, "diff", "HEAD").strip()
    assert header["source"] == {"commit": _git(repo, "rev-parse", "HEAD").strip(), "clean": False,
                                "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()}


def test_not_a_checkout(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no git repo above tmp_path either
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SourceStateError, match="not in a git checkout"):
        results_header(plain, argv=["bench.py"], allow_dirty=True)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as e:  # an optional dependency (gym-aloha, mujoco, ...) is not installed
        pytest.skip(f"benchmarks/{name}.py cannot be imported here: {e}")
    return module


def _call_main(module, name: str, args: list[str], monkeypatch):
    if name == "gpu_check":
        return module.main(args)
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / f"{name}.py"), *args])
    return module.main()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SCRIPTS)
def test_script_help_and_dirty_refusal(name: str, monkeypatch, capsys):
    module = _load(name)
    with pytest.raises(SystemExit) as exc:
        _call_main(module, name, ["--help"], monkeypatch)
    assert exc.value.code == 0
    assert "--allow-dirty" in capsys.readouterr().out

    # A dirty tree: the script stops before measuring anything (a measurement here would take minutes).
    monkeypatch.setattr(provenance, "git_state", lambda path: {"commit": "0" * 40, "dirty": True, "branch": "main",
                                                               "diff_sha256": "0" * 64})
    with pytest.raises(SystemExit) as exc:
        _call_main(module, name, [], monkeypatch)
    assert f"benchmarks/{name}.py" in str(exc.value.code) and "--allow-dirty" in str(exc.value.code)


def test_gpu_check_all_runs_every_check():
    module = _load("gpu_check")
    args = module.parse_args(["--all"])
    assert args.only == list(module.CHECKS) and args.budget_s is None and args.all
    assert module.parse_args([]).budget_s == 220.0
    with pytest.raises(SystemExit):
        module.parse_args(["--all", "--only", "pi0"])


def test_gpu_check_writes_the_header(tmp_path, monkeypatch):
    """The whole file from one run: header keys, device facts and the checks (a stub check, dry run on the CPU)."""
    module = _load("gpu_check")
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    monkeypatch.setattr(module, "check_inference", lambda args, device, work: {"stub": True})
    monkeypatch.setattr(module.torch, "set_num_threads", lambda n: None)  # keep the test process's setting
    module.main(["--dry-run", "--only", "inference"])
    written = json.loads((tmp_path / "gpu_check_dryrun.json").read_text())
    assert {"source", "command", "time", "hardware", "versions", "load_average_1_5_15min", "wall_s", "device",
            "settings", "checks"} <= set(written)
    assert not {"date", "machine", "total_s"} & set(written)
    assert written["command"] == "python benchmarks/gpu_check.py --dry-run --only inference"
    assert "cuda" in written["versions"] and "end" in written["load_average_1_5_15min"]
    assert written["checks"]["inference"]["stub"] is True and written["device"] == {"device": "cpu"}
