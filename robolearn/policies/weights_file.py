"""Reading a ``model.safetensors`` (or any safetensors file) with errors that name the file.

safetensors' own messages (``header too small``, ``invalid JSON in header``, ``incomplete metadata``) do not say which
file they were reading; :func:`load_weights` adds it.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor


class WeightsFileError(ValueError):
    """A weights file is missing, empty, truncated or not safetensors (the message names it)."""


def load_weights(path: str | os.PathLike, device: str = "cpu") -> dict[str, Tensor]:
    """``{name: tensor}`` from a safetensors file, on ``device``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WeightsFileError: (a ``ValueError``) the file is empty, truncated or not safetensors; names the file, its size
            and safetensors' reason.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (expected a safetensors weights file)")
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own SafetensorError and OS errors
        raise WeightsFileError(f"{path} ({path.stat().st_size} bytes) is not a readable safetensors file: "
                               f"{type(e).__name__}: {str(e)[:300]}") from e
