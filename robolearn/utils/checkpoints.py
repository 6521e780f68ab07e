"""Which Lightning checkpoint a run resumes from (``ckpt_path=auto|last|<path>``), skipping damaged files.

A checkpoint that a kill or a full disk cut short is a truncated zip archive (``torch.save``'s format): its central
directory, at the end of the file, is missing. Such a ``last.ckpt`` is skipped with a warning, and the run resumes
from the newest readable ``step_*.ckpt`` beside it (the files ``conf/callbacks/default.yaml`` writes) instead of
stopping.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

LAST = "last.ckpt"
_STEP_FILE = re.compile(r"step_(\d+)(-v\d+)?\.ckpt")


def is_readable_checkpoint(path: str | Path) -> bool:
    """True if ``path`` is a complete ``torch.save`` archive (its zip directory lists a ``data.pkl``).

    Only the zip directory is read (not the tensors), so this is cheap for large checkpoints.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def newest_readable_step_checkpoint(directory: str | Path) -> Path | None:
    """The ``step_<N>.ckpt`` with the largest ``N`` in ``directory`` that :func:`is_readable_checkpoint`."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    steps = []
    for path in directory.iterdir():
        match = _STEP_FILE.fullmatch(path.name)
        if match:
            steps.append((int(match.group(1)), path.name, path))
    for _, _, path in sorted(steps, reverse=True):
        if is_readable_checkpoint(path):
            return path
        log.warning("skipping %s: not a complete checkpoint (truncated or damaged)", path)
    return None


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str | Path) -> str | None:
    """The checkpoint to resume from.

    - ``"auto"``: ``<output_dir>/checkpoints/last.ckpt`` when it exists (what a requeued SLURM job needs), else a
      fresh start (None);
    - ``"last"``: the same file, which must exist;
    - None: a fresh start;
    - anything else is a checkpoint file, which must exist and be complete.

    For ``auto`` and ``last``, a ``last.ckpt`` that is not a complete checkpoint is skipped with a warning in
    favour of the newest complete ``step_*.ckpt`` beside it.

    Raises:
        ValueError: an explicit ``ckpt_path`` that is not a complete checkpoint (truncated or damaged; named).
        FileNotFoundError: an explicit ``ckpt_path`` that does not exist; ``ckpt_path="last"`` and there is no
            complete ``last.ckpt`` nor ``step_*.ckpt``, or
            ``ckpt_path="auto"`` and ``last.ckpt`` is damaged with no complete ``step_*.ckpt`` to fall back to
            (resuming from scratch would silently discard the run); the message names the files.
    """
    if ckpt_path is None:
        return None
    if ckpt_path not in ("last", "auto"):
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
        if not is_readable_checkpoint(ckpt_path):
            raise ValueError(f"ckpt_path={ckpt_path} ({Path(ckpt_path).stat().st_size} bytes) is not a complete "
                             "checkpoint (truncated or damaged)")
        return str(ckpt_path)
    directory = Path(output_dir) / "checkpoints"
    path = directory / LAST
    if not path.exists():
        if ckpt_path == "auto":
            return None
        raise FileNotFoundError(f"ckpt_path=last but {path} does not exist; point hydra.run.dir at the run to resume")
    if is_readable_checkpoint(path):
        return str(path)
    fallback = newest_readable_step_checkpoint(directory)
    if fallback is None:
        raise FileNotFoundError(
            f"{path} is not a complete checkpoint (truncated or damaged) and no complete step_*.ckpt is in "
            f"{directory}; delete the run's checkpoints to start over, or pass ckpt_path=<file>")
    log.warning("%s is not a complete checkpoint (truncated or damaged); resuming from %s instead", path, fallback)
    return str(fallback)
