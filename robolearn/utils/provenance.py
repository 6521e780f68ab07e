"""Run provenance: what exactly produced a run (code, data, config, environment), written next to its outputs.

``provenance.jsonl`` in the run's output dir gets one JSON object per start of the run (a resumed or requeued job
appends a line), with:

- ``git``: ``commit``, ``dirty`` (uncommitted changes to tracked files), ``branch``, and ``diff_sha256`` (of
  ``git diff HEAD``) when dirty; None outside a git checkout;
- ``dataset``: ``repo_id``, ``root``, ``revision``, ``codebase_version``, ``total_episodes``/``total_frames``,
  ``info_sha256`` (the SHA-256 of ``meta/info.json``) and ``fingerprint``, a content hash over every file of the
  dataset (:func:`dataset_fingerprint`: two recordings with equal counts differ);
- ``config``: the resolved run config; ``seed``; ``ckpt_path`` the run started from;
- ``versions``: python, robolearn, torch, lightning, hydra-core, numpy, huggingface_hub, pyarrow, datasets, av and the platform;
  ``hardware``: CPU model, cores, memory, GPUs;
- ``slurm``: job/array ids and node when running under SLURM; ``argv``, ``host``, ``time`` (UTC ISO 8601).

Benchmark results files (``benchmarks/results/*.json``) start from :func:`results_header` and end with
:func:`finish_header`: the commit they were measured at, the command, hardware and versions, wall time.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

_PACKAGES = ("robolearn", "torch", "lightning", "hydra-core", "numpy", "huggingface_hub", "pyarrow", "datasets", "av")
_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """``{"commit", "dirty", "branch"}`` of the checkout holding ``path``, or None when it is not in one."""
    cwd = Path(path)
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    state = {"commit": commit, "dirty": bool(status), "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)}
    if status:
        diff = _git(["diff", "HEAD"], cwd) or ""
        state["diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()
    return state


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_provenance(meta: Any, revision: str | None = None) -> dict[str, Any]:
    """Identity of a dataset from its :class:`~robolearn.datasets.metadata.LeRobotDatasetMetadata`."""
    info_path = Path(meta.root) / "meta" / "info.json"
    info = meta.info
    return {
        "repo_id": meta.repo_id,
        "root": str(meta.root),
        "revision": revision,
        "codebase_version": info.get("codebase_version"),
        "total_episodes": info.get("total_episodes"),
        "total_frames": info.get("total_frames"),
        "info_sha256": file_sha256(info_path) if info_path.is_file() else None,
        "fingerprint": dataset_fingerprint(meta.root),
    }


def dataset_fingerprint(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str | None:
    """SHA-256 over the content of a dataset folder: every file under ``data/``, ``videos/`` and ``meta/`` (its
    relative path and the SHA-256 of its bytes, in sorted path order). Two recordings with the same counts but
    other frames differ; None when ``root`` has no ``meta/info.json``.

    Hashing reads the whole dataset, so the result is cached under ``cache_dir`` (default
    ``$XDG_CACHE_HOME/robolearn/dataset_fingerprints``, i.e. ``~/.cache/...``), keyed by every file's path, size and
    modification time: a later run on the unchanged dataset costs one ``stat`` per file, and any rewritten file
    is hashed again.
    """
    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        return None
    files = [p for sub in ("data", "meta", "videos") for p in sorted((root / sub).rglob("*")) if p.is_file()]
    stats = "".join(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}\n" for p in files)
    key = hashlib.sha256(f"{root.resolve()}\n{stats}".encode()).hexdigest()
    if cache_dir is None:
        cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        cache_dir = cache_home / "robolearn" / "dataset_fingerprints"
    cached = Path(cache_dir) / key
    if cached.is_file():
        return cached.read_text().strip()
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(root).as_posix()}\0{file_sha256(path)}\n".encode())
    fingerprint = h.hexdigest()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{key}.{os.getpid()}.tmp")
        tmp.write_text(fingerprint + "\n")
        os.replace(tmp, cached)
    except OSError:  # a read-only home: the fingerprint is still right, only not cached
        pass
    return fingerprint


def hardware() -> dict[str, Any]:
    """CPU model and logical cores (``/proc/cpuinfo`` on Linux), memory in GiB, and CUDA devices (names) when
    torch sees any."""
    cpu = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    gpus: list[str] = []
    try:
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": mem, "gpus": gpus}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def collect(config: Mapping[str, Any], dataset: Mapping[str, Any] | None, code_dir: str | os.PathLike,
            ckpt_path: str | None = None) -> dict[str, Any]:
    """One provenance record (see the module docstring)."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(code_dir),
        "dataset": dict(dataset) if dataset is not None else None,
        "seed": config.get("seed"),
        "ckpt_path": ckpt_path,
        "config": dict(config),
        "versions": versions(),
        "hardware": hardware(),
        "slurm": {k: os.environ[k] for k in _SLURM_VARS if k in os.environ} or None,
        "host": socket.gethostname(),
        "argv": list(sys.argv),
    }


