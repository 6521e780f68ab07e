"""``RolloutEval``: evaluate the policy being trained in a simulated env every N training steps."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L

log = logging.getLogger(__name__)

LOGGED_METRICS = ("pc_success", "avg_sum_reward", "avg_max_reward")


class RolloutEval(L.Callback):
    """Every ``every_n_train_steps`` optimizer steps, roll the module out in ``env`` with
    :func:`robolearn.eval.evaluate_policy` and log ``eval/pc_success``, ``eval/avg_sum_reward`` and
    ``eval/avg_max_reward`` (plus ``eval/avg_max_<key>`` of the env's ``max_info_keys``) to every logger at
    the current ``global_step``.

    The module is evaluated with its current weights in eval mode, under ``torch.inference_mode``; its train
    mode is restored and its action queue cleared afterwards. Only global rank 0 runs the rollouts.

    Args:
        env: an :class:`~robolearn.envs.factory.EnvSpec` (``conf/env/<name>.yaml``, passed as ``${env}``).
        every_n_train_steps: evaluation period in optimizer steps (>= 1).
        n_episodes: episodes per evaluation (seeds ``seed`` ... ``seed + n_episodes - 1``, the same each time).
        batch_size: envs stepped together.
        seed: seed of episode 0.
        use_async_envs: one subprocess per env.
        max_episodes_rendered: videos of the first N episodes of each evaluation.
        output_dir: each evaluation writes ``<output_dir>/step_<global_step>/eval_info.json`` (and videos/plot);
            None writes nothing.
        at_fit_end: also evaluate once when training ends (unless the last step was just evaluated).

    Raises:
        ValueError: ``env`` is not an EnvSpec (e.g. ``env=none``), or ``every_n_train_steps < 1``.
    """

    def __init__(self, env: Any, every_n_train_steps: int = 1000, n_episodes: int = 10, batch_size: int = 5,
                 seed: int = 1000, use_async_envs: bool = False, max_episodes_rendered: int = 0,
                 output_dir: str | os.PathLike | None = None, at_fit_end: bool = True) -> None:
        from robolearn.envs.factory import EnvSpec

        super().__init__()
        if not isinstance(env, EnvSpec):
            raise ValueError(f"RolloutEval needs a simulated env (pass env=<name>, e.g. env=pusht), got {env!r}")
        if every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}")
        self.env = env
        self.every_n_train_steps = int(every_n_train_steps)
        self.n_episodes, self.batch_size, self.seed = int(n_episodes), int(batch_size), int(seed)
        self.use_async_envs = bool(use_async_envs)
        self.max_episodes_rendered = int(max_episodes_rendered)
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.at_fit_end = at_fit_end
        self.history: list[tuple[int, dict[str, float]]] = []
        self._last_step: int | None = None

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float] | None:
        """Run one evaluation now and log it; returns the logged metrics (None on ranks > 0)."""
        from robolearn.eval import evaluate_policy

        if trainer.global_rank != 0:
            return None
        step = int(trainer.global_step)
        out = None if self.output_dir is None else self.output_dir / f"step_{step:06d}"
        was_training = pl_module.training
        pl_module.eval()
        try:
            info = evaluate_policy(pl_module, self.env, self.n_episodes, self.batch_size, self.seed,
                                   use_async_envs=self.use_async_envs,
                                   max_episodes_rendered=self.max_episodes_rendered if out is not None else 0,
                                   output_dir=out, progress=False)
        finally:
            pl_module.train(was_training)
        agg = info["aggregated"]
        keys = [*LOGGED_METRICS, *(f"avg_max_{k}" for k in self.env.max_info_keys)]
        metrics = {f"eval/{k}": float(agg[k]) for k in keys if k in agg}
        for lg in trainer.loggers:
            lg.log_metrics(metrics, step=step)
        self.history.append((step, metrics))
        self._last_step = step
        log.info("rollout eval at step %d on %s: %s", step, self.env.name, metrics)
        return metrics

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = int(trainer.global_step)
        if step > 0 and step % self.every_n_train_steps == 0 and step != self._last_step:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_fit_end and trainer.global_step != self._last_step and trainer.global_step > 0:
            self.evaluate(trainer, pl_module)
