"""Resolving a LeRobotDataset on the Hugging Face Hub (``repo_type="dataset"``, version tag ``v3.0``).

Lookup order when no ``root`` is given:

1. ``$HF_LEROBOT_HOME/<repo_id>`` (default ``~/.cache/huggingface/lerobot/<repo_id>``) if it has ``meta/info.json``
   (a dataset recorded or copied there);
2. otherwise the revision-safe Hub snapshot cache ``$HF_LEROBOT_HOME/hub``: ``snapshot_download`` first with
   ``allow_patterns="meta/**"``, then with exactly the data / video files the selected episodes reference.

Everything goes through ``huggingface_hub.snapshot_download``, so ``HF_HUB_OFFLINE=1`` works from a populated cache
(``datasets--owner--name/refs/<revision>`` + ``snapshots/<commit>/...``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from robolearn.datasets.constants import CODEBASE_VERSION, INFO_PATH
from robolearn.datasets.errors import BackwardCompatibilityError, DatasetNotFoundError, ForwardCompatibilityError

__all__ = [
    "get_lerobot_home",
    "get_hub_cache_dir",
    "get_safe_version",
    "snapshot",
    "resolve_metadata_root",
    "ensure_files",
]

_VERSION_REF = re.compile(r"^v(\d+)\.(\d+)$")


def get_lerobot_home() -> Path:
    """``$HF_LEROBOT_HOME`` or ``~/.cache/huggingface/lerobot`` (read at call time)."""
    env = os.environ.get("HF_LEROBOT_HOME")
    return Path(env).expanduser() if env else Path("~/.cache/huggingface/lerobot").expanduser()


def get_hub_cache_dir() -> Path:
    """Hub snapshot cache used for datasets: ``$HF_LEROBOT_HOME/hub`` (standard huggingface_hub cache layout)."""
    return get_lerobot_home() / "hub"


def _offline() -> bool:
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:  # pragma: no cover - older huggingface_hub
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)


def get_safe_version(repo_id: str, revision: str | None) -> str:
    """The revision to download.

    An explicit ``revision`` is returned unchanged. Otherwise the codebase tag ``"v3.0"``: online, the repo's refs are
    listed to fail early with a clear message; offline, ``"v3.0"`` is returned and the cache must hold it.

    Raises:
        BackwardCompatibilityError: the repo only has older version tags (e.g. ``v2.1``); convert it first.
        ForwardCompatibilityError: the repo only has newer major versions.
        DatasetNotFoundError: the repo does not exist / cannot be listed, or has no version tag at all.
    """
    if revision is not None:
        return revision
    if _offline():
        return CODEBASE_VERSION
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        refs = HfApi().list_repo_refs(repo_id, repo_type="dataset")
    except HfHubHTTPError as e:
        raise DatasetNotFoundError(f"cannot list the refs of dataset {repo_id!r} on the Hub: {e}") from e
    names = [r.name for r in list(refs.branches) + list(refs.tags)]
    if CODEBASE_VERSION in names:
        return CODEBASE_VERSION
    versions = sorted({(int(m.group(1)), int(m.group(2))) for n in names if (m := _VERSION_REF.match(n))})
    cur_major, cur_minor = (int(x) for x in CODEBASE_VERSION[1:].split("."))
    same = [v for v in versions if v[0] == cur_major and v[1] <= cur_minor]
    if same:
        return "v{}.{}".format(*same[-1])
    if any(v[0] < cur_major for v in versions):
        raise BackwardCompatibilityError(
            f"dataset {repo_id!r} on the Hub only has versions {['v%d.%d' % v for v in versions]}; robolearn reads "
            f"{CODEBASE_VERSION}. Download it and convert it to v3.0 (e.g. `python -m lerobot.scripts.convert_dataset_v21_to_v30`)."
        )
    if versions:
        raise ForwardCompatibilityError(
            f"dataset {repo_id!r} on the Hub only has newer versions {['v%d.%d' % v for v in versions]}"
        )
    raise DatasetNotFoundError(
        f"dataset {repo_id!r} on the Hub has no version tag (e.g. {CODEBASE_VERSION!r}); pass revision='main' "
        "explicitly or tag the repo."
    )


def snapshot(
    repo_id: str,
    revision: str | None = None,
    allow_patterns: Iterable[str] | str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """``snapshot_download(repo_id, repo_type="dataset", revision=..., allow_patterns=...)`` into the Hub cache.

    Args:
        repo_id: ``"owner/name"``.
        revision: branch, tag or commit; None → :func:`get_safe_version` (the ``v3.0`` tag).
        allow_patterns: glob patterns (or exact paths) relative to the repo root.
        cache_dir: Hub cache folder; default :func:`get_hub_cache_dir`.

    Returns:
        The snapshot folder (``<cache>/datasets--owner--name/snapshots/<commit>``).

    Raises:
        DatasetNotFoundError: repo or revision unknown, or offline (``HF_HUB_OFFLINE=1``) with no cached snapshot
            of that revision. The message names the repo, revision and cache folder.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    revision = get_safe_version(repo_id, revision)
    cache_dir = Path(cache_dir) if cache_dir is not None else get_hub_cache_dir()
    if isinstance(allow_patterns, str):
        allow_patterns = [allow_patterns]
    elif allow_patterns is not None:
        allow_patterns = list(allow_patterns)
    try:
        folder = snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            cache_dir=str(cache_dir),
            allow_patterns=allow_patterns,
        )
    except RevisionNotFoundError as e:
        raise DatasetNotFoundError(
            f"dataset {repo_id!r} has no revision {revision!r} on the Hub. v3.0 datasets are tagged "
            f"{CODEBASE_VERSION!r}; an older dataset may need conversion to v3.0 (e.g. `python -m lerobot.scripts.convert_dataset_v21_to_v30`)."
        ) from e
    except RepositoryNotFoundError as e:
        raise DatasetNotFoundError(f"dataset repo {repo_id!r} not found on the Hub (or it is private/gated)") from e
    except LocalEntryNotFoundError as e:
        hint = " (HF_HUB_OFFLINE is set)" if _offline() else ""
        raise DatasetNotFoundError(
            f"dataset {repo_id!r} at revision {revision!r} is not in the local Hub cache {cache_dir}{hint} and "
            "could not be downloaded. Go online, or pass root= a local copy of the dataset."
        ) from e
    return Path(folder)