def append_record(output_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Append ``record`` as one line to ``<output_dir>/provenance.jsonl`` (flushed and fsynced)."""
    path = Path(output_dir) / "provenance.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


class SourceStateError(RuntimeError):
    """The code a result would come from cannot be named: not a git checkout, or uncommitted changes to tracked
    files without ``allow_dirty``."""


class ResultsHeader(dict):
    """The dict :func:`results_header` returns; it also holds the monotonic start time for :func:`finish_header`
    (an attribute, so it is not written to JSON)."""

    started: float


def results_header(code_dir: str | os.PathLike, argv: Sequence[str] | None = None,
                   allow_dirty: bool = False) -> ResultsHeader:
    """Provenance of one benchmark run, taken before it measures anything. Keys:

    - ``source``: ``commit`` (HEAD of the checkout holding ``code_dir``), ``clean`` (no uncommitted changes to
      tracked files) and, only when not clean, ``diff_sha256`` (SHA-256 of ``git diff HEAD``);
    - ``command``: the command line, ``python <script relative to the checkout> <args>`` (``argv`` defaults to
      ``sys.argv``; ``argv[0]`` is the script);
    - ``time``: start time, UTC ISO 8601 (seconds);
    - ``hardware``: :func:`hardware` (CPU model, logical cores, memory, GPUs);
    - ``versions``: :func:`versions` (python, platform, torch, lightning, numpy, ...);
    - ``load_average_1_5_15min``: ``{"start": [1, 5, 15 min]}``; :func:`finish_header` adds ``"end"``.

    Raises:
        SourceStateError: ``code_dir`` is not in a git checkout, or its tree is dirty and ``allow_dirty`` is False.
    """
    git = git_state(code_dir)
    if git is None:
        raise SourceStateError(f"{code_dir} is not in a git checkout: the result could not name its commit")
    if git["dirty"] and not allow_dirty:
        raise SourceStateError(f"the tree at {code_dir} has uncommitted changes to tracked files: commit them, or "
                               f"pass --allow-dirty (the result then records clean: false and the diff's SHA-256)")
    source = {"commit": git["commit"], "clean": not git["dirty"]}
    if git["dirty"]:
        source["diff_sha256"] = git["diff_sha256"]
    argv = list(sys.argv if argv is None else argv)
    script = argv[0] if argv else ""
    top = _git(["rev-parse", "--show-toplevel"], Path(code_dir))
    if script and top:
        try:
            script = Path(script).resolve().relative_to(Path(top).resolve()).as_posix()
        except ValueError:
            pass
    header = ResultsHeader(
        source=source,
        command=shlex.join(["python", *([script] if script else []), *argv[1:]]),
        time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        hardware=hardware(),
        versions=versions(),
        load_average_1_5_15min={"start": _loadavg()},
    )
    header.started = time.perf_counter()
    return header


def finish_header(header: ResultsHeader) -> ResultsHeader:
    """Close a :func:`results_header` at the end of the run: ``wall_s`` (seconds since it was taken) and
    ``load_average_1_5_15min["end"]``. Returns ``header`` (changed in place; calling it again updates both)."""
    header["wall_s"] = round(time.perf_counter() - header.started, 1)
    header["load_average_1_5_15min"]["end"] = _loadavg()
    return header


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # not available on this platform
        return None
