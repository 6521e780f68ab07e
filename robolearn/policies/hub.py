"""Push a trained policy's ``pretrained_model/`` folder to a Hugging Face Hub model repo.

    python -m robolearn.policies.hub push <pretrained_model dir> <owner/name> [--private] [--eval-info <json>]
    python -m robolearn.policies.hub card <pretrained_model dir> <owner/name>      # print the README.md only

The repo gets the folder's files at its root, as lerobot lays out its policy repos (robolearn's ``config.yaml``,
``model.safetensors``, ``stats.json``, ``provenance.json``; or a lerobot folder's ``config.json``, weights and
processor files), plus a model card ``README.md`` (:func:`robolearn.policies.model_card.model_card`) and the
``eval_info.json`` it cites, in **one commit** (``HfApi.upload_folder``) that also deletes files of an earlier push
that this one does not have, so the repo is exactly this export. ``load_policy("<owner/name>")`` (and
``policy.path=<owner/name>``) then downloads it with ``snapshot_download`` and rebuilds it.

``train.py`` can push at the end of training: ``callbacks.export_pretrained.push_to_hub=<owner/name>``
(:class:`robolearn.callbacks.export.ExportPretrained`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

__all__ = ["check_can_push", "push_policy", "run_eval_info", "upload_files"]

_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
README_NAME = "README.md"
EVAL_INFO_NAME = "eval_info.json"
PROVENANCE_NAME = "provenance.json"


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is ``owner/name``.

    Raises:
        ValueError: anything else (a bare ``name`` would resolve to another namespace when loading).
    """
    if not isinstance(repo_id, str) or _REPO_ID.fullmatch(repo_id) is None or repo_id.startswith((".", "/")):
        raise ValueError(f"Hub repo id {repo_id!r} must be <owner>/<name> (letters, digits, '-', '_', '.')")
    return repo_id


def check_can_push() -> None:
    """Fail now, not after training, when a push with the default ``HfApi`` cannot work: offline mode, or no token.

    Raises:
        RuntimeError: ``HF_HUB_OFFLINE`` is set, or no Hugging Face token is configured (``HF_TOKEN`` or
            ``hf auth login``).
    """
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise RuntimeError("pushing to the Hugging Face Hub was asked for, but HF_HUB_OFFLINE is set")
    if get_token() is None:
        raise RuntimeError("pushing to the Hugging Face Hub was asked for, but no token is configured: set HF_TOKEN "
                           "or run `hf auth login`")


def check_folder(folder: Path) -> str:
    """The format (``"robolearn"``/``"lerobot"``) of a folder that :func:`~robolearn.policies.load_policy` can read,
    checked without building the model.

    Raises:
        FileNotFoundError: not a folder, no config, or no ``model.safetensors``.
        KeyError, ValueError: a robolearn config that ``load_policy`` would refuse (file and key named); a lerobot
            ``type`` robolearn has no port of.
    """
    from robolearn.policies.pretrained import WEIGHTS_NAME, pretrained_format, read_robolearn_config

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected a pretrained_model folder)")
    fmt = pretrained_format(folder)
    if fmt == "robolearn":
        read_robolearn_config(folder)  # class, nodes and weights file, as load_policy checks them
    else:
        from robolearn.policies.lerobot_compat import CONFIG_JSON, format_module

        if not (folder / WEIGHTS_NAME).is_file():
            raise FileNotFoundError(f"{folder / WEIGHTS_NAME} not found")
        format_module(json.loads((folder / CONFIG_JSON).read_text())["type"])
    return fmt


def upload_files(folder: Path, include_provenance: bool = True) -> list[str]:
    """Paths (relative, POSIX) of the files of ``folder`` that are uploaded: every file except hidden ones, a
    ``README.md`` and an ``eval_info.json`` (both replaced by the push), and ``provenance.json`` unless
    ``include_provenance``."""
    skipped = {README_NAME, EVAL_INFO_NAME} | (set() if include_provenance else {PROVENANCE_NAME})
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(p.startswith(".") for p in rel.parts) and rel.as_posix() not in skipped:
            out.append(rel.as_posix())
    return out


