"""Write a generated dataset where no reader can see it until it is complete.

A generator writes into a hidden temporary sibling of the dataset folder (``.<name>.tmp-<pid>-<ns>``) and
publishes it with ``os.replace`` only when every episode is saved, so an interrupted or killed generation never
leaves a half dataset that a later run would trust. Siblings left by processes that no longer run are removed
the next time.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

from robolearn.utils.processes import pid_alive

log = logging.getLogger(__name__)


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None when it is not installed."""
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def _remove_stale_staging_dirs(root: Path) -> None:
    """Delete temporary siblings left by generator processes that no longer run (hard kills)."""
    prefix = f".{root.name}.tmp-"
    if not root.parent.is_dir():
        return
    for p in root.parent.iterdir():
        if not (p.is_dir() and p.name.startswith(prefix)):
            continue
        try:
            pid = int(p.name[len(prefix):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not pid_alive(pid):
            log.info("Removing stale partial dataset %s", p)
            shutil.rmtree(p, ignore_errors=True)


def new_staging_dir(root: Path) -> Path:
    """Path of a fresh hidden temporary sibling of ``root`` to generate into (not created yet).

    Removes an empty ``root`` and the temporary siblings of dead generator processes.

    Raises:
        FileExistsError: ``root`` exists, is not empty and holds no dataset (never deleted implicitly).
    """
    if root.exists() and not (root / "meta" / "info.json").is_file():
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        else:
            raise FileExistsError(f"{root} exists and does not hold a LeRobotDataset; move or delete it first")
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging_dirs(root)
    return root.parent / f".{root.name}.tmp-{os.getpid()}-{time.time_ns()}"


def publish_staging_dir(tmp: Path, root: Path) -> None:
    """Move the complete dataset ``tmp`` to ``root`` atomically; if another process published ``root`` first, keep
    its dataset and delete ``tmp``."""
    try:
        os.replace(tmp, root)
    except OSError:
        if (root / "meta" / "info.json").is_file():
            log.info("%s was created concurrently; discarding this run's copy", root)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
