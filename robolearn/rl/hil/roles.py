"""``role=`` dispatch of ``train.py`` for actor–learner experiments (HIL-SERL).

- ``role=learner`` (default): the ordinary ``train.py`` run (nothing here is involved);
- ``role=actor``: :func:`robolearn.rl.hil.actor.run_actor` on the same composed config;
- ``role=both``: start ``python train.py <same overrides> role=actor`` as a subprocess (its run folder is
  ``<this run's folder>/actor``), train here, then stop it.
  With ``dataset.port=0`` a free port is chosen first and given to both processes, so that several ``role=both``
  runs (e.g. the jobs of a multirun) can share a machine. The two processes split the cores this process may run
  on (:func:`split_threads`): torch's default gives each of them every core, and on a 2-core machine the
  oversubscribed learner ran a SAC update in 0.5 s instead of 0.023 s.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger("robolearn.rl.hil.roles")
ROLES = ("learner", "actor", "both")


def actor_command(overrides: list[str], script: str | Path, run_dir: str | Path | None = None) -> list[str]:
    """The command line of the actor subprocess: ``script`` with ``overrides``, any ``role=`` replaced by
    ``role=actor``; the learner's ``hydra.run.dir`` is replaced by ``<run_dir>/actor`` (the actor's log and config
    beside the learner's), or left out when ``run_dir`` is None (the actor writes its own run folder)."""
    kept = [o for o in overrides if not o.lstrip("+").startswith(("role=", "hydra.run.dir="))]
    where = [] if run_dir is None else [f"hydra.run.dir={Path(run_dir) / 'actor'}"]
    return [sys.executable, str(script), *kept, *where, "role=actor"]


def split_threads(actor_threads: int | None, cores: int | None = None) -> tuple[int, int]:
    """Torch intra-op threads ``(learner, actor)`` for ``role=both`` on ``cores`` cores (default: the cores this
    process may run on, ``os.sched_getaffinity``, which honours a SLURM or cgroup CPU set): the actor keeps
    ``actor_threads`` (``cfg.actor.num_threads``; None: 1) and the learner takes the rest, at least 1 each.

    Raises:
        ValueError: ``actor_threads`` or ``cores`` below 1.
    """
    cores = len(os.sched_getaffinity(0)) if cores is None else int(cores)
    actor = 1 if actor_threads is None else int(actor_threads)
    if actor < 1 or cores < 1:
        raise ValueError(f"actor.num_threads ({actor_threads}) and the core count ({cores}) must be >= 1")
    return max(1, cores - actor), actor


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it; another process could take it before use)."""
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as s:
        s.bind((host.strip("[]"), 0))
        return int(s.getsockname()[1])


def run_role(cfg: Any, train: Callable[[Any], tuple], script: str | Path | None = None) -> float | None:
    """Run ``cfg.role`` (see the module docstring); ``train`` is ``train.py``'s ``train(cfg)`` and ``script`` the
    path of ``train.py`` (the actor subprocess runs it; default ``sys.argv[0]``, which is not ``train.py`` inside a
    launcher's job).

    Returns:
        the learner's last ``train/loss`` (``both``), or None (``actor``).

    Raises:
        ValueError: an unknown role (lists the valid ones).
    """
    role = str(cfg.get("role", "learner"))
    if role not in ROLES:
        raise ValueError(f"role={role!r} is not one of {list(ROLES)}")
    if role == "actor":
        from robolearn.rl.hil.actor import run_actor

        run_actor(cfg)
        return None
    if role == "learner":
        trainer, _, _ = train(cfg)
    else:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import open_dict

        overrides = list(HydraConfig.get().overrides.task)
        if int(cfg.dataset.get("port", -1)) == 0:
            with open_dict(cfg):
                cfg.dataset.port = free_port(str(cfg.dataset.get("host", "127.0.0.1")))
            overrides.append(f"dataset.port={cfg.dataset.port}")
        cmd = actor_command(overrides, Path(script or sys.argv[0]).resolve(), HydraConfig.get().runtime.output_dir)
        learner_threads, actor_threads = split_threads((cfg.get("actor") or {}).get("num_threads"))
        cmd.append(f"++actor.num_threads={actor_threads}")
        torch.set_num_threads(learner_threads)
        log.info("role=both: %d torch thread(s) for the learner, %d for the actor; starting the actor: %s",
                 learner_threads, actor_threads, " ".join(cmd))
        env = {**os.environ, "OMP_NUM_THREADS": str(actor_threads), "MKL_NUM_THREADS": str(actor_threads)}
        proc = subprocess.Popen(cmd, env=env)
        try:
            trainer, _, _ = train(cfg)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    loss = trainer.callback_metrics.get("train/loss")
    return float(loss) if loss is not None else None
