"""The frames of a LeRobotDataset as a memory-mapped Arrow file, opened as a Hugging Face ``datasets.Dataset``.

:class:`~robolearn.datasets.lerobot_dataset.LeRobotDataset` reads the parquet files of its selected episodes once,
checks them (declared dtypes and shapes, frame times, finite values: :mod:`.integrity`), and writes the rows it
serves (selected episodes, global ``index`` order, lerobot's HF feature types) to one Arrow IPC stream file in a
cache folder. Every later load of the same files and selection memory-maps that file instead of decoding parquet:
the frames live in the page cache, shared by every process that maps the file (the main process, forked or spawned
DataLoader workers, other runs), instead of private memory of the process that decoded them (which a forked worker
shares copy-on-write, but every process the dataset is pickled to, e.g. a spawned worker, receives as a copy).

The file holds a single record batch, so each fixed-width column is one contiguous buffer: :func:`column_values`
returns it as a zero-copy numpy view (``__getitem__`` is then numpy indexing, as before). A pickled dataset carries
the file's path, not its frames. Items need pyarrow only (:func:`map_table`); ``datasets`` is imported to build a
file and to open ``hf_dataset`` (:func:`open_dataset`), since importing it costs about a second and tens of MiB.

Cache folder: ``cache_dir`` if given, else ``$HF_DATASETS_CACHE/robolearn_lerobot`` (read at call time; the
``datasets`` default is ``~/.cache/huggingface/datasets``). Never the dataset folder, which may be read-only. A file
is named after the dataset folder, the episode selection and the ``nonfinite`` mode, plus a hash of the data files'
sizes and modification times: a rewritten data file makes a new cache file (the stale one is removed). Nothing is
downloaded here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from robolearn.datasets import parquet_files
from robolearn.datasets.errors import DatasetFormatError
from robolearn.datasets.integrity import check_column_dtype

if TYPE_CHECKING:  # ``import datasets`` costs about a second: done where a Dataset is built
    import datasets

__all__ = [
    "CACHE_SUBDIR",
    "default_cache_dir",
    "hf_features",
    "hf_transform_to_torch",
    "read_data_file",
    "cache_file",
    "write_cache_file",
    "table_info",
    "map_table",
    "open_cached",
    "with_info",
    "open_dataset",
    "column_values",
]

CACHE_SUBDIR = "robolearn_lerobot"
_CACHE_VERSION = 1  # bump when the file layout or its metadata changes
_META_KEY = b"robolearn"


def default_cache_dir() -> Path:
    """``<the datasets library's cache>/robolearn_lerobot``, resolved as ``datasets.config`` does but at call time:
    ``$HF_DATASETS_CACHE``, else ``$HF_HOME/datasets``, else ``${XDG_CACHE_HOME:-~/.cache}/huggingface/datasets``."""
    env = os.environ.get("HF_DATASETS_CACHE")
    if not env:
        home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
        env = os.path.join(home, "datasets")
    return Path(env).expanduser() / CACHE_SUBDIR


def hf_features(features: Mapping[str, Mapping[str, Any]]) -> "datasets.Features":
    """lerobot's ``get_hf_features_from_features``: ``image`` → ``Image()``, shape ``(1,)`` → ``Value(dtype)``,
    ``(D,)`` → ``Sequence(Value(dtype), length=D)`` (a fixed-size list), 2-5 dims → ``Array2D``..``Array5D``.
    ``video`` features are left out (their frames are in the mp4 files).

    Raises:
        DatasetFormatError: a feature with more than 5 dimensions.
    """
    import datasets

    arrays = {2: datasets.Array2D, 3: datasets.Array3D, 4: datasets.Array4D, 5: datasets.Array5D}
    out = {}
    for key, ft in features.items():
        dtype, shape = ft["dtype"], tuple(int(s) for s in ft["shape"])
        if dtype == "video":
            continue
        if dtype == "image":
            out[key] = datasets.Image()
        elif shape == (1,):
            out[key] = datasets.Value(dtype)
        elif len(shape) == 1:
            out[key] = datasets.Sequence(datasets.Value(dtype), length=shape[0])
        elif len(shape) in arrays:
            out[key] = arrays[len(shape)](shape=shape, dtype=dtype)
        else:
            raise DatasetFormatError(f"feature {key!r} has shape {list(shape)}: at most 5 dimensions are supported")
    return datasets.Features(out)


def hf_transform_to_torch(batch: dict[str, list]) -> dict[str, list]:
    """lerobot's ``hf_transform_to_torch`` (set on ``LeRobotDataset.hf_dataset``): values become tensors (images:
    float ``(C, H, W)`` in [0, 1] through torchvision's ``ToTensor``), strings and None stay as they are."""
    import torch

    for key, values in batch.items():
        first = values[0] if len(values) else None
        if first is None:
            continue
        if hasattr(first, "convert") and hasattr(first, "mode"):  # a PIL image
            from torchvision.transforms.functional import to_tensor

            batch[key] = [to_tensor(img) for img in values]
        else:
            batch[key] = [x if isinstance(x, str) else torch.tensor(x) for x in values]
    return batch


