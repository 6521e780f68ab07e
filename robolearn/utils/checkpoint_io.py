"""Lightning checkpoints written straight to disk: ``torch.save`` into a temporary file beside the target, then a
rename (``conf/trainer/default.yaml``: ``plugins``).

Lightning's :class:`~lightning.fabric.plugins.io.torch_io.TorchCheckpointIO` serializes the whole checkpoint into
an in-memory buffer and then writes the buffer (``lightning.fabric.utilities.cloud_io._atomic_save``): the process
holds a second copy of every weight and optimizer moment, and the bytes are copied twice. For the paper's Diffusion
Policy (a 3.15 GB checkpoint) that costs ~3 GB of peak memory and about twice the time of writing the file
(measured here: 11.7 s vs 5.8 s for 3 GB of tensors). Writing the file directly keeps the same guarantee: a crash
or Ctrl-C while saving leaves the previous file (or ``save_last: link``'s symbolic link) intact, because the new one
only replaces it by ``os.replace`` once complete; the temporary file of a writer that was hard-killed (SIGKILL,
out of memory) is deleted by the next save of the same checkpoint. Remote paths (``s3://``, ...) keep Lightning's
buffered upload.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem

from robolearn.utils.processes import pid_alive

PARTIAL_SUFFIX = ".partial"


def partial_path(path: Path, pid: int | None = None) -> Path:
    """The temporary file a checkpoint at ``path`` is written to before the rename: hidden, named after ``path``
    and the writer's process id (default: this process), in the same folder (the rename stays on one filesystem)."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else int(pid)}{PARTIAL_SUFFIX}")


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete the temporary files of ``path`` left by writers that no longer run; returns the deleted paths."""
    prefix, removed = f".{path.name}.", []
    for p in path.parent.glob(f"{prefix}*{PARTIAL_SUFFIX}"):
        pid = p.name[len(prefix):-len(PARTIAL_SUFFIX)]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class DirectFileCheckpointIO(TorchCheckpointIO):
    """:class:`~lightning.fabric.plugins.io.torch_io.TorchCheckpointIO` that saves local checkpoints without an
    in-memory copy (module docstring); loading and removal are Lightning's.

    Raises (``save_checkpoint``):
        TypeError: ``storage_options`` given (as Lightning's plugin).
        OSError: the folder cannot be created or the file written (the temporary file is removed first).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        if not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(target)
        tmp = partial_path(target)
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return None


__all__ = ["DirectFileCheckpointIO", "partial_path", "remove_stale_partials"]
