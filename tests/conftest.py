"""Shared test setup: offline Hub, single-threaded torch, a per-session Arrow cache folder, paths to the shared
real datasets."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ROBOLEARN_SHARED_DIR", REPO_ROOT.parent / "shared"))
SHARED_DATASETS = SHARED / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Folder of real datasets beside the repo (``../shared/datasets``); tests skip if it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session", autouse=True)
def _session_arrow_cache(tmp_path_factory):
    """LeRobotDataset's Arrow cache files (robolearn/datasets/arrow_cache.py) go to a folder of this test session
    instead of ~/.cache/huggingface/datasets, unless HF_DATASETS_CACHE is set (subprocesses inherit it)."""
    if "HF_DATASETS_CACHE" in os.environ:
        yield
        return
    os.environ["HF_DATASETS_CACHE"] = str(tmp_path_factory.mktemp("hf_datasets_cache"))
    try:
        yield
    finally:
        os.environ.pop("HF_DATASETS_CACHE", None)
