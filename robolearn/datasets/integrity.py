"""Checks that a LeRobotDataset's files agree with its ``meta/info.json`` and hold finite numbers.

Used when a dataset is loaded (:class:`~robolearn.datasets.lerobot_dataset.LeRobotDataset`) and by the validator
(:mod:`robolearn.datasets.validate`), so that a disagreement is an error naming the file and key, not a silent cast:

- a column's stored type must be the ``dtype`` that ``info.json`` declares (``float32`` declared over an ``int64``
  column, or the reverse, is refused);
- ``timestamp`` must equal ``frame_index / fps`` within a tolerance (an ``fps`` edited in ``info.json`` no longer
  matches the recorded times);
- float features must be finite: a NaN or inf trains silently to NaN weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa

from robolearn.datasets.errors import DatasetFormatError

_FLOAT_DTYPES = ("float16", "float32", "float64")


def leaf_type(arrow_type: pa.DataType) -> pa.DataType:
    """The element type under any (nested) list / fixed-size list type."""
    while pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        arrow_type = arrow_type.value_type
    return arrow_type


def dtype_mismatch(arrow_type: pa.DataType, declared: str) -> str | None:
    """A message when a numeric column's element type is not the ``dtype`` ``info.json`` declares, else None.

    Non-numeric dtypes (``video``, ``image``, ``string``, ``language``) are not checked here.
    """
    try:
        expected = pa.from_numpy_dtype(np.dtype(declared))
    except TypeError:
        return None
    stored = leaf_type(arrow_type)
    if stored == expected:
        return None
    return f"stores {stored} values but meta/info.json declares dtype {declared!r}"


def check_column_dtype(arrow_type: pa.DataType, declared: str, key: str, path: Path | str) -> None:
    """Raise when a column's stored type disagrees with ``info.json``.

    Raises:
        DatasetFormatError: naming the file, the column and both types.
    """
    problem = dtype_mismatch(arrow_type, declared)
    if problem:
        raise DatasetFormatError(f"{path}: column {key!r} {problem}; fix info.json or the data "
                                 f"(python -m robolearn.datasets.validate <root> lists every disagreement)")


def float_keys(features: Mapping[str, Mapping], keys) -> list[str]:
    """The keys among ``keys`` whose declared dtype is a float (the ones that can hold NaN or inf)."""
    return [k for k in keys if features[k].get("dtype") in _FLOAT_DTYPES]


def nonfinite_rows(columns: Mapping[str, np.ndarray], keys) -> dict[str, np.ndarray]:
    """``{key: bool (N,)}`` marking the rows with a NaN or inf in each of ``keys`` (only keys with at least one)."""
    out = {}
    for key in keys:
        values = np.asarray(columns[key])
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            out[key] = bad
    return out


def describe_nonfinite(bad: Mapping[str, np.ndarray], episode_index: np.ndarray, frame_index: np.ndarray,
                       limit: int = 5) -> str:
    """``'action': 3 frame(s) in episodes [2, 7], first at episode 2 frame 14; ...`` for :func:`nonfinite_rows`."""
    parts = []
    for key, rows in bad.items():
        where = np.flatnonzero(rows)
        episodes = sorted(set(np.asarray(episode_index)[where].tolist()))
        more = f" (+{len(episodes) - limit} more)" if len(episodes) > limit else ""
        first = int(where[0])
        parts.append(f"{key!r}: {where.size} frame(s) in episodes {episodes[:limit]}{more}, first at episode "
                     f"{int(episode_index[first])} frame {int(frame_index[first])}")
    return "; ".join(parts)


def timestamp_mismatch(timestamp: np.ndarray, frame_index: np.ndarray, episode_index: np.ndarray, fps: float,
                       tolerance_s: float) -> str | None:
    """A message when ``timestamp`` differs from ``frame_index / fps`` by more than ``tolerance_s`` seconds."""
    # compared in float32, the type the timestamps are stored in (long episodes would otherwise lose 1e-4 s)
    expected = (np.asarray(frame_index, dtype=np.float64) / float(fps)).astype(np.float32).astype(np.float64)
    err = np.abs(np.asarray(timestamp, dtype=np.float32).astype(np.float64) - expected)
    off = np.flatnonzero(~(err <= tolerance_s))
    if off.size == 0:
        return None
    p = int(off[0])
    return (f"timestamp {float(timestamp[p]):.6f} s at episode {int(episode_index[p])} frame {int(frame_index[p])} is "
            f"not frame_index / fps = {float(frame_index[p]) / fps:.6f} s with fps = {fps:g} from meta/info.json "
            f"({off.size} frame(s) off by more than {tolerance_s} s): info.json's fps does not match the recording")


def check_frame_times(columns: Mapping[str, np.ndarray], fps: float, tolerance_s: float, where: Path | str) -> None:
    """Refuse loaded rows whose ``timestamp`` is not ``frame_index / fps`` (see :func:`timestamp_mismatch`).

    Raises:
        DatasetFormatError: naming ``where``, the first episode and frame, and the ``fps``.
    """
    if "frame_index" not in columns:
        return
    problem = timestamp_mismatch(columns["timestamp"], columns["frame_index"], columns["episode_index"], fps,
                                 max(tolerance_s, 1e-4))
    if problem:
        raise DatasetFormatError(f"{where}: {problem}")


def find_nonfinite(columns: Mapping[str, np.ndarray], features: Mapping[str, Mapping]
                   ) -> tuple[dict[str, np.ndarray], str]:
    """``({key: bool rows}, summary)`` of the float features holding NaN/inf in loaded rows (``({}, "")`` if none);
    the summary names the keys, episodes and first frames (:func:`describe_nonfinite`)."""
    bad = nonfinite_rows(columns, float_keys(features, columns))
    if not bad:
        return {}, ""
    frame_index = columns.get("frame_index", columns["index"])
    return bad, describe_nonfinite(bad, columns["episode_index"], frame_index)
