"""A local stand-in for ``huggingface_hub.HfApi`` that commits model repos into a Hugging Face cache folder.

Each ``upload_folder`` call makes a commit: the files of the previous commit on that revision, minus those matching
``delete_patterns`` (huggingface_hub's own ``filter_repo_objects``, ``.gitattributes`` kept), plus the folder's files
(read during the call, as the real upload does). It is written in the cache layout that ``snapshot_download`` reads
when offline: ``models--<owner>--<name>/blobs/<sha256>``, ``snapshots/<commit>/<path>`` (symlinks to the blobs) and
``refs/<revision>``. So ``load_policy("<owner>/<name>")`` with ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE`` (or
``huggingface_hub.constants.HF_HUB_CACHE``) pointing at the folder loads what was pushed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace


class LocalHub:
    """``create_repo``, ``create_branch`` and ``upload_folder`` of ``HfApi`` over a local cache folder; every call is
    recorded in ``calls`` as ``(name, kwargs)``."""

    def __init__(self, cache: Path):
        self.cache = Path(cache)
        self.calls: list[tuple[str, dict]] = []
        self.private: dict[str, bool | None] = {}

    def repo_dir(self, repo_id: str) -> Path:
        return self.cache / ("models--" + repo_id.replace("/", "--"))

    def head(self, repo_id: str, revision: str = "main") -> str | None:
        ref = self.repo_dir(repo_id) / "refs" / revision
        return ref.read_text() if ref.is_file() else None

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """``{path: content}`` of the repo at ``revision`` (empty before the first commit)."""
        commit = self.head(repo_id, revision)
        if commit is None:
            return {}
        snap = self.repo_dir(repo_id) / "snapshots" / commit
        return {p.relative_to(snap).as_posix(): p.read_bytes() for p in sorted(snap.rglob("*")) if p.is_file()}

    def create_repo(self, repo_id: str, *, repo_type: str | None = None, private: bool | None = None,
                    exist_ok: bool = False, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, "repo_type": repo_type, "private": private,
                                           "exist_ok": exist_ok, **kwargs}))
        assert repo_type == "model", repo_type
        if repo_id in self.private and not exist_ok:
            raise FileExistsError(repo_id)
        self.private.setdefault(repo_id, private)
        (self.repo_dir(repo_id) / "refs").mkdir(parents=True, exist_ok=True)
        return SimpleNamespace(repo_id=repo_id, url=f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id: str, *, branch: str, repo_type: str | None = None, exist_ok: bool = False,
                      **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, "branch": branch, "repo_type": repo_type,
                                             "exist_ok": exist_ok, **kwargs}))
        if self.head(repo_id, branch) is not None:
            if not exist_ok:
                raise FileExistsError(branch)
            return
        main = self.head(repo_id)
        if main is not None:
            (self.repo_dir(repo_id) / "refs" / branch).write_text(main)

    def upload_folder(self, *, repo_id: str, folder_path: str, repo_type: str | None = None,
                      revision: str | None = None, commit_message: str | None = None,
                      delete_patterns: list[str] | str | None = None, **kwargs):
        from huggingface_hub.utils import filter_repo_objects

        self.calls.append(("upload_folder", {"repo_id": repo_id, "folder_path": folder_path, "repo_type": repo_type,
                                             "revision": revision, "commit_message": commit_message,
                                             "delete_patterns": delete_patterns, **kwargs}))
        assert repo_id in self.private, f"upload_folder before create_repo({repo_id!r})"
        revision = revision or "main"
        files = self.files(repo_id, revision)
        if delete_patterns is not None:
            for path in list(filter_repo_objects(list(files), allow_patterns=delete_patterns)):
                if path != ".gitattributes":
                    del files[path]
        folder = Path(folder_path)
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and rel.parts[0] not in (".git", ".cache"):
                files[rel.as_posix()] = path.read_bytes()
        digest = hashlib.sha1()
        repo = self.repo_dir(repo_id)
        blobs = {}
        for rel, content in sorted(files.items()):
            blobs[rel] = hashlib.sha256(content).hexdigest()
            digest.update(f"{rel}\0{blobs[rel]}\n".encode())
            (repo / "blobs").mkdir(parents=True, exist_ok=True)
            (repo / "blobs" / blobs[rel]).write_bytes(content)
        commit = digest.hexdigest()
        snap = repo / "snapshots" / commit
        for rel, blob in blobs.items():
            link = snap / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                os.symlink(os.path.relpath(repo / "blobs" / blob, link.parent), link)
        (repo / "refs" / revision).write_text(commit)
        return SimpleNamespace(oid=commit, commit_message=commit_message,
                               commit_url=f"https://huggingface.co/{repo_id}/commit/{commit}")
