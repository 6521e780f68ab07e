"""Shared test setup: offline Hub, single-threaded torch, paths to the shared real datasets."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ROBOLEARN_SHARED", REPO_ROOT.parent / "shared"))
SHARED_DATASETS = SHARED / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Folder of real datasets beside the repo (``../shared/datasets``); tests skip if it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS
