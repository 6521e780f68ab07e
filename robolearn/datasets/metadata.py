"""``LeRobotDatasetMetadata``: the ``meta/`` folder of a LeRobotDataset v3.0 (info, stats, tasks, episodes)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from robolearn.datasets import parquet_files
from robolearn.datasets.constants import CODEBASE_VERSION, EPISODES_DIR, INFO_PATH, STATS_PATH, TASKS_PATH
from robolearn.datasets.errors import (BackwardCompatibilityError, DatasetFormatError, EmptyDatasetError,
                                      ForwardCompatibilityError, empty_dataset_message)

__all__ = ["LeRobotDatasetMetadata", "check_version_compatibility", "load_info", "load_stats", "load_tasks",
           "load_episodes", "parse_version"]

_VERSION_RE = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


def parse_version(version: str) -> tuple[int, int]:
    """``"v3.0"`` → ``(3, 0)``. Raises ``ValueError`` if the string is not a ``v<major>[.<minor>]`` version."""
    m = _VERSION_RE.match(str(version).strip())
    if m is None:
        raise ValueError(f"not a codebase version: {version!r} (expected something like 'v3.0')")
    return int(m.group(1)), int(m.group(2) or 0)


def check_version_compatibility(version: str, root: str | Path | None = None, repo_id: str | None = None) -> None:
    """Check a dataset's ``codebase_version`` against the reader's ``v3.0``.

    Raises:
        BackwardCompatibilityError: major < 3 (e.g. v2.1); the message gives the conversion command.
        ForwardCompatibilityError: major > 3.
        DatasetFormatError: the version string does not parse.
    Warns when the minor version differs.
    """
    where = f" ({Path(root) / INFO_PATH})" if root is not None else ""
    try:
        major, minor = parse_version(version)
    except ValueError as e:
        raise DatasetFormatError(f"meta/info.json{where}: codebase_version: {e}") from None
    cur_major, cur_minor = parse_version(CODEBASE_VERSION)
    if major < cur_major:
        target = f"--root {root}" if root is not None else f"--repo-id {repo_id}"
        raise BackwardCompatibilityError(
            f"dataset {repo_id or ''}{where} has codebase_version {version!r}, but robolearn reads "
            f"{CODEBASE_VERSION} only. Convert it to {CODEBASE_VERSION} first, e.g. with lerobot's converter:\n"
            f"    python -m lerobot.scripts.convert_dataset_v21_to_v30 {target}"
        )
    if major > cur_major:
        raise ForwardCompatibilityError(
            f"dataset {repo_id or ''}{where} has codebase_version {version!r}, newer than the {CODEBASE_VERSION} "
            "this version of robolearn reads; upgrade robolearn."
        )
    if minor != cur_minor:
        warnings.warn(
            f"dataset {repo_id or ''}{where} has codebase_version {version!r}; robolearn reads {CODEBASE_VERSION}. "
            "Loading anyway.",
            stacklevel=3,
        )


def _validate_features(features: Any, info_path: Path) -> dict[str, dict]:
    if not isinstance(features, dict) or not features:
        raise DatasetFormatError(f"{info_path}: 'features' must be a non-empty object, got {type(features).__name__}")
    out: dict[str, dict] = {}
    for key, spec in features.items():
        if "/" in key:
            raise DatasetFormatError(f"{info_path}: feature name {key!r} must not contain '/'")
        if not isinstance(spec, dict):
            raise DatasetFormatError(f"{info_path}: features[{key!r}] must be an object, got {spec!r}")
        dtype = spec.get("dtype")
        if not isinstance(dtype, str):
            raise DatasetFormatError(f"{info_path}: features[{key!r}] has no string 'dtype' (got {dtype!r})")
        shape = spec.get("shape")
        if dtype not in ("string", "language"):
            if not isinstance(shape, (list, tuple)) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
            ):
                raise DatasetFormatError(
                    f"{info_path}: features[{key!r}]['shape'] must be a list of positive ints, got {shape!r}"
                )
            if dtype in ("video", "image") and len(shape) != 3:
                raise DatasetFormatError(
                    f"{info_path}: camera feature {key!r} ({dtype}) must have a 3-D shape (H, W, C) or (C, H, W), "
                    f"got {list(shape)}"
                )
            if dtype not in ("video", "image"):
                try:
                    np.dtype(dtype)
                except TypeError:
                    raise DatasetFormatError(
                        f"{info_path}: features[{key!r}] has unknown dtype {dtype!r} (expected a numpy dtype, "
                        "'image', 'video', 'string' or 'language')"
                    ) from None
        spec = dict(spec)
        if shape is not None:
            spec["shape"] = tuple(int(s) for s in shape)
        out[key] = spec
    return out


def _read_json_object(path: Path, expected: str) -> dict:
    """Parse ``path`` as a JSON object; DatasetFormatError naming the file if it is invalid or not a dict."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetFormatError(f"{path}: invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{path}: expected {expected}")
    return data


