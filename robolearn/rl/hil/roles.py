"""``role=`` dispatch of ``train.py`` for actor–learner experiments (HIL-SERL).

- ``role=learner`` (default): the ordinary ``train.py`` run (nothing here is involved);
- ``role=actor``: :func:`robolearn.rl.hil.actor.run_actor` on the same composed config;
- ``role=both``: start ``python train.py <same overrides> role=actor`` as a subprocess (its run folder is
  ``<this run's folder>/actor``), train here, then stop it.
  With ``dataset.port=0`` a free port is chosen first and given to both processes, so that several ``role=both``
  runs (e.g. the jobs of a multirun) can share a machine.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("robolearn.rl.hil.roles")
ROLES = ("learner", "actor", "both")


def actor_command(overrides: list[str], script: str | Path, run_dir: str | Path | None = None) -> list[str]:
    """The command line of the actor subprocess: ``script`` with ``overrides``, any ``role=`` replaced by
    ``role=actor``; the learner's ``hydra.run.dir`` is replaced by ``<run_dir>/actor`` (the actor's log and config
    beside the learner's), or left out when ``run_dir`` is None (the actor writes its own run folder)."""
    kept = [o for o in overrides if not o.lstrip("+").startswith(("role=", "hydra.run.dir="))]
    where = [] if run_dir is None else [f"hydra.run.dir={Path(run_dir) / 'actor'}"]
    return [sys.executable, str(script), *kept, *where, "role=actor"]


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
        log.info("role=both: starting the actor: %s", " ".join(cmd))
        proc = subprocess.Popen(cmd)
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
