"""Reading a dataset's parquet files with errors that name the file.

pyarrow's own messages for a damaged file (``Parquet magic bytes not found in footer``, ``Corrupt snappy compressed
data``, ``Couldn't deserialize thrift``) do not say which of a dataset's files it was reading; these wrappers add it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from robolearn.datasets.errors import DatasetFormatError


def _damaged(path: Path | str, error: Exception) -> DatasetFormatError:
    reason = " ".join(str(error).split())[:300]  # one line: pyarrow's messages span several
    return DatasetFormatError(f"{path}: unreadable parquet file (truncated or corrupt?): {type(error).__name__}: "
                              f"{reason}")


def read_schema(path: Path | str) -> pa.Schema:
    """The file's arrow schema.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetFormatError: the file is not readable parquet (names the file).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"parquet file {path} not found")
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        raise _damaged(path, e) from e


def read_table(path: Any, columns: Sequence[str] | None = None, filters: Any = None, name: str | None = None
               ) -> pa.Table:
    """``pyarrow.parquet.read_table(path, columns=columns, filters=filters)``.

    Args:
        path: a file path, or an open binary file (then ``name`` says what it is, for messages).

    Raises:
        FileNotFoundError: ``path`` is a path that does not exist.
        DatasetFormatError: the file (or a page of the requested columns) is not readable parquet (names the file).
    """
    if isinstance(path, (str, Path)) and not Path(path).is_file():
        raise FileNotFoundError(f"parquet file {path} not found")
    try:
        return pq.read_table(path, columns=columns, filters=filters)
    except (pa.ArrowException, OSError) as e:
        where = name or (str(path) if isinstance(path, (str, Path)) else getattr(path, "name", repr(path)))
        raise _damaged(where, e) from e
