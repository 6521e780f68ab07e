"""``RolloutEval``: evaluate the policy being trained in a simulated env every N training steps."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch

log = logging.getLogger(__name__)

LOGGED_METRICS = ("pc_success", "avg_sum_reward", "avg_max_reward")


def evaluation_weights(trainer: L.Trainer, pl_module: L.LightningModule):
    """Context in which ``pl_module`` holds the weights it is evaluated and exported with: those of a callback that
    keeps other evaluation weights and exposes ``swapped(module)`` (:class:`~robolearn.callbacks.ema.EMA`), else its
    own."""
    for callback in trainer.callbacks:
        swapped = getattr(callback, "swapped", None)
        if callable(swapped):
            return swapped(pl_module)
    return contextlib.nullcontext()


class RolloutEval(L.Callback):
    """Every ``every_n_train_steps`` optimizer steps, roll the module out in ``env`` with
    :func:`robolearn.eval.evaluate_policy` and log ``eval/pc_success``, ``eval/avg_sum_reward`` and
    ``eval/avg_max_reward`` (plus ``eval/avg_max_<key>`` of the env's ``max_info_keys``) to every logger at
    the current ``global_step``.

    The module is evaluated with its current weights (the EMA weights when an :class:`~robolearn.callbacks.ema.EMA`
    callback runs, as they are the exported ones) in eval mode, under ``torch.inference_mode``; its train
    mode is restored and its action queue cleared afterwards. Only global rank 0 runs the rollouts. When fit
    starts, one env is built and checked against the policy's inputs, so a dataset/env mismatch fails at once
    rather than at the first evaluation. The latest success rate is shown in the progress bar (``eval/success``).

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
        final_eval_info: where the last evaluation's ``eval_info.json`` is also written when training ends
            (e.g. ``<run dir>/eval_info.json``); None: nowhere else.

    Raises:
        ValueError: ``env`` is not an EnvSpec (e.g. ``env=none``), or ``every_n_train_steps < 1``; at fit start,
            an env that does not provide the policy's inputs (pass the ``env=`` the dataset was recorded in).
    """

    def __init__(self, env: Any, every_n_train_steps: int = 1000, n_episodes: int = 10, batch_size: int = 5,
                 seed: int = 1000, use_async_envs: bool = False, max_episodes_rendered: int = 0,
                 output_dir: str | os.PathLike | None = None, at_fit_end: bool = True,
                 final_eval_info: str | os.PathLike | None = None) -> None:
        from robolearn.envs.factory import EnvSpec

        super().__init__()
        if not isinstance(env, EnvSpec):
            raise ValueError(f"RolloutEval needs a simulated env (pass env=<name>, e.g. env=pusht, or "
                             f"callbacks=default to train without rollouts), got {env!r}")
        if every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}")
        self.env = env
        self.every_n_train_steps = int(every_n_train_steps)
        self.n_episodes, self.batch_size, self.seed = int(n_episodes), int(batch_size), int(seed)
        self.use_async_envs = bool(use_async_envs)
        self.max_episodes_rendered = int(max_episodes_rendered)
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.at_fit_end = at_fit_end
        self.final_eval_info = None if final_eval_info is None else Path(final_eval_info)
        self.history: list[tuple[int, dict[str, float]]] = []
        self.intervals: list[tuple[float, float]] = []  # 95 % Wilson interval of pc_success, per evaluation
        self.last_info: dict[str, Any] | None = None
        self._last_step: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from robolearn.eval import check_env_for_policy

        if trainer.global_rank == 0:
            try:
                check_env_for_policy(pl_module, self.env)
            except ValueError as e:
                raise ValueError(f"callbacks.rollout_eval cannot evaluate this policy in env {self.env.name!r} "
                                 f"(pass env=<the simulator of the dataset>, or env=none/callbacks=default to "
                                 f"train without rollouts): {e}") from e

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
            with evaluation_weights(trainer, pl_module):
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
        # also where train.py reads its objective (objective=eval/pc_success for an Optuna search on success)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        self.history.append((step, metrics))
        self.intervals.append(tuple(float(v) for v in agg.get("pc_success_ci95", (float("nan"), float("nan")))))
        self.last_info = info
        self._last_step = step
        log.info("rollout eval at step %d on %s: %s", step, self.env.name, metrics)
        return metrics

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = int(trainer.global_step)
        if step > 0 and step % self.every_n_train_steps == 0 and step != self._last_step:
            metrics = self.evaluate(trainer, pl_module)
            if metrics is not None and "eval/pc_success" in metrics:  # shown in the progress bar until the next one
                pl_module.log("eval/success", metrics["eval/pc_success"], prog_bar=True, logger=False,
                              on_step=True, on_epoch=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_fit_end and trainer.global_step != self._last_step and trainer.global_step > 0:
            self.evaluate(trainer, pl_module)
        if self.final_eval_info is not None and self.last_info is not None and trainer.global_rank == 0:
            from robolearn.eval.report import write_eval_info

            path = write_eval_info(self.final_eval_info, {**self.last_info, "global_step": self._last_step})
            log.info("final rollout evaluation (step %s): %s", self._last_step, path)
