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
