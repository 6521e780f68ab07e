"""OmegaConf resolvers used by the conf/ tree (registered once by :func:`register_resolvers`).

- ``${cwd:}``: the process's working directory at resolution time (what ``${hydra:runtime.cwd}`` is with
  ``hydra.job.chdir=false``, but also resolvable before Hydra's runtime config exists, as sweeper plugins need);
- ``${range:<start>,<stop>}``: ``list(range(start, stop))``, e.g. the first 20 episodes of a dataset;
- ``${run_id:<dir>}``: a persistent random run id stored in ``<dir>/.run_id``: created on the first start and read
  back by every later start of the same run (resume, SLURM requeue), so a W&B run continues under the same id.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from omegaconf import OmegaConf


def persistent_run_id(directory: str) -> str:
    """The id in ``<directory>/.run_id``, created (8 hex chars, written atomically) when absent."""
    path = Path(directory) / ".run_id"
    if path.is_file():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = uuid.uuid4().hex[:8]
    tmp = path.with_name(f".run_id.{os.getpid()}.tmp")
    tmp.write_text(value + "\n")
    try:
        os.link(tmp, path)  # fails if another rank created it first: keep theirs
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return value


def register_resolvers() -> None:
    """Register the resolvers above (idempotent)."""
    if not OmegaConf.has_resolver("cwd"):
        OmegaConf.register_new_resolver("cwd", os.getcwd)
    if not OmegaConf.has_resolver("range"):
        OmegaConf.register_new_resolver("range", lambda start, stop: list(range(int(start), int(stop))))
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", persistent_run_id, use_cache=True)