# --------------------------------------------------------------------------------------------------- reading parquet


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _flat_values(col: pa.ChunkedArray, key: str, path: Path, width: int) -> pa.ChunkedArray:
    """The leaf values of a (nested) list column, checking there are ``width`` per row and no null rows."""
    arr = col
    while _is_list(arr.type):
        if pc.list_value_length(arr).null_count:
            raise DatasetFormatError(f"{path}: column {key!r} has null rows")
        arr = pc.list_flatten(arr)
    if len(arr) != len(col) * width:
        raise DatasetFormatError(
            f"{path}: column {key!r} holds {len(arr)} values for {len(col)} rows; info.json shape implies {width} "
            "per row"
        )
    return arr


def _image_storage(col: pa.ChunkedArray, key: str, path: Path) -> pa.Array:
    """An image column as ``struct<bytes: binary, path: string>`` (``datasets.Image``'s storage)."""
    if not pa.types.is_struct(col.type):
        raise DatasetFormatError(f"{path}: image column {key!r} must be struct<bytes, path>, got {col.type}")
    arr = col.combine_chunks()
    names = [arr.type.field(i).name for i in range(arr.type.num_fields)]
    n = len(arr)
    data = arr.field("bytes").cast(pa.binary()) if "bytes" in names else pa.nulls(n, pa.binary())
    where = arr.field("path").cast(pa.string()) if "path" in names else pa.nulls(n, pa.string())
    return pa.StructArray.from_arrays([data, where], names=["bytes", "path"], mask=arr.is_null())


def read_data_file(path: Path, features: Mapping[str, Mapping[str, Any]], hf: "datasets.Features",
                   episodes: Sequence[int], only_episodes: bool) -> pa.Table:
    """One data parquet file as a table of lerobot's HF feature types: the columns of ``features``; the rows of
    ``episodes`` (the episodes meta/episodes places in this file) if ``only_episodes``, else all its rows.

    Each column is checked against ``meta/info.json`` before it is converted: the stored element type must be the
    declared ``dtype`` (:func:`~robolearn.datasets.integrity.check_column_dtype`) and a vector column must hold
    ``prod(shape)`` values per row. A shape ``(1,)`` feature stored as one-element lists becomes a scalar column.

    Raises:
        FileNotFoundError: ``path`` is missing (names the episodes it should hold).
        DatasetFormatError: unreadable parquet, absent declared columns, a dtype or shape that disagrees with
            ``info.json``, or values that cannot be converted; every message names the file and the column.
    """
    from datasets.table import cast_array_to_feature

    keys = list(features)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found (holds episodes {list(episodes)[:10]})")
    names = set(parquet_files.read_schema(path).names)
    missing = [k for k in keys if k not in names]
    if missing:
        raise DatasetFormatError(
            f"{path}: columns {missing} declared in info.json features are absent (file has {sorted(names)})"
        )
    filters = [("episode_index", "in", [int(e) for e in episodes])] if only_episodes else None
    table = parquet_files.read_table(path, columns=keys, filters=filters)
    arrays = []
    for key in keys:
        spec, col = features[key], table.column(key)
        check_column_dtype(col.type, spec["dtype"], key, path)
        dtype = spec["dtype"]
        if dtype == "image":
            arr: Any = _image_storage(col, key, path)
        elif dtype in ("string", "language"):
            arr = col
        else:
            shape = tuple(int(s) for s in spec["shape"])
            width = int(np.prod(shape))
            if _is_list(col.type):
                flat = _flat_values(col, key, path, width)
                if shape == (1,):
                    arr = flat  # one-element lists served as scalars, as lerobot's Value feature
                else:
                    arr = col
            elif width != 1:
                raise DatasetFormatError(
                    f"{path}: column {key!r} is a scalar column but info.json shape is {list(shape)}")
            else:
                arr = col
        try:
            arrays.append(cast_array_to_feature(arr, hf[key]))
        except (TypeError, ValueError, pa.ArrowException) as e:
            reason = " ".join(str(e).split())[:300]
            raise DatasetFormatError(f"{path}: column {key!r} ({col.type}) cannot be read as {hf[key]}: "
                                     f"{reason}") from e
    return pa.Table.from_arrays(arrays, schema=hf.arrow_schema)


# --------------------------------------------------------------------------------------------------- the cache file


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "dataset"