def _link(src: Path, dst: Path) -> None:
    """``dst`` -> ``src`` as a symlink (no copy of the weights), or a copy where symlinks are not allowed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)


def run_eval_info(folder: str | os.PathLike) -> Path | None:
    """The ``eval_info.json`` of the run that exported ``folder``: ``<folder>/eval_info.json``, or, for train.py's
    layout ``<run>/checkpoints/pretrained_model``, ``<run>/eval_info.json`` (written by ``callbacks=rollout_eval``);
    None when there is neither."""
    folder = Path(folder)
    candidates = [folder / EVAL_INFO_NAME]
    if folder.parent.name == "checkpoints":
        candidates.append(folder.parent.parent / EVAL_INFO_NAME)
    return next((p for p in candidates if p.is_file()), None)


def push_policy(folder: str | os.PathLike, repo_id: str, *, eval_info: str | os.PathLike | None = None,
                step: int | None = None, private: bool = False, branch: str | None = None, tags: Sequence[str] = (),
                license: str | None = "apache-2.0", include_provenance: bool = True,
                commit_message: str | None = None, api: Any = None, token: str | None = None) -> Any:
    """Upload ``folder`` with a model card to the Hub model repo ``repo_id``, in one commit.

    Operations, in order: ``create_repo(repo_id, repo_type="model", private=..., exist_ok=True)``;
    ``create_branch`` when ``branch`` is set; ``upload_folder`` of a temporary folder holding links to
    :func:`upload_files`, ``README.md`` and ``eval_info.json`` (when there is one), with ``delete_patterns="*"`` so
    files of an earlier push that are not in this one are removed in the same commit (``.gitattributes`` is kept).

    Args:
        folder: a ``pretrained_model`` folder (robolearn's, or lerobot's format).
        repo_id: ``owner/name``.
        eval_info: an ``eval_info.json`` to show in the card and upload (see :func:`run_eval_info`); None: the card
            says there is no evaluation.
        step: optimizer steps of the exported weights, for the card (None: the config's ``trainer.max_steps``).
        private: create the repo private (ignored when it exists).
        branch: target branch (None = ``main``); created if missing.
        tags, license: model card header fields.
        include_provenance: upload ``provenance.json`` and show it in the card (it holds the command line, the
            host name and local paths).
        commit_message: default ``Upload <type> policy with robolearn``.
        api: an ``huggingface_hub.HfApi``-like object (default ``HfApi(token=token)``).
    Returns:
        What ``upload_folder`` returns (a ``CommitInfo`` for the real Hub).
    Raises:
        ValueError: ``repo_id`` is not ``owner/name``; a config ``load_policy`` would refuse; a bad ``eval_info.json``.
        FileNotFoundError, KeyError: see :func:`check_folder`; ``eval_info`` missing.
    """
    from huggingface_hub import HfApi

    from robolearn.policies.model_card import model_card, read_eval_info

    check_repo_id(repo_id)
    folder = Path(folder)
    fmt = check_folder(folder)
    info = read_eval_info(eval_info) if eval_info is not None else None
    card = model_card(folder, repo_id, eval_info=info, step=step, tags=tags, license=license,
                      include_provenance=include_provenance)
    api = api if api is not None else HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="robolearn-policy-push-") as tmp:
        stage = Path(tmp)
        for rel in upload_files(folder, include_provenance):
            _link(folder / rel, stage / rel)
        (stage / README_NAME).write_text(card)
        if eval_info is not None:
            _link(Path(eval_info), stage / EVAL_INFO_NAME)
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if branch is not None:
            api.create_branch(repo_id, repo_type="model", branch=branch, exist_ok=True)
        return api.upload_folder(repo_id=repo_id, folder_path=str(stage), repo_type="model", revision=branch,
                                 commit_message=commit_message or f"Upload {fmt}-format policy with robolearn",
                                 delete_patterns="*")


def main(argv: list[str] | None = None) -> int:
    """``python -m robolearn.policies.hub push|card <folder> <owner/name> [...]``; returns the exit status."""
    from huggingface_hub.errors import HfHubHTTPError

    from robolearn.policies.model_card import model_card, read_eval_info

    parser = argparse.ArgumentParser(prog="python -m robolearn.policies.hub",
                                     description="Push a pretrained policy folder to a Hugging Face Hub model repo.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    commands = {"push": "upload the folder, a model card and eval_info.json in one commit",
                "card": "print the model card (README.md) that push would write"}
    for name, text in commands.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("folder", type=Path, help="a pretrained_model folder (robolearn or lerobot format)")
        p.add_argument("repo_id", help="<owner>/<name> of the Hub model repo")
        p.add_argument("--eval-info", type=Path, default=None,
                       help="eval_info.json for the card (default: the run's, next to a train.py export)")
        p.add_argument("--no-eval-info", action="store_true", help="attach no evaluation")
        p.add_argument("--no-provenance", action="store_true",
                       help="leave provenance.json (command, host, paths) out of the upload and the card")
        p.add_argument("--tags", nargs="*", default=[])
        p.add_argument("--license", default="apache-2.0")
        if name == "push":
            p.add_argument("--private", action="store_true")
            p.add_argument("--branch", default=None)
            p.add_argument("--message", default=None, help="commit message")
    args = parser.parse_args(argv)
    eval_info = None if args.no_eval_info else args.eval_info or run_eval_info(args.folder)
    try:
        if args.cmd == "card":
            info = read_eval_info(eval_info) if eval_info is not None else None
            print(model_card(args.folder, check_repo_id(args.repo_id), eval_info=info, tags=args.tags,
                             license=args.license, include_provenance=not args.no_provenance))
            return 0
        if eval_info is not None:
            print(f"evaluation: {eval_info}")
        commit = push_policy(args.folder, args.repo_id, eval_info=eval_info, private=args.private,
                             branch=args.branch, tags=args.tags, license=args.license,
                             include_provenance=not args.no_provenance, commit_message=args.message)
    except (OSError, ValueError, KeyError, HfHubHTTPError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"pushed {args.folder} to {args.repo_id}: {getattr(commit, 'commit_url', commit)}\n"
          f"load it with: python eval.py policy.path={args.repo_id} env=<simulator>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
