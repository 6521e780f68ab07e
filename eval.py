"""Evaluate a policy in simulation: ``python eval.py policy.path=<pretrained_model dir> env=pusht [key=value ...]``.

Builds the policy from ``cfg.policy`` (an exported ``pretrained_model`` folder by default, or
``policy=scripted`` for the env's scripted expert), the env from ``cfg.env``, runs ``eval.n_episodes``
episodes and writes ``eval_info.json``, ``eval_plot.png`` and ``videos/`` into the Hydra run directory.
"""

from __future__ import annotations

import json
import logging

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from robolearn.eval import evaluate_policy, prepare_policy
from robolearn.utils.schema import register_schemas

log = logging.getLogger("robolearn.eval")
register_schemas()


def run_eval(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.policy`` on ``cfg.env`` with ``cfg.eval`` settings; returns the eval info dict."""
    if not cfg.get("env") or "_target_" not in cfg.env:
        raise ValueError("eval.py needs a simulated env: pass env=<name> (see conf/env/)")
    L.seed_everything(cfg.seed)
    policy = prepare_policy(instantiate(cfg.policy), cfg.get("device"))
    spec = instantiate(cfg.env)
    e = cfg.eval
    info = evaluate_policy(
        policy, spec, n_episodes=e.n_episodes, batch_size=e.batch_size, seed=cfg.seed,
        use_async_envs=e.use_async_envs, max_episodes_rendered=e.max_episodes_rendered,
        output_dir=cfg.paths.output_dir, progress=e.progress, video_codec=e.video_codec,
    )
    log.info("%s: %s", spec.name, json.dumps(info["aggregated"]))
    return info


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float:
    return float(run_eval(cfg)["aggregated"]["pc_success"])


if __name__ == "__main__":
    main()
