"""Convert a LeRobotDataset v2.1 (or v2.0) folder into a NEW v3.0 folder.

Follows the conversion rules of lerobot's ``convert_dataset_v21_to_v30`` (see the v3.0 format notes, §13), with
these differences, chosen to avoid that converter's known failure modes (lerobot issues #2643, #3786):

- every episode listed in ``meta/episodes.jsonl`` must have its parquet file, and every ``episode_*.parquet`` on
  disk must be listed; each file must hold exactly ``length`` rows of its own ``episode_index`` (nothing is
  dropped silently);
- every mp4 must hold exactly ``length`` frames; a missing mp4 is an error naming it, unless ``videos="skip"``
  (drop the video features, tabular-only) or ``videos="subset"`` (convert only the episodes whose mp4s all exist);
- per-episode stats are recomputed from the data and from decoded video frames, with quantiles, instead of
  copying ``episodes_stats.jsonl`` (which has no quantiles), so ``meta/stats.json`` covers every feature;
- the input folder is never modified (lerobot renames it to ``<root>_old``); the result goes to ``out``.

Rows are copied value for value; ``episode_index``, ``index`` and ``task_index`` are renumbered (they only change
when episodes are left out). Data files are concatenated by size, mp4s by stream copy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow.parquet as pq

from robolearn.datasets import constants as C
from robolearn.tools.edit.assemble import DatasetAssembler, EpisodeSource, VideoRef
from robolearn.tools.edit.source import resolve_root
from robolearn.tools.edit.video_ops import count_frames
from robolearn.datasets.errors import DatasetFormatError

logger = logging.getLogger(__name__)

VIDEO_MODES = ("all", "skip", "subset")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (a v2.1 dataset has meta/episodes.jsonl and meta/tasks.jsonl)")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DatasetFormatError(f"{path}:{i}: invalid JSON: {e}") from None
    return rows


class V21Dataset:
    """A v2.x dataset folder: info, tasks, episodes, and the per-episode file paths.

    Raises:
        FileNotFoundError: ``meta/info.json``, ``episodes.jsonl`` or ``tasks.jsonl`` missing.
        DatasetFormatError: not a v2.x dataset, or malformed metadata (names file and key).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / C.INFO_PATH
        if not info_path.is_file():
            raise FileNotFoundError(f"{info_path} not found: not a LeRobotDataset root")
        self.info = json.loads(info_path.read_text())
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v2"):
            raise DatasetFormatError(f"{info_path}: codebase_version is {version!r}; this converter reads v2.0/v2.1")
        for key in ("fps", "features", "data_path"):
            if key not in self.info:
                raise DatasetFormatError(f"{info_path}: missing key {key!r}")
        fps = float(self.info["fps"])
        if fps <= 0 or not fps.is_integer():
            raise DatasetFormatError(f"{info_path}: fps must be a positive integer for v3.0, got {self.info['fps']!r}")
        self.fps = int(fps)
        self.chunks_size = int(self.info.get("chunks_size", C.DEFAULT_CHUNK_SIZE))
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.video_keys = [k for k, f in self.features.items() if f.get("dtype") == "video"]
        tasks = _read_jsonl(self.root / "meta/tasks.jsonl")
        self.tasks = {int(t["task_index"]): str(t["task"]) for t in tasks}
        eps = _read_jsonl(self.root / "meta/episodes.jsonl")
        self.episodes = {int(e["episode_index"]): int(e["length"]) for e in eps}
        if len(self.episodes) != len(eps):
            raise DatasetFormatError(f"{self.root / 'meta/episodes.jsonl'}: duplicated episode_index values")

    def data_file(self, ep: int) -> Path:
        """Parquet path of episode ``ep`` (v2.1 ``data_path`` template)."""
        return self.root / self.info["data_path"].format(episode_chunk=ep // self.chunks_size, episode_index=ep)

    def video_file(self, ep: int, key: str) -> Path:
        """mp4 path of camera ``key`` of episode ``ep`` (v2.1 ``video_path`` template)."""
        return self.root / self.info["video_path"].format(episode_chunk=ep // self.chunks_size, video_key=key,
                                                          episode_index=ep)

    def check_data_files(self) -> None:
        """Every listed episode has its parquet and every ``episode_*.parquet`` on disk is listed.

        Raises:
            FileNotFoundError: a listed episode's parquet is missing (names it).
            DatasetFormatError: parquet files on disk that ``meta/episodes.jsonl`` does not list (names them).
        """
        missing = [str(self.data_file(e)) for e in sorted(self.episodes) if not self.data_file(e).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} episode parquet file(s) listed in meta/episodes.jsonl are "
                                    f"missing: {missing[:5]}")
        listed = {self.data_file(e).resolve() for e in self.episodes}
        extra = sorted(str(p) for p in (self.root / "data").rglob("*.parquet") if p.resolve() not in listed)
        if extra:
            raise DatasetFormatError(f"{len(extra)} parquet file(s) under {self.root / 'data'} are not listed in "
                                     f"meta/episodes.jsonl (their rows would be lost): {extra[:5]}")


