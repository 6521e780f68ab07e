"""Dataset editing operations. Each reads one or more LeRobotDataset v3.0 folders and writes a NEW folder; the
inputs are only read.

Every output is written by :class:`~robolearn.tools.edit.assemble.DatasetAssembler`, so in every output
``episode_index`` is ``0..N-1`` in output order, ``index`` is contiguous, ``task_index`` follows first-seen task
order, per-episode and global stats (quantiles included) are recomputed, and each camera's mp4 files are rebuilt
from per-episode segments (stream copy when the cut falls on a keyframe, otherwise decode + re-encode in the
source codec; ``reencode_videos`` re-encodes everything). The operations mirror lerobot's
``lerobot-edit-dataset`` (``delete_episodes``, ``split_dataset``, ``merge_datasets``, ``remove_feature``,
``modify_features``, ``recompute_stats``, ``reencode_dataset``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from robolearn.datasets import constants as C
from robolearn.tools.edit.assemble import DatasetAssembler, EpisodeSource
from robolearn.tools.edit.source import V3Source, unique_in_order


def _assembler(src: V3Source, out: str | Path, features: Mapping[str, Any] | None = None,
               reencode: Mapping[str, Any] | None = None, repo_id: str | None = None) -> DatasetAssembler:
    info = src.meta.info
    extra = {k: info[k] for k in ("tools",) if k in info}
    return DatasetAssembler(
        out, repo_id or f"local/{Path(out).name}", int(src.meta.fps), features or src.features,
        robot_type=info.get("robot_type"),
        data_files_size_in_mb=info.get("data_files_size_in_mb", C.DEFAULT_DATA_FILE_SIZE_IN_MB),
        video_files_size_in_mb=info.get("video_files_size_in_mb", C.DEFAULT_VIDEO_FILE_SIZE_IN_MB),
        chunks_size=info.get("chunks_size", C.DEFAULT_CHUNK_SIZE), reencode=reencode, extra_info=extra)


def _write(asm: DatasetAssembler, episodes: Iterable[EpisodeSource]) -> Path:
    try:
        for ep in episodes:
            asm.add_episode(ep)
    except BaseException:
        import shutil

        shutil.rmtree(asm.root, ignore_errors=True)  # do not leave a half-written output behind
        raise
    return asm.finish()


def copy_episodes(root: str | Path, out: str | Path, episodes: Sequence[int] | None = None) -> Path:
    """Write the selected episodes (default all, in the given order) of ``root`` to a new dataset ``out``.

    Raises:
        KeyError: an unknown episode index.
        FileExistsError: ``out`` exists.
    """
    src = V3Source(root)
    sel = src.episode_indices if episodes is None else unique_in_order([int(e) for e in episodes])
    unknown = sorted(set(sel) - set(src.episode_indices))
    if unknown:
        raise KeyError(f"episodes {unknown} are not in {root} (episodes 0..{len(src.episode_indices) - 1})")
    return _write(_assembler(src, out), src.episodes(sel))


def delete_episodes(root: str | Path, out: str | Path, episodes: Sequence[int]) -> Path:
    """Write ``root`` without the given episodes to ``out``; the rest keep their order and are renumbered.

    Raises:
        KeyError: an episode index that is not in ``root``.
        ValueError: every episode would be deleted.
    """
    src = V3Source(root)
    drop = {int(e) for e in episodes}
    unknown = sorted(drop - set(src.episode_indices))
    if unknown:
        raise KeyError(f"cannot delete episodes {unknown}: not in {root} (episodes 0..{len(src.episode_indices) - 1})")
    keep = [e for e in src.episode_indices if e not in drop]
    if not keep:
        raise ValueError(f"deleting {sorted(drop)} would leave {root} without episodes")
    return _write(_assembler(src, out), src.episodes(keep))


def split_episodes(n: int, splits: Mapping[str, float]) -> dict[str, list[int]]:
    """Assign episodes ``0..n-1`` to splits by fraction, in order: split ``k`` gets episodes
    ``[round(n * F_{k-1}), round(n * F_k))`` where ``F_k`` is the cumulative fraction.

    Raises:
        ValueError: a fraction outside (0, 1], fractions summing to more than 1, or a split that gets no episode.
    """
    if not splits:
        raise ValueError("no splits given (expected e.g. train=0.8,val=0.2)")
    for name, f in splits.items():
        if not 0 < f <= 1:
            raise ValueError(f"split {name!r}: fraction {f} is not in (0, 1]")
    total = sum(splits.values())
    if total > 1 + 1e-9:
        raise ValueError(f"split fractions sum to {total:g} > 1: {dict(splits)}")
    out, cum, start = {}, 0.0, 0
    for name, f in splits.items():
        cum += f
        stop = min(n, int(math.floor(n * cum + 0.5)))
        if stop <= start:
            raise ValueError(f"split {name!r} ({f:g} of {n} episodes) gets no episode")
        out[name] = list(range(start, stop))
        start = stop
    return out


def split_dataset(root: str | Path, out_dir: str | Path, splits: Mapping[str, float]) -> dict[str, Path]:
    """Split ``root`` by episode fractions into ``out_dir/<split name>`` datasets (see :func:`split_episodes`).

    Returns:
        ``{split name: output folder}``.

    Raises:
        FileExistsError: an output folder exists. ValueError: bad fractions.
    """
    src = V3Source(root)
    eps = src.episode_indices
    parts = split_episodes(len(eps), splits)
    out_dir = Path(out_dir)
    for name in parts:
        if (out_dir / name).exists():
            raise FileExistsError(f"output folder {out_dir / name} already exists")
    result = {}
    for name, positions in parts.items():
        result[name] = _write(_assembler(src, out_dir / name), src.episodes([eps[i] for i in positions]))
    return result


def _feature_signature(spec: Mapping[str, Any]) -> dict[str, Any]:
    sig = {"dtype": spec.get("dtype"), "shape": list(spec.get("shape") or []), "names": spec.get("names")}
    if spec.get("dtype") == "video":
        info = spec.get("info") or {}
        for k in ("video.codec", "video.pix_fmt", "video.height", "video.width"):
            sig[k] = info.get(k)
    return sig


def feature_differences(a: V3Source, b: V3Source) -> list[str]:
    """Human-readable differences between two datasets' fps and features (dtype, shape, names, video codec/size)."""
    diffs = []
    if a.meta.fps != b.meta.fps:
        diffs.append(f"fps: {a.meta.fps} ({a.root}) vs {b.meta.fps} ({b.root})")
    ka, kb = set(a.features), set(b.features)
    for k in sorted(ka - kb):
        diffs.append(f"feature {k!r} only in {a.root}")
    for k in sorted(kb - ka):
        diffs.append(f"feature {k!r} only in {b.root}")
    for k in [k for k in a.features if k in kb]:
        sa, sb = _feature_signature(a.features[k]), _feature_signature(b.features[k])
        for field in sa:
            if sa[field] != sb[field]:
                diffs.append(f"feature {k!r} {field}: {sa[field]!r} ({a.root}) vs {sb[field]!r} ({b.root})")
    return diffs


