"""Exceptions raised by robolearn's LeRobotDataset reader.

Each subclasses the builtin a caller would naturally catch (``ValueError``, ``FileNotFoundError``), so code that
does not know these classes still handles them.
"""

from __future__ import annotations


class BackwardCompatibilityError(ValueError):
    """The dataset was written in an older codebase version (e.g. ``v2.1``) and must be converted to ``v3.0``."""


class ForwardCompatibilityError(ValueError):
    """The dataset was written by a newer codebase (major version > 3) that this reader does not understand."""


class DatasetFormatError(ValueError):
    """``meta/info.json`` or another metadata file is present but malformed (names the file and the key)."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (repo id / revision) could not be found locally or in the Hub cache."""


class FrameTimestampError(ValueError):
    """The decoded video frame nearest to a requested time is farther than ``tolerance_s`` from it."""


class VideoDecodeError(ValueError):
    """A video file could not be decoded (truncated or corrupt); the message names the file and the episode."""


class EmptyDatasetError(DatasetFormatError):
    """The dataset folder holds no saved episode (a recording stopped before its first ``save_episode``)."""


def empty_dataset_message(root: object) -> str:
    """What to tell a user whose dataset at ``root`` has ``total_episodes == 0``: why, and exactly what to run."""
    return (f"{root} holds no saved episode (meta/info.json total_episodes = 0: a recording stopped before its first "
            f"episode was saved; nothing was lost). Record into it with `python record.py ... dataset.root={root} "
            f"resume=true`, or delete the folder and record again")