def _episode_source(ds: V21Dataset, ep: int, video_keys: Sequence[str], out_features: dict) -> EpisodeSource:
    path = ds.data_file(ep)
    table = pq.read_table(path)
    n = ds.episodes[ep]
    if table.num_rows != n:
        raise DatasetFormatError(f"{path}: {table.num_rows} rows, but meta/episodes.jsonl says length {n}")
    ep_col = table.column("episode_index").to_numpy()
    if (ep_col != ep).any():
        raise DatasetFormatError(f"{path}: episode_index column holds {sorted(set(ep_col.tolist()))[:5]}, expected {ep}")
    keep = [k for k in out_features if out_features[k]["dtype"] != "video"]
    missing = [k for k in keep if k not in table.column_names]
    if missing:
        raise DatasetFormatError(f"{path}: columns {missing} of meta/info.json features are missing")
    tasks = []
    for ti in table.column("task_index").to_numpy():
        if int(ti) not in ds.tasks:
            raise DatasetFormatError(f"{path}: task_index {int(ti)} is not in meta/tasks.jsonl")
        tasks.append(ds.tasks[int(ti)])
    videos = {}
    for key in video_keys:
        vpath = ds.video_file(ep, key)
        if not vpath.is_file():
            raise FileNotFoundError(f"episode {ep}: video file for '{key}' is missing: {vpath} (use --videos skip "
                                    "for tabular-only conversion or --videos subset to convert only the episodes "
                                    "with videos)")
        frames, _ = count_frames(vpath)
        if frames != n:
            raise DatasetFormatError(f"{vpath}: {frames} video frames, but episode {ep} has {n} rows")
        videos[key] = VideoRef(vpath, 0.0, whole_file=True)
    return EpisodeSource(table.select(keep), tasks, videos, label=f"{path}")