def merge_datasets(roots: Sequence[str | Path], out: str | Path) -> Path:
    """Concatenate datasets with identical fps and features into ``out`` (episodes of ``roots[0]`` first).
    Tasks are merged by string.

    Raises:
        ValueError: fewer than 2 inputs, or differing fps/features (the message lists every difference).
    """
    if len(roots) < 2:
        raise ValueError(f"merge needs at least 2 datasets, got {len(roots)}")
    sources = [V3Source(r) for r in roots]
    diffs = [d for s in sources[1:] for d in feature_differences(sources[0], s)]
    if diffs:
        raise ValueError("cannot merge datasets with different features or fps:\n  " + "\n  ".join(diffs))

    def gen():
        for s in sources:
            yield from s.episodes()

    return _write(_assembler(sources[0], out), gen())


def remove_feature(root: str | Path, out: str | Path, keys: Sequence[str]) -> Path:
    """Write ``root`` without the features ``keys`` (columns, videos, stats) to ``out``.

    Raises:
        ValueError: a default feature (``timestamp``, ``index``, ...) cannot be removed.
        KeyError: an unknown feature.
    """
    bad = [k for k in keys if k in C.DEFAULT_FEATURES]
    if bad:
        raise ValueError(f"cannot remove default features {bad}")
    src = V3Source(root, drop=keys)
    return _write(_assembler(src, out), src.episodes())


def rename_feature(root: str | Path, out: str | Path, renames: Mapping[str, str]) -> Path:
    """Write ``root`` with features renamed (``{old: new}``: columns, video folders, stats keys) to ``out``.

    Raises:
        ValueError: renaming a default feature, a new name that contains ``/`` or collides with another feature.
        KeyError: an unknown feature.
    """
    bad = [k for k in list(renames) + list(renames.values()) if k in C.DEFAULT_FEATURES]
    if bad:
        raise ValueError(f"cannot rename default features {bad}")
    for new in renames.values():
        if "/" in new or not new:
            raise ValueError(f"new feature name {new!r} must be non-empty and must not contain '/'")
    src = V3Source(root, renames=renames)
    if len(src.features) != len(src.meta.features):
        raise ValueError(f"renames {dict(renames)} make two features share a name")
    return _write(_assembler(src, out), src.episodes())


def recompute_stats(root: str | Path, out: str | Path) -> Path:
    """Write a copy of ``root`` to ``out`` with per-episode and global stats (quantiles included) recomputed from
    the data rows and decoded video frames."""
    return copy_episodes(root, out)


def reencode_videos(root: str | Path, out: str | Path, vcodec: str = "libsvtav1", crf: int | None = 30,
                    g: int | None = 2, preset: int | str | None = None, pix_fmt: str = "yuv420p") -> Path:
    """Write ``root`` to ``out`` with every video decoded and re-encoded (``vcodec``, ``crf``, GOP ``g``,
    ``preset``, ``pix_fmt``; see :func:`robolearn.datasets.video_encode.encode_video_frames`).

    Raises:
        ValueError: the dataset has no video feature, or the encoder is unavailable.
    """
    from robolearn.datasets.video_encode import resolve_vcodec

    src = V3Source(root)
    if not src.meta.video_keys:
        raise ValueError(f"{root} has no video features to re-encode")
    enc = {"vcodec": resolve_vcodec(vcodec), "crf": crf, "g": g, "preset": preset, "pix_fmt": pix_fmt}
    return _write(_assembler(src, out, reencode=enc), src.episodes())
