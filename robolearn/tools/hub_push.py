"""Publishing a LeRobotDataset v3.0 folder to the Hugging Face Hub, and pulling selected episodes back.

``push_to_hub`` uploads ``meta/``, ``data/`` and (optionally) ``videos/`` plus a dataset card (``README.md``) in
**one commit** (``HfApi.create_commit``), then tags the commit ``v3.0`` — the revision lerobot and robolearn
readers ask for. A dataset with uncommitted writes (temporary ``.tmp`` files left by an interrupted
``save_episode``) is refused: run ``python -m robolearn.datasets.repair`` first.

``pull`` downloads ``meta/`` and only the data/video files the chosen episodes live in (through
``snapshot_download``, so ``HF_HUB_OFFLINE=1`` works from a populated cache), optionally copying them into a
plain folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

from robolearn.datasets.constants import CODEBASE_VERSION, INFO_PATH

__all__ = ["dataset_card", "push_to_hub", "pull"]


def _files_to_upload(root: Path, push_videos: bool) -> list[Path]:
    files = []
    for sub in ("meta", "data", "images") + (("videos",) if push_videos else ()):
        base = root / sub
        if base.is_dir():
            files += sorted(p for p in base.rglob("*") if p.is_file())
    return files


def dataset_card(meta, tags: Sequence[str] = (), license: str | None = "apache-2.0") -> str:
    """The ``README.md`` of a pushed dataset: YAML header (license, ``robotics`` task, tags, parquet config for the
    dataset viewer) and a body with a summary, a features table and ``meta/info.json``.

    Args:
        meta: the dataset's :class:`~robolearn.datasets.metadata.LeRobotDatasetMetadata`.
        tags: extra Hub tags (``LeRobot`` and ``robolearn`` are always added).
        license: SPDX-style license id for the header, or None.
    """
    from huggingface_hub import DatasetCardData

    info = meta.info
    all_tags = ["LeRobot", "robolearn"] + [t for t in tags if t not in ("LeRobot", "robolearn")]
    if info.get("robot_type"):
        all_tags.append(str(info["robot_type"]))
    data = DatasetCardData(
        license=license,
        task_categories=["robotics"],
        tags=all_tags,
        configs=[{"config_name": "default", "data_files": "data/*/*.parquet"}],
    )
    rows = []
    for key, spec in info["features"].items():
        names = spec.get("names")
        names_s = ", ".join(map(str, names)) if isinstance(names, list) and len(names) <= 12 else (
            f"{len(names)} names" if isinstance(names, list) else "")
        rows.append(f"| `{key}` | {spec['dtype']} | {list(spec.get('shape', []))} | {names_s} |")
    tasks = list(meta._task_strings.values())
    body = "\n".join(
        [
            f"# {meta.repo_id}",
            "",
            f"A LeRobotDataset {info.get('codebase_version', CODEBASE_VERSION)} dataset, written with robolearn and "
            "readable by lerobot and robolearn.",
            "",
            "| robot_type | fps | episodes | frames | tasks |",
            "|---|---|---|---|---|",
            f"| {info.get('robot_type')} | {info['fps']} | {info['total_episodes']} | {info['total_frames']} | "
            f"{len(tasks)} |",
            "",
            "## Tasks",
            "",
            *[f"- {t}" for t in tasks[:50]],
            *(["- ..."] if len(tasks) > 50 else []),
            "",
            "## Features",
            "",
            "| key | dtype | shape | names |",
            "|---|---|---|---|",
            *rows,
            "",
            "## meta/info.json",
            "",
            "```json",
            json.dumps(info, indent=4),
            "```",
            "",
        ]
    )
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def push_to_hub(
    root: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    branch: str | None = None,
    tags: Sequence[str] = (),
    license: str | None = "apache-2.0",
    push_videos: bool = True,
    commit_message: str | None = None,
    api: Any = None,
    token: str | None = None,
) -> Any:
    """Upload the dataset folder ``root`` to the Hub dataset repo ``repo_id`` in one commit, tagged ``v3.0``.

    Operations, in order: ``create_repo(repo_type="dataset", private=..., exist_ok=True)``; ``create_branch`` when
    ``branch`` is set; ``create_commit`` adding every file under ``meta/``, ``data/``, ``images/`` and ``videos/``
    (unless ``push_videos=False``) plus ``README.md``; ``create_tag(v3.0)`` on that branch.

    Args:
        root: the dataset folder (with ``meta/info.json``).
        repo_id: ``"owner/name"`` on the Hub.
        private: create the repo private (ignored when it already exists).
        branch: target branch (None = main).
        tags, license: dataset card header fields.
        push_videos: False leaves ``videos/`` out (tabular-only upload).
        api: an ``huggingface_hub.HfApi`` (default: a new one with ``token``).
    Returns:
        The ``CommitInfo`` of the upload.
    Raises:
        FileNotFoundError: ``root`` has no ``meta/info.json``.
        RuntimeError: ``root`` holds temporary files of an interrupted write (names them).
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from robolearn.datasets.metadata import LeRobotDatasetMetadata

    root = Path(root)
    if not (root / INFO_PATH).is_file():
        raise FileNotFoundError(f"{root / INFO_PATH} not found: {root} is not a LeRobotDataset folder")
    leftovers = sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))
    if leftovers:
        raise RuntimeError(
            f"{root} has temporary files of an interrupted write ({leftovers[:5]}); run "
            f"`python -m robolearn.datasets.repair {root}` before pushing"
        )
    meta = LeRobotDatasetMetadata(repo_id, root=root)
    api = api if api is not None else HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if branch is not None:
        api.create_branch(repo_id, repo_type="dataset", branch=branch, exist_ok=True)
    ops = [
        CommitOperationAdd(path_in_repo=p.relative_to(root).as_posix(), path_or_fileobj=str(p))
        for p in _files_to_upload(root, push_videos)
    ]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=dataset_card(meta, tags, license).encode()))
    info = api.create_commit(
        repo_id,
        operations=ops,
        commit_message=commit_message or f"Upload LeRobotDataset {CODEBASE_VERSION} ({meta.total_episodes} episodes)",
        repo_type="dataset",
        revision=branch,
    )
    api.create_tag(repo_id, tag=CODEBASE_VERSION, revision=branch, repo_type="dataset", exist_ok=True)
    return info


