"""Hub push (exact list of Hub operations on a recording HfApi) and pull of selected episodes (offline cache)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from robolearn.datasets import LeRobotDataset
from robolearn.tools.hub_push import dataset_card, pull, push_to_hub
from robolearn.datasets.metadata import LeRobotDatasetMetadata

from tests.datasets.test_hub import REPO, _fake_cache, lerobot_home  # noqa: F401  (fixture)


class RecordingApi:
    """Stands in for ``huggingface_hub.HfApi``: records every call and its arguments."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return f"commit-of-{name}"

        return call


@pytest.fixture
def src(shared_datasets):
    return shared_datasets / "lerobot_written_pusht_random"


def test_push_operations(src):
    api = RecordingApi()
    push_to_hub(src, "me/pusht", private=True, branch="dev", tags=["pusht"], api=api)
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "create_branch", "create_commit", "create_tag"]
    _, args, kw = api.calls[0]
    assert args == ("me/pusht",) and kw == {"repo_type": "dataset", "private": True, "exist_ok": True}
    _, args, kw = api.calls[2]
    assert kw["repo_type"] == "dataset" and kw["revision"] == "dev"
    paths = sorted(op.path_in_repo for op in kw["operations"])
    expected = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()
                      and p.relative_to(src).parts[0] in ("meta", "data", "videos")) + ["README.md"]
    assert paths == sorted(expected)
    assert any(p.startswith("videos/") for p in paths)
    _, args, kw = api.calls[3]
    assert kw == {"tag": "v3.0", "revision": "dev", "repo_type": "dataset", "exist_ok": True}

    api = RecordingApi()
    push_to_hub(src, "me/pusht", push_videos=False, api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "create_commit", "create_tag"]
    assert not any(op.path_in_repo.startswith("videos/") for op in api.calls[1][2]["operations"])


def test_push_refuses_interrupted_writes(src, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(src, copy)
    (copy / "data" / "chunk-000" / ".file-001.parquet.123.0.tmp").write_bytes(b"partial")
    with pytest.raises(RuntimeError, match="repair"):
        push_to_hub(copy, "me/x", api=RecordingApi())
    with pytest.raises(FileNotFoundError, match="info.json"):
        push_to_hub(tmp_path, "me/x", api=RecordingApi())


def test_dataset_card(src):
    meta = LeRobotDatasetMetadata("me/pusht", root=src)
    card = dataset_card(meta, tags=["pusht"])
    header = yaml.safe_load(card.split("---")[1])
    assert header["task_categories"] == ["robotics"]
    assert {"LeRobot", "robolearn", "pusht"} <= set(header["tags"])
    assert header["configs"][0]["data_files"] == "data/*/*.parquet"
    assert "| `observation.image` | video | [96, 96, 3] |" in card
    assert '"total_episodes": 5' in card


def test_pull_selected_episodes(src, lerobot_home, tmp_path):  # noqa: F811
    _fake_cache(src, lerobot_home / "hub")
    out = pull(REPO, episodes=[1, 3], out=tmp_path / "pulled")
    ds = LeRobotDataset(REPO, root=out, episodes=[1, 3])
    ref = LeRobotDataset(REPO, root=src, episodes=[1, 3])
    assert len(ds) == len(ref) == 200
    assert float(ds[150]["action"][0]) == float(ref[150]["action"][0])
    with pytest.raises(KeyError, match=r"no episodes \[7\]"):
        pull(REPO, episodes=[7])
