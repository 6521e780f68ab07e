"""robolearn.rl.hil.roles: the actor subprocess's command line and the split of the cores between the learner and
the actor of ``role=both`` (an oversubscribed 2-core machine ran SAC updates 20x slower)."""

from __future__ import annotations

import os
import sys

import pytest

from robolearn.rl.hil.roles import actor_command, split_threads


def test_split_threads_gives_the_actor_its_threads_and_the_learner_the_rest():
    assert split_threads(None, cores=2) == (1, 1)
    assert split_threads(1, cores=16) == (15, 1)
    assert split_threads(4, cores=16) == (12, 4)
    assert split_threads(2, cores=1) == (1, 2)  # never below one thread each
    learner, actor = split_threads(1)
    assert actor == 1 and learner == max(1, len(os.sched_getaffinity(0)) - 1)
    with pytest.raises(ValueError, match="actor.num_threads"):
        split_threads(0, cores=2)


def test_actor_command_replaces_the_role_and_the_run_folder():
    cmd = actor_command(["experiment=x", "role=both", "hydra.run.dir=/runs/a", "+role=both", "seed=3"], "train.py",
                        "/runs/a")
    assert cmd[0] == sys.executable and cmd[1] == "train.py"
    assert cmd[2:] == ["experiment=x", "seed=3", "hydra.run.dir=/runs/a/actor", "role=actor"]
    assert actor_command(["role=both"], "train.py")[2:] == ["role=actor"]