def resolve_metadata_root(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """Folder holding ``meta/`` for ``repo_id`` when no ``root`` was given.

    ``$HF_LEROBOT_HOME/<repo_id>`` if it has ``meta/info.json``; else a Hub snapshot of ``meta/**``.

    Raises:
        DatasetNotFoundError: see :func:`snapshot`; also if the snapshot has no ``meta/info.json``.
    """
    local = get_lerobot_home() / repo_id
    if (local / INFO_PATH).is_file():
        return local
    folder = snapshot(repo_id, revision=revision, allow_patterns=["meta/**"], cache_dir=cache_dir)
    if not (folder / INFO_PATH).is_file():
        raise DatasetNotFoundError(
            f"dataset {repo_id!r} (revision {revision or CODEBASE_VERSION!r}) resolved to {folder}, which has no "
            f"{INFO_PATH}: is it a LeRobotDataset?"
        )
    return folder


def ensure_files(
    repo_id: str,
    root: str | Path,
    rel_paths: Iterable[str | Path],
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Make sure the files ``rel_paths`` (relative to the dataset root) are present, downloading exactly those.

    Args:
        root: current dataset folder (a Hub snapshot folder).
        rel_paths: data parquet / mp4 paths the selected episodes reference.

    Returns:
        The folder holding them (the same snapshot folder unless the revision moved).

    Raises:
        DatasetNotFoundError: see :func:`snapshot`.
        FileNotFoundError: files still missing after the download (offline cache incomplete, or not on the Hub).
    """
    root = Path(root)
    rel = sorted({Path(p).as_posix() for p in rel_paths})
    missing = [p for p in rel if not (root / p).is_file()]
    if not missing:
        return root
    folder = snapshot(repo_id, revision=revision, allow_patterns=missing, cache_dir=cache_dir)
    still = [p for p in rel if not (folder / p).is_file()]
    if still:
        more = f" (+{len(still) - 5} more)" if len(still) > 5 else ""
        raise FileNotFoundError(
            f"dataset {repo_id!r}: files {still[:5]}{more} are missing from {folder} after snapshot_download"
            + (" (HF_HUB_OFFLINE is set: the cache has only part of the dataset)" if _offline() else "")
        )
    return folder