def pull(
    repo_id: str,
    episodes: Iterable[int] | None = None,
    revision: str | None = None,
    out: str | Path | None = None,
    download_videos: bool = True,
) -> Path:
    """Download ``meta/`` and the data (and video) files holding ``episodes`` (None = all) of a Hub dataset.

    Args:
        repo_id: ``"owner/name"``.
        episodes: episode indices; only the files they live in are downloaded.
        revision: Hub revision (default the ``v3.0`` tag).
        out: copy the downloaded files into this plain folder (None: leave them in the Hub cache).
        download_videos: False skips the MP4 files.
    Returns:
        The folder holding the dataset files (the snapshot folder, or ``out``).
    Raises:
        DatasetNotFoundError: unknown repo/revision, or offline without a cached copy.
        KeyError: an episode index the dataset does not have.
    """
    from robolearn.datasets.hub import ensure_files, snapshot
    from robolearn.datasets.metadata import LeRobotDatasetMetadata

    snap = snapshot(repo_id, revision=revision, allow_patterns=["meta/**"])
    meta = LeRobotDatasetMetadata(repo_id, root=snap)
    available = set(int(e) for e in meta.episodes.index)
    eps = sorted(available) if episodes is None else sorted({int(e) for e in episodes})
    unknown = [e for e in eps if e not in available]
    if unknown:
        raise KeyError(f"dataset {repo_id!r} has no episodes {unknown} (it has {len(available)})")
    rel = {str(meta.get_data_file_path(e)) for e in eps}
    if download_videos:
        rel |= {str(meta.get_video_file_path(e, k)) for e in eps for k in meta.video_keys}
    folder = ensure_files(repo_id, snap, sorted(rel), revision=revision)
    if out is None:
        return folder
    out = Path(out)
    for rel_path in [*(p.relative_to(folder).as_posix() for p in (folder / "meta").rglob("*") if p.is_file()),
                     *sorted(rel)]:
        dst = out / rel_path
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / rel_path, dst)
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m robolearn.tools.hub_push push <root> <repo_id> [...]`` / ``pull <repo_id> [...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m robolearn.tools.hub_push",
                                     description="Push/pull LeRobotDatasets.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("push", help="upload a dataset folder in one commit and tag it v3.0")
    p.add_argument("root", type=Path)
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.add_argument("--branch", default=None)
    p.add_argument("--tags", nargs="*", default=[])
    p.add_argument("--license", default="apache-2.0")
    p.add_argument("--no-videos", action="store_true", help="leave videos/ out")
    q = sub.add_parser("pull", help="download meta/ and the files of selected episodes")
    q.add_argument("repo_id")
    q.add_argument("--episodes", type=int, nargs="*", default=None)
    q.add_argument("--revision", default=None)
    q.add_argument("--out", type=Path, default=None, help="copy into this folder instead of using the Hub cache")
    q.add_argument("--no-videos", action="store_true")
    args = parser.parse_args(argv)
    if args.cmd == "push":
        info = push_to_hub(args.root, args.repo_id, private=args.private, branch=args.branch, tags=args.tags,
                           license=args.license, push_videos=not args.no_videos)
        print(f"pushed {args.root} to {args.repo_id}: {getattr(info, 'commit_url', info)}")
    else:
        folder = pull(args.repo_id, episodes=args.episodes, revision=args.revision, out=args.out,
                      download_videos=not args.no_videos)
        print(f"{args.repo_id}: files in {folder}")


if __name__ == "__main__":
    main()
