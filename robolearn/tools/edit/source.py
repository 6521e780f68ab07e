"""Read the episodes of an existing LeRobotDataset v3.0 folder as :class:`EpisodeSource` objects for the
:class:`~robolearn.tools.edit.assemble.DatasetAssembler`.

Rows are read from the data parquet files through info.json's ``data_path`` template and selected by each
episode's ``dataset_from_index``/``dataset_to_index`` range (the ``index`` column), so values are passed through
untouched. Video segments are located by ``videos/<key>/chunk_index``, ``file_index`` and ``from_timestamp``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from robolearn.datasets import parquet_files
from robolearn.tools.edit.assemble import EpisodeSource, VideoRef
from robolearn.datasets.errors import DatasetFormatError
from robolearn.datasets.metadata import LeRobotDatasetMetadata


def resolve_root(root_or_repo_id: str) -> Path:
    """A local dataset folder: the path itself when it exists, else ``$HF_LEROBOT_HOME/<repo_id>``
    (or the Hub cache, via :mod:`robolearn.datasets.hub`).

    Raises:
        FileNotFoundError: neither a folder nor a resolvable repo id.
    """
    p = Path(root_or_repo_id)
    if p.is_dir():
        return p
    from robolearn.datasets.hub import get_lerobot_home

    local = get_lerobot_home() / root_or_repo_id
    if local.is_dir():
        return local
    raise FileNotFoundError(f"{root_or_repo_id!r} is neither a dataset folder nor a dataset under {local.parent}")


class V3Source:
    """Episodes of a v3.0 dataset folder.

    Args:
        root: dataset folder.
        renames: ``{old_key: new_key}`` applied to columns and video keys of every yielded episode.
        drop: feature keys left out of every yielded episode.

    Attributes:
        meta: the :class:`LeRobotDatasetMetadata`.
        features: output features (after ``renames``/``drop``).
    """

    def __init__(self, root: str | Path, renames: Mapping[str, str] | None = None, drop: Sequence[str] = ()):
        self.root = Path(root)
        self.meta = LeRobotDatasetMetadata(self.root.name, root=self.root)
        self.renames = dict(renames or {})
        self.drop = set(drop)
        feats = self.meta.features
        for k in list(self.renames) + list(self.drop):
            if k not in feats:
                raise KeyError(f"feature {k!r} is not in {self.root / 'meta/info.json'} (features: {list(feats)})")
        self.features = {self.renames.get(k, k): {kk: (list(vv) if kk == "shape" else vv) for kk, vv in v.items()}
                         for k, v in feats.items() if k not in self.drop}
        self._file_cache: tuple[Path, pa.Table] | None = None

    @property
    def episode_indices(self) -> list[int]:
        """Episode indices in order."""
        return [int(e) for e in self.meta.episodes.index]

    def _data_table(self, path: Path) -> pa.Table:
        if self._file_cache is None or self._file_cache[0] != path:
            if not path.is_file():
                raise FileNotFoundError(f"data file {path} (referenced by {self.root / 'meta/episodes'}) is missing")
            self._file_cache = (path, parquet_files.read_table(path))
        return self._file_cache[1]

    def episode(self, ep: int) -> EpisodeSource:
        """The rows, task strings and video segments of episode ``ep``.

        Raises:
            KeyError: unknown episode.
            DatasetFormatError: the data file does not hold exactly ``length`` rows for the episode.
        """
        row = self.meta.episodes.loc[int(ep)]
        path = self.root / self.meta.get_data_file_path(int(ep))
        table = self._data_table(path)
        lo, hi, n = int(row["dataset_from_index"]), int(row["dataset_to_index"]), int(row["length"])
        idx = table.column("index")
        mask = pc.and_(pc.greater_equal(idx, lo), pc.less(idx, hi))
        t = table.filter(mask)
        if t.num_rows != n:
            raise DatasetFormatError(f"{path}: episode {ep} should have {n} rows (index {lo}..{hi - 1}), "
                                     f"found {t.num_rows}")
        t = t.sort_by("index")
        keep = [c for c in t.column_names if c not in self.drop and self.meta.features.get(c, {}).get("dtype") != "video"]
        t = t.select(keep).rename_columns([self.renames.get(c, c) for c in keep])
        task_idx = t.column("task_index").to_numpy()
        tasks = [self.meta.get_task(int(i)) for i in task_idx]
        videos = {}
        for key in self.meta.video_keys:
            if key in self.drop:
                continue
            vpath = self.root / self.meta.get_video_file_path(int(ep), key)
            videos[self.renames.get(key, key)] = VideoRef(vpath, float(row[f"videos/{key}/from_timestamp"]))
        return EpisodeSource(t, tasks, videos, label=f"{self.root} episode {ep}")

    def episodes(self, selection: Sequence[int] | None = None) -> Iterator[EpisodeSource]:
        """Yield the selected episodes (default: all) in the given order."""
        for ep in (self.episode_indices if selection is None else selection):
            yield self.episode(int(ep))


def parse_episode_list(text: str) -> list[int]:
    """``"0,3,5-7"`` → ``[0, 3, 5, 6, 7]``.

    Raises:
        ValueError: a malformed item (names it).
    """
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"bad episode list item {part!r} in {text!r} (expected e.g. '0,3,5-7')") from None
    return out


def unique_in_order(values: Sequence[int]) -> list[int]:
    """Drop repeated values, keeping the first occurrence."""
    seen, out = set(), []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


__all__ = ["V3Source", "resolve_root", "parse_episode_list", "unique_in_order"]