def cache_file(cache_dir: Path, repo_id: str, root: Path, files: Sequence[Path], episodes: np.ndarray | None,
               selected: np.ndarray, nonfinite: str, features: Mapping[str, Mapping[str, Any]]) -> Path:
    """Where the Arrow file for these data files and this selection lives (it may not exist yet).

    The name is ``<slot>-<content>.arrow`` in ``cache_dir/<repo_id slug>/``: ``slot`` hashes the dataset folder,
    the explicit episode list (or "all"), the ``nonfinite`` mode and the features read; ``content`` hashes the
    data files' paths, sizes and modification times and the selected episodes. A file with the same slot and
    another content is stale (:func:`write_cache_file` removes it).

    Raises:
        FileNotFoundError: a data file is missing.
    """
    slot = {
        "version": _CACHE_VERSION,
        "root": str(Path(root).resolve()),
        "episodes": None if episodes is None else [int(e) for e in episodes],
        "nonfinite": nonfinite,
        "features": {k: dict(v) for k, v in features.items()},
    }
    stats = []
    for f in files:
        st = f.stat()
        stats.append([str(f), st.st_size, st.st_mtime_ns])
    content = {"files": stats, "selected": hashlib.sha256(np.asarray(selected, np.int64).tobytes()).hexdigest()}
    slot_h = hashlib.sha256(json.dumps(slot, sort_keys=True, default=str).encode()).hexdigest()[:16]
    content_h = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / _slug(repo_id) / f"{slot_h}-{content_h}.arrow"


def write_cache_file(table: pa.Table, path: Path, hf: "datasets.Features", info: Mapping[str, Any]) -> None:
    """Write ``table`` as one record batch to the Arrow IPC stream ``path`` (the format ``datasets`` maps), with the
    HF features and ``info`` (JSON: the load's warnings and dropped frames) in the schema metadata; atomically
    (temporary name, then ``os.replace``), then remove stale files of the same slot (see :func:`cache_file`).

    Raises:
        OSError: the cache folder cannot be created or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = dict(hf.arrow_schema.metadata or {})
    metadata[_META_KEY] = json.dumps(dict(info)).encode()
    table = table.combine_chunks().replace_schema_metadata(metadata)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=None):
                writer.write_batch(batch)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    slot = path.name.split("-", 1)[0]
    for old in path.parent.glob(f"{slot}-*.arrow"):
        if old != path:
            try:
                old.unlink()  # processes that still map it keep their mapping
            except OSError:
                pass


def table_info(table: pa.Table) -> dict[str, Any]:
    """The ``info`` a cache file was written with (:func:`write_cache_file`), ``{}`` if none."""
    raw = (table.schema.metadata or {}).get(_META_KEY)
    return json.loads(raw) if raw else {}


def map_table(path: Path) -> pa.Table:
    """The table of a cache file, memory-mapped with pyarrow alone (importing ``datasets`` costs about a second
    and tens of MiB per process; only :func:`open_dataset` needs it).

    Raises:
        FileNotFoundError: the file is gone (e.g. rebuilt after its data files changed).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"Arrow cache file {path} not found (was it rebuilt after its data files changed?)")
    return pa.ipc.open_stream(pa.memory_map(str(path))).read_all()  # the buffers keep the mapping alive


def open_cached(path: Path) -> tuple[pa.Table, dict[str, Any]] | None:
    """``(memory-mapped table, info)`` of an existing cache file, or None when there is none or it is unreadable
    (a warning then says it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        table = map_table(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        warnings.warn(f"unreadable Arrow cache file {path} ({type(e).__name__}: {e}); rebuilding it", UserWarning,
                      stacklevel=3)
        return None
    return table, table_info(table)


def with_info(table: pa.Table, hf: "datasets.Features", info: Mapping[str, Any]) -> pa.Table:
    """``table`` as one chunk per column with the schema metadata a cache file has (when none can be written)."""
    metadata = dict(hf.arrow_schema.metadata or {})
    metadata[_META_KEY] = json.dumps(dict(info)).encode()
    return table.combine_chunks().replace_schema_metadata(metadata)


def open_dataset(path: Path | None, table: pa.Table | None = None) -> "datasets.Dataset":
    """The ``datasets.Dataset`` of a cache file (memory-mapped; ``map`` then caches beside it), or of an in-memory
    ``table`` when ``path`` is None, with lerobot's :func:`hf_transform_to_torch` set.

    Raises:
        FileNotFoundError: the file is gone.
    """
    import datasets
    from datasets.table import InMemoryTable

    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Arrow cache file {path} not found (was it rebuilt after its data files "
                                    "changed?)")
        ds = datasets.Dataset.from_file(str(path))
    else:
        ds = datasets.Dataset(InMemoryTable(table))
    ds.set_transform(hf_transform_to_torch)
    return ds


# --------------------------------------------------------------------------------------------------- numpy views


def column_values(column: pa.ChunkedArray, shape: Sequence[int]) -> np.ndarray:
    """A numeric column as numpy ``(N,)`` (shape ``(1,)``) or ``(N, *shape)`` in its stored dtype.

    Zero-copy (a read-only view of the Arrow buffer, memory-mapped when the table is) for a single-chunk column
    without nulls; a copy otherwise (several chunks, nulls, ``bool`` columns, which Arrow stores as bits).
    """
    n = len(column)
    arr = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if isinstance(arr, pa.ExtensionArray):
        arr = arr.storage
    while _is_list(arr.type):
        arr = arr.flatten()
    try:
        values = arr.to_numpy(zero_copy_only=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = arr.to_numpy(zero_copy_only=False)
    shape = tuple(int(s) for s in shape)
    return values.reshape((n,) if len(shape) == 1 and shape[0] == 1 else (n, *shape))
