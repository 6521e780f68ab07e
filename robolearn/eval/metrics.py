"""Per-episode evaluation results and their aggregates.

Aggregates follow lerobot's ``eval_info.json`` names (``pc_success``, ``avg_sum_reward``,
``avg_max_reward``) and add a 95 % confidence interval of the success rate computed with the
**Wilson score interval** (Wilson 1927), which, unlike the normal approximation, stays inside [0, 100] %
and is informative at 0 or n successes out of n.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Sequence


@dataclass
class EpisodeResult:
    """One evaluated episode.

    Attributes:
        episode_index: position in the evaluation (0-based).
        seed: the env seed of the episode (``seed + episode_index``).
        sum_reward: sum of rewards over the episode's steps.
        max_reward: largest single-step reward.
        success: the env's success criterion was met at some step.
        length: number of env steps taken.
        task: the env's task string (groups results of multi-task suites), or None.
        max_info: ``{info key: max over the episode}`` (e.g. PushT ``coverage``).
    """

    episode_index: int
    seed: int
    sum_reward: float
    max_reward: float
    success: bool
    length: int
    task: str | None = None
    max_info: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("max_info")
        d.update({f"max_{k}": v for k, v in self.max_info.items()})
        return d


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion, as fractions in [0, 1].

    ``p = k/n``, ``z`` the two-sided normal quantile (1.95996 for 95 %):
    ``centre = (p + z^2/(2n)) / (1 + z^2/n)``, ``half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/(4n^2))``.

    Raises:
        ValueError: ``n < 1``, ``successes`` outside ``[0, n]`` or ``confidence`` outside (0, 1).
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n and n >= 1, got successes={successes}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def aggregate(episodes: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Aggregate episodes: ``n_episodes``, ``pc_success`` (%), ``pc_success_ci95`` ([low, high] %, Wilson),
    ``avg_sum_reward``, ``avg_max_reward``, ``avg_episode_length`` and ``avg_max_<key>`` for each ``max_info`` key.

    Raises:
        ValueError: no episodes.
    """
    n = len(episodes)
    if n == 0:
        raise ValueError("aggregate: no episodes to aggregate")
    k = sum(bool(e.success) for e in episodes)
    low, high = wilson_interval(k, n)
    out: dict[str, Any] = {
        "n_episodes": n,
        "n_success": k,
        "pc_success": 100.0 * k / n,
        "pc_success_ci95": [100.0 * low, 100.0 * high],
        "avg_sum_reward": sum(e.sum_reward for e in episodes) / n,
        "avg_max_reward": sum(e.max_reward for e in episodes) / n,
        "avg_episode_length": sum(e.length for e in episodes) / n,
    }
    for key in episodes[0].max_info:
        out[f"avg_max_{key}"] = sum(e.max_info[key] for e in episodes) / n
    return out


def aggregate_by_task(episodes: Sequence[EpisodeResult]) -> dict[str, dict[str, Any]]:
    """:func:`aggregate` per task string (``None`` tasks are grouped under ``"null"``)."""
    groups: dict[str, list[EpisodeResult]] = defaultdict(list)
    for e in episodes:
        groups["null" if e.task is None else e.task].append(e)
    return {task: aggregate(eps) for task, eps in groups.items()}