def load_info(root: str | Path) -> dict:
    """Read and validate ``<root>/meta/info.json``.

    Shapes are returned as tuples. Required keys: ``codebase_version``, ``fps`` (> 0), ``features``, ``data_path``;
    ``video_path`` is required when a feature has dtype ``video``.

    Raises:
        FileNotFoundError: the file is missing (message has the full path).
        BackwardCompatibilityError / ForwardCompatibilityError: wrong ``codebase_version``.
        DatasetFormatError (a ValueError): invalid JSON, a missing key, ``fps`` <= 0 or malformed features.
    """
    path = Path(root) / INFO_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: not a LeRobotDataset root (expected meta/info.json under {Path(root)})"
        )
    info = _read_json_object(path, "a JSON object at top level")
    if "codebase_version" not in info:
        raise DatasetFormatError(f"{path}: missing 'codebase_version' (expected {CODEBASE_VERSION!r})")
    check_version_compatibility(info["codebase_version"], root=root)
    for key in ("fps", "features", "data_path"):
        if key not in info:
            raise DatasetFormatError(f"{path}: missing required key {key!r}")
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise DatasetFormatError(f"{path}: 'fps' must be a number > 0, got {fps!r}")
    for key in ("chunks_size", "data_files_size_in_mb", "video_files_size_in_mb"):
        v = info.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise DatasetFormatError(f"{path}: {key!r} must be > 0, got {v!r}")
    info = dict(info)
    info["features"] = _validate_features(info["features"], path)
    if any(f["dtype"] == "video" for f in info["features"].values()) and not info.get("video_path"):
        raise DatasetFormatError(f"{path}: features have dtype 'video' but 'video_path' is {info.get('video_path')!r}")
    return info


def load_stats(root: str | Path) -> dict[str, dict[str, np.ndarray]] | None:
    """``meta/stats.json`` as ``{feature: {stat: np.ndarray}}`` (each value ``np.atleast_1d``), or None if absent.

    Raises:
        DatasetFormatError: the file is not valid JSON of that shape.
    """
    path = Path(root) / STATS_PATH
    if not path.is_file():
        return None
    raw = _read_json_object(path, "an object {feature: {stat: values}}")
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, d in raw.items():
        if not isinstance(d, dict):
            raise DatasetFormatError(f"{path}: stats[{key!r}] must be an object of stat arrays")
        stats[key] = {name: np.atleast_1d(np.asarray(v)) for name, v in d.items()}
    return stats


def load_tasks(root: str | Path) -> pd.DataFrame:
    """``meta/tasks.parquet`` as a DataFrame indexed by task string (index name ``task``), column ``task_index``
    (int64), sorted by ``task_index``. The index column may be stored as ``task`` or ``__index_level_0__``.

    Raises:
        FileNotFoundError: the file is missing.
        DatasetFormatError: no ``task_index`` column or no task-string column.
    """
    path = Path(root) / TASKS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (every v3.0 dataset has meta/tasks.parquet)")
    table = parquet_files.read_table(path)
    df = table.to_pandas()
    if "task_index" not in df.columns:
        raise DatasetFormatError(f"{path}: no 'task_index' column (columns: {list(df.columns)})")
    for col in ("task", "__index_level_0__"):
        if col in df.columns:
            df = df.set_index(col)
            break
    else:
        if not (df.index.dtype == object or pd.api.types.is_string_dtype(df.index)):
            raise DatasetFormatError(
                f"{path}: cannot find the task strings (expected a 'task' or '__index_level_0__' column)"
            )
    df.index = df.index.astype(str)
    df.index.name = "task"
    df = df[["task_index"]].astype({"task_index": "int64"}).sort_values("task_index")
    return df


def load_episodes(root: str | Path) -> pd.DataFrame:
    """All ``meta/episodes/**/*.parquet`` (sorted by path), concatenated, without the ``stats/*`` columns.

    Returns:
        DataFrame indexed by ``episode_index`` (the column is kept too), sorted by it.

    Raises:
        FileNotFoundError: no episode file exists.
        DatasetFormatError: a required column (``episode_index``, ``length``, ``data/chunk_index``,
            ``data/file_index``, ``dataset_from_index``, ``dataset_to_index``) is missing.
    """
    ep_dir = Path(root) / EPISODES_DIR
    files = sorted(ep_dir.glob("**/*.parquet"))
    if not files:
        raise FileNotFoundError(f"no episode metadata under {ep_dir} (expected meta/episodes/chunk-*/file-*.parquet)")
    tables = []
    for f in files:
        schema = parquet_files.read_schema(f)
        cols = [n for n in schema.names if not n.startswith("stats/")]
        t = parquet_files.read_table(f, columns=cols)
        tables.append(t.replace_schema_metadata(None))
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    df = table.to_pandas()
    required = ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetFormatError(f"{ep_dir}: episode tables lack required columns {missing}")
    df = df.sort_values("episode_index", kind="stable")
    if df["episode_index"].duplicated().any():
        dup = df["episode_index"][df["episode_index"].duplicated()].tolist()[:5]
        raise DatasetFormatError(f"{ep_dir}: duplicated episode_index values {dup}")
    df.index = pd.Index(df["episode_index"].to_numpy(dtype=np.int64), name="episode_index")
    return df