def convert_v21(src: str | Path, out: str | Path, repo_id: str | None = None, videos: str = "all",
                data_file_size_in_mb: float = C.DEFAULT_DATA_FILE_SIZE_IN_MB,
                video_file_size_in_mb: float = C.DEFAULT_VIDEO_FILE_SIZE_IN_MB,
                episodes: Sequence[int] | None = None, max_episodes: int | None = None) -> Path:
    """Convert a v2.x dataset at ``src`` to a new v3.0 dataset at ``out``.

    Args:
        src: v2.x dataset folder (or a repo id under ``$HF_LEROBOT_HOME``).
        out: output folder (must not exist).
        repo_id: recorded in the data files' HF metadata fingerprint; default ``local/<out name>``.
        videos: ``"all"`` (every episode's mp4s are required), ``"skip"`` (drop video features), ``"subset"``
            (keep only the episodes whose mp4s all exist; they are renumbered 0..N-1).
        data_file_size_in_mb, video_file_size_in_mb: roll-over sizes of the output files (MB = 2**20 bytes).
        episodes: source episode indices to convert (default all, ascending).
        max_episodes: keep only the first N of the selected episodes (after the ``subset`` filter).

    Returns:
        The output folder.

    Raises:
        FileNotFoundError: a listed parquet or (``videos="all"``) an mp4 is missing; the message names it.
        DatasetFormatError: row/frame counts that disagree with ``meta/episodes.jsonl``, unlisted parquet files,
            bad task indices, non-integer fps.
        ValueError: unknown ``videos`` mode, unknown episodes, or nothing to convert.
        FileExistsError: ``out`` exists.
    """
    if videos not in VIDEO_MODES:
        raise ValueError(f"videos must be one of {VIDEO_MODES}, got {videos!r}")
    ds = V21Dataset(resolve_root(str(src)))
    ds.check_data_files()
    if ds.video_keys and not ds.info.get("video_path"):
        raise DatasetFormatError(f"{ds.root / C.INFO_PATH}: video features {ds.video_keys} but no video_path")
    sel = sorted(ds.episodes) if episodes is None else [int(e) for e in episodes]
    unknown = [e for e in sel if e not in ds.episodes]
    if unknown:
        raise ValueError(f"episodes {unknown} are not in {ds.root / 'meta/episodes.jsonl'}")
    video_keys = [] if videos == "skip" else list(ds.video_keys)
    if videos == "subset":
        have = [e for e in sel if all(ds.video_file(e, k).is_file() for k in video_keys)]
        dropped = sorted(set(sel) - set(have))
        if dropped:
            logger.warning("--videos subset: leaving out %d episode(s) without videos: %s", len(dropped), dropped)
        sel = have
    if max_episodes is not None:
        sel = sel[: int(max_episodes)]
    if not sel:
        raise ValueError(f"{ds.root}: no episode to convert (videos={videos!r})")

    features: dict[str, dict[str, Any]] = {}
    for k, f in ds.features.items():
        if f.get("dtype") == "video" and k not in video_keys:
            continue
        spec = dict(f)
        if spec.get("dtype") != "video":
            spec["fps"] = ds.fps  # lerobot's converter adds the fps to every non-video feature
        features[k] = spec
    asm = DatasetAssembler(out, repo_id or f"local/{Path(out).name}", ds.fps, features,
                           robot_type=ds.info.get("robot_type"), data_files_size_in_mb=data_file_size_in_mb,
                           video_files_size_in_mb=video_file_size_in_mb, chunks_size=ds.chunks_size)

    def gen() -> Iterator[EpisodeSource]:
        for ep in sel:
            yield _episode_source(ds, ep, video_keys, features)

    try:
        for ep_src in gen():
            asm.add_episode(ep_src)
    except BaseException:
        import shutil

        shutil.rmtree(asm.root, ignore_errors=True)
        raise
    return asm.finish()


def add_v21_parser(sub: Any) -> None:
    """Register the ``v21`` sub-command on an argparse sub-parsers object."""
    p = sub.add_parser("v21", help="LeRobotDataset v2.1 (or v2.0) folder -> v3.0")
    p.add_argument("src", help="v2.1 dataset folder or repo id under $HF_LEROBOT_HOME")
    p.add_argument("--out", required=True, help="output folder (must not exist)")
    p.add_argument("--repo-id", default=None, help="dataset id recorded in the output")
    p.add_argument("--videos", choices=VIDEO_MODES, default="all",
                   help="all: require every mp4; skip: tabular only; subset: only episodes that have their mp4s")
    p.add_argument("--data-file-size-in-mb", type=float, default=C.DEFAULT_DATA_FILE_SIZE_IN_MB)
    p.add_argument("--video-file-size-in-mb", type=float, default=C.DEFAULT_VIDEO_FILE_SIZE_IN_MB)
    p.add_argument("--episodes", default=None, help="source episodes to convert, e.g. 0-9,12")
    p.add_argument("--max-episodes", type=int, default=None, help="convert only the first N selected episodes")
    p.set_defaults(func=main_v21)


def main_v21(args: Any) -> None:
    """CLI entry of ``python -m robolearn.tools.convert v21``."""
    from robolearn.tools.edit.source import parse_episode_list

    eps = parse_episode_list(args.episodes) if args.episodes else None
    out = convert_v21(args.src, args.out, repo_id=args.repo_id, videos=args.videos,
                      data_file_size_in_mb=args.data_file_size_in_mb,
                      video_file_size_in_mb=args.video_file_size_in_mb, episodes=eps, max_episodes=args.max_episodes)
    info = json.loads((Path(out) / C.INFO_PATH).read_text())
    print(f"wrote {out}: {info['total_episodes']} episodes, {info['total_frames']} frames, "
          f"video features {[k for k, f in info['features'].items() if f['dtype'] == 'video']}")
