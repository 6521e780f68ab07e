"""The LeRobotDataset v3.0 format: reading, writing, metadata, video, statistics, validation and crash repair.

This is the format core. It imports nothing of robolearn but :mod:`robolearn.features`; the Lightning DataModules
live in :mod:`robolearn.datamodules` and the maintenance command lines (convert, edit, info, viz, Hub push) in
:mod:`robolearn.tools`, both above it (``docs/architecture.md``; the import contracts in ``pyproject.toml``).

The public names are imported lazily so that ``import robolearn.datasets`` stays cheap:

- :class:`LeRobotDataset`, :class:`LeRobotDatasetMetadata` (reader, lerobot's names and item layout)
- :class:`LeRobotDatasetWriter` (``create`` / ``add_frame`` / ``save_episode`` / ``finalize``)
- :func:`compute_episode_stats`, :func:`aggregate_stats`
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LeRobotDataset": "robolearn.datasets.lerobot_dataset",
    "LeRobotDatasetMetadata": "robolearn.datasets.metadata",
    "LeRobotDatasetWriter": "robolearn.datasets.writer",
    "compute_episode_stats": "robolearn.datasets.stats",
    "aggregate_stats": "robolearn.datasets.stats",
    "CODEBASE_VERSION": "robolearn.datasets.constants",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robolearn.datasets' has no attribute '{name}'")
    return getattr(import_module(_EXPORTS[name]), name)