class LeRobotDatasetMetadata:
    """Metadata of a LeRobotDataset v3.0: ``meta/info.json``, ``meta/stats.json``, ``meta/tasks.parquet`` and the
    episode tables ``meta/episodes/**/*.parquet``.

    Args:
        repo_id: ``"owner/name"``; only used for Hub resolution and messages when ``root`` is given.
        root: local dataset folder. When None, the dataset is looked up at ``$HF_LEROBOT_HOME/<repo_id>`` and, if
            absent there, its ``meta/`` is fetched with ``huggingface_hub.snapshot_download`` (see
            :mod:`robolearn.datasets.hub`).
        revision: Hub revision (branch, tag or commit); default the codebase-version tag ``"v3.0"``.

    Totals (``total_episodes``, ``total_frames``, ``total_tasks``) come from the episode and task tables; when
    info.json disagrees, a ``UserWarning`` is issued and the tables win. ``info`` is kept as written on disk
    (shapes as tuples).

    Raises:
        FileNotFoundError: ``meta/info.json`` (or tasks / episodes) missing; the message has the path.
        BackwardCompatibilityError: ``codebase_version`` older than v3.0 (message has the convert command).
        DatasetFormatError: ``fps`` <= 0, malformed features, missing episode columns.
        robolearn.datasets.errors.DatasetNotFoundError: Hub resolution failed (offline without a cached snapshot,
            unknown repo or revision).
    """

    def __init__(self, repo_id: str, root: str | Path | None = None, revision: str | None = None):
        self.repo_id = repo_id
        self.revision = revision
        if root is None:
            from robolearn.datasets.hub import resolve_metadata_root

            root = resolve_metadata_root(repo_id, revision=revision)
        self.root = Path(root)
        self.info = load_info(self.root)
        if int(self.info.get("total_episodes", 0) or 0) == 0 and not (self.root / "meta" / "tasks.parquet").exists():
            raise EmptyDatasetError(empty_dataset_message(self.root))
        self.stats = load_stats(self.root)
        self.tasks = load_tasks(self.root)
        self.episodes = load_episodes(self.root)
        self._task_strings = {int(i): t for t, i in zip(self.tasks.index, self.tasks["task_index"])}
        self._check_totals()

    # ---------------------------------------------------------------- consistency
    def _check_totals(self) -> None:
        eps = self.episodes
        lengths = eps["length"].to_numpy(dtype=np.int64)
        span = eps["dataset_to_index"].to_numpy(dtype=np.int64) - eps["dataset_from_index"].to_numpy(dtype=np.int64)
        bad = np.nonzero(span != lengths)[0]
        if bad.size:
            e = int(eps.index[bad[0]])
            raise DatasetFormatError(
                f"{self.root / EPISODES_DIR}: episode {e} has length {int(lengths[bad[0]])} but "
                f"dataset_to_index - dataset_from_index = {int(span[bad[0]])}"
            )
        found = {"total_episodes": len(eps), "total_frames": int(lengths.sum()), "total_tasks": len(self.tasks)}
        diffs = [f"{k}={self.info.get(k)!r} (tables: {v})" for k, v in found.items() if self.info.get(k) != v]
        if diffs:
            warnings.warn(
                f"{self.root / INFO_PATH} disagrees with meta/episodes and meta/tasks.parquet: {', '.join(diffs)}. "
                "Trusting the tables.",
                UserWarning,
                stacklevel=3,
            )
        idx = eps.index.to_numpy()
        if len(idx) and not np.array_equal(idx, np.arange(len(idx))):
            warnings.warn(
                f"{self.root / EPISODES_DIR}: episode indices are not 0..{len(idx) - 1} without gaps "
                f"(first {idx[:5].tolist()}); episodes are looked up by episode_index.",
                UserWarning,
                stacklevel=3,
            )

    # ---------------------------------------------------------------- info accessors
    @property
    def codebase_version(self) -> str:
        return str(self.info["codebase_version"])

    @property
    def fps(self) -> int:
        """Frames per second (``info.json['fps']``)."""
        fps = self.info["fps"]
        return int(fps) if float(fps).is_integer() else fps

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def features(self) -> dict[str, dict]:
        """``info.json['features']``: ``{key: {"dtype", "shape" (tuple), "names", ...}}``."""
        return self.info["features"]

    @property
    def data_path(self) -> str:
        return self.info["data_path"]

    @property
    def video_path(self) -> str | None:
        return self.info.get("video_path")

    @property
    def video_keys(self) -> list[str]:
        """Keys of features stored in mp4 files (dtype ``video``)."""
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def image_keys(self) -> list[str]:
        """Keys of features stored as PNG bytes in the data parquet (dtype ``image``)."""
        return [k for k, f in self.features.items() if f["dtype"] == "image"]

    @property
    def camera_keys(self) -> list[str]:
        """``video_keys + image_keys`` in feature order."""
        return [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]

    @property
    def depth_keys(self) -> list[str]:
        """Camera keys flagged as depth maps (``info.is_depth_map`` or the legacy ``video.is_depth_map``)."""
        out = []
        for k in self.camera_keys:
            f = self.features[k]
            info = f.get("info") or f.get("video_info") or {}
            if info.get("is_depth_map") or info.get("video.is_depth_map"):
                out.append(k)
        return out

    @property
    def names(self) -> dict[str, Any]:
        """``{key: names}`` as written (list, nested list, dict or None)."""
        return {k: f.get("names") for k, f in self.features.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{key: shape tuple}`` as written in info.json (cameras as on disk, usually (H, W, C))."""
        return {k: tuple(f["shape"]) for k, f in self.features.items() if f.get("shape") is not None}

    @property
    def total_episodes(self) -> int:
        """Number of rows of the episode tables (not info.json's counter)."""
        return len(self.episodes)

    @property
    def total_frames(self) -> int:
        """Sum of episode lengths in the episode tables."""
        return int(self.episodes["length"].sum())

    @property
    def total_tasks(self) -> int:
        return len(self.tasks)

    @property
    def chunks_size(self) -> int:
        return int(self.info.get("chunks_size", 1000))

    # ---------------------------------------------------------------- lookups
    def _episode_row(self, ep_index: int) -> pd.Series:
        try:
            return self.episodes.loc[int(ep_index)]
        except KeyError:
            raise KeyError(
                f"episode {ep_index} is not in {self.root / EPISODES_DIR} "
                f"(episodes {int(self.episodes.index.min())}..{int(self.episodes.index.max())}, {len(self.episodes)} rows)"
            ) from None

    def get_data_file_path(self, ep_index: int) -> Path:
        """Path, relative to ``root``, of the data parquet holding episode ``ep_index`` (via info.json's
        ``data_path`` template). Raises ``KeyError`` for an unknown episode."""
        row = self._episode_row(ep_index)
        return Path(
            self.data_path.format(
                chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"]),
                episode_index=int(ep_index),
            )
        )

    def get_video_file_path(self, ep_index: int, video_key: str) -> Path:
        """Path, relative to ``root``, of the mp4 holding camera ``video_key`` of episode ``ep_index`` (via
        info.json's ``video_path`` template).

        Raises:
            KeyError: unknown episode or ``video_key`` not a video feature / missing its episode columns.
        """
        if video_key not in self.video_keys:
            raise KeyError(f"{video_key!r} is not a video feature of {self.repo_id} (video keys: {self.video_keys})")
        row = self._episode_row(ep_index)
        ck, fk = f"videos/{video_key}/chunk_index", f"videos/{video_key}/file_index"
        if ck not in row.index or fk not in row.index:
            raise KeyError(f"{self.root / EPISODES_DIR}: no columns {ck!r}/{fk!r} for video key {video_key!r}")
        return Path(
            self.video_path.format(
                video_key=video_key, chunk_index=int(row[ck]), file_index=int(row[fk]), episode_index=int(ep_index)
            )
        )

    def get_task_index(self, task: str) -> int | None:
        """``task_index`` of a task string, or None if the task is unknown."""
        if task in self.tasks.index:
            return int(self.tasks.loc[task, "task_index"])
        return None

    def get_task(self, task_index: int) -> str:
        """The task string of ``task_index``. Raises ``KeyError`` if unknown."""
        try:
            return self._task_strings[int(task_index)]
        except KeyError:
            raise KeyError(f"task_index {task_index} not in {self.root / TASKS_PATH}") from None

    def __repr__(self) -> str:
        return (
            f"LeRobotDatasetMetadata(repo_id={self.repo_id!r}, root='{self.root}', fps={self.fps}, "
            f"episodes={self.total_episodes}, frames={self.total_frames}, tasks={self.total_tasks}, "
            f"features={list(self.features)})"
        )
