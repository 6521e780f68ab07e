"""robolearn.datamodules.workers: ``num_workers`` as an integer or "auto" (one per available core, capped)."""

from __future__ import annotations

import os

import pytest

from robolearn.datamodules.lerobot import LeRobotDataModule
from robolearn.datamodules.workers import AUTO_MAX_WORKERS, resolve_num_workers


def test_auto_is_one_worker_per_available_core_capped():
    cores = len(os.sched_getaffinity(0))
    assert resolve_num_workers("auto") == resolve_num_workers(" AUTO ") == max(1, min(cores, AUTO_MAX_WORKERS))
    assert resolve_num_workers(0) == 0 and resolve_num_workers(3) == 3 and resolve_num_workers("2") == 2


@pytest.mark.parametrize("bad", [-1, "many", 1.5, True, None])
def test_bad_worker_counts_are_named(bad):
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0 or 'auto'"):
        resolve_num_workers(bad)


def test_the_datamodule_resolves_its_default(shared_datasets):
    dm = LeRobotDataModule(repo_id="t/pusht", root=shared_datasets / "lerobot_written_pusht_random")
    assert dm.num_workers == resolve_num_workers("auto")
    with pytest.raises(ValueError, match="'lots'"):
        LeRobotDataModule(repo_id="t/pusht", root=shared_datasets / "lerobot_written_pusht_random", num_workers="lots")
