"""Policy evaluation in simulation: rollouts, metrics, reports (``eval.py`` and the rollout callback)."""

from robolearn.eval.evaluate import check_env_for_policy, evaluate_policy, prepare_policy
from robolearn.eval.metrics import EpisodeResult, aggregate, aggregate_by_task, wilson_interval

__all__ = ["EpisodeResult", "aggregate", "aggregate_by_task", "check_env_for_policy", "evaluate_policy", "prepare_policy", "wilson_interval"]
