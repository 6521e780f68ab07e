"""Evaluate a policy for N episodes in a simulated env: the engine of ``eval.py`` and of the
:class:`~robolearn.callbacks.rollout_eval.RolloutEval` callback.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from robolearn.envs.factory import EnvSpec, make_vec_env
from robolearn.envs.observation import check_policy_features
from robolearn.eval.metrics import EpisodeResult, aggregate, aggregate_by_task
from robolearn.eval.report import EVAL_INFO_NAME, PLOT_NAME, plot_episodes, write_eval_info, write_video
from robolearn.eval.rollout import Policy, rollout_batch
from robolearn.features import FeatureType

log = logging.getLogger(__name__)


def policy_input_features(policy: Any) -> dict:
    """The policy's ``input_features`` (``{}`` for policies without any, e.g. the scripted expert)."""
    return dict(getattr(policy, "input_features", {}) or {})


def reads_cameras(policy: Any) -> bool:
    """True when one of the policy's input features is a camera (``VISUAL``)."""
    return any(f.type is FeatureType.VISUAL for f in policy_input_features(policy).values())


def env_for_policy(policy: Any, spec: EnvSpec) -> EnvSpec:
    """``spec``, without per-step camera images when the policy reads none (:meth:`EnvSpec.without_cameras`)."""
    return spec if reads_cameras(policy) else spec.without_cameras()


def check_env_for_policy(policy: Any, spec: EnvSpec) -> None:
    """Build one env of ``spec`` and check that it provides every input of ``policy`` with the same shape.

    Raises:
        ValueError: the features differ (one message listing both, see
            :func:`~robolearn.envs.observation.check_policy_features`).
    """
    spec = env_for_policy(policy, spec)
    env = spec.make_env()
    try:
        check_policy_features(policy_input_features(policy), spec.features(env.observation_space),
                              env_name=f"env {spec.name!r}")
    finally:
        env.close()


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]eval[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False)


def evaluate_policy(policy: Policy, spec: EnvSpec, n_episodes: int, batch_size: int = 1, seed: int = 0,
                    use_async_envs: bool = False, max_episodes_rendered: int = 0,
                    output_dir: str | os.PathLike | None = None, write_plot: bool = True, progress: bool = True,
                    video_codec: str = "h264") -> dict[str, Any]:
    """Run ``n_episodes`` episodes in batches of ``batch_size`` envs and summarize them.

    Episode ``i`` is reset with seed ``seed + i``, so results do not depend on ``batch_size`` for
    deterministic envs and policies. The last batch may hold fewer episodes than envs: the surplus envs run
    (with the following seeds) but are not counted. Before any rollout the policy's input features are
    compared with the env's mapped features. A policy with ``requires_expert = True`` (``policy=scripted``)
    gets envs wrapped with the env config's scripted expert. A policy that reads no camera gets envs that render
    none per step (:meth:`EnvSpec.without_cameras`); an env whose episode ended is not simulated while the rest
    of its batch runs (:class:`~robolearn.envs.hold.HoldWhenDone`).

    Args:
        policy: ``reset()`` / ``select_action(batch)``; put it in eval mode and on its device beforehand.
        spec: the env config.
        n_episodes: episodes to evaluate (>= 1).
        batch_size: envs stepped together (>= 1); capped at ``n_episodes``.
        seed: seed of episode 0.
        use_async_envs: one subprocess per env (``AsyncVectorEnv``) when ``batch_size > 1``.
        max_episodes_rendered: record MP4 videos of the first N episodes (``videos/eval_episode_<i>.mp4``).
        output_dir: where ``eval_info.json``, ``eval_plot.png`` and ``videos/`` go; None writes nothing.
        write_plot: write the PNG plot (with ``output_dir``).
        progress: show a rich progress bar over episodes.
        video_codec: PyAV/ffmpeg codec of the videos.

    Returns:
        ``{"aggregated": {...}, "per_task": {task: {...}}, "per_episode": [{...}], "video_paths": [...],
        "env": name, "n_episodes", "batch_size", "seed"}`` (also written to ``eval_info.json``); ``aggregated``
        holds :func:`~robolearn.eval.metrics.aggregate`'s keys plus ``eval_s`` (wall time, seconds, videos
        included), ``eval_ep_s`` (``eval_s / n_episodes``) and :func:`select_action_timing`'s keys.

    Raises:
        ValueError: bad counts, or policy/env features that differ (one message listing both).
    """
    if n_episodes < 1 or batch_size < 1:
        raise ValueError(f"n_episodes ({n_episodes}) and batch_size ({batch_size}) must be >= 1")
    if max_episodes_rendered > 0 and output_dir is None:
        raise ValueError("max_episodes_rendered > 0 needs an output_dir for the videos")
    batch_size = min(batch_size, n_episodes)
    with_expert = bool(getattr(policy, "requires_expert", False))
    policy_features = policy_input_features(policy)
    spec = env_for_policy(policy, spec)  # a policy without cameras: render only the videos' frames
    vec_env = make_vec_env(spec, batch_size, use_async=use_async_envs, with_expert=with_expert, hold_when_done=True)
    episodes: list[EpisodeResult] = []
    video_paths: list[str] = []
    timings: list[float] = []
    start = time.perf_counter()
    try:
        check_policy_features(policy_features, spec.features(vec_env.single_observation_space), env_name=f"env {spec.name!r}")
        policy_keys = set(policy_features) if policy_features else None
        n_batches = math.ceil(n_episodes / batch_size)
        with _progress(progress) as bar:
            task_id = bar.add_task(spec.name, total=n_episodes)
            for b in range(n_batches):
                first = b * batch_size
                indices = list(range(first, first + batch_size))
                seeds = [seed + i for i in indices]
                render = [j for j, i in enumerate(indices) if i < min(max_episodes_rendered, n_episodes)]
                results, frames = rollout_batch(vec_env, policy, spec, seeds, indices, policy_keys=policy_keys,
                                                render_envs=render, timings=timings)
                kept = [r for r in results if r.episode_index < n_episodes]
                episodes.extend(kept)
                for j, images in frames.items():
                    path = Path(output_dir) / "videos" / f"eval_episode_{indices[j]}.mp4"
                    video_paths.append(str(write_video(images, path, fps=spec.fps, vcodec=video_codec)))
                bar.update(task_id, advance=len(kept),
                           description=f"{spec.name} success {100.0 * sum(e.success for e in episodes) / len(episodes):.0f}%")
    finally:
        vec_env.close()
        policy.reset()

    elapsed = time.perf_counter() - start
    aggregated = {**aggregate(episodes), "eval_s": elapsed, "eval_ep_s": elapsed / n_episodes,
                  **select_action_timing(timings)}
    info = {
        "env": spec.name,
        "n_episodes": n_episodes,
        "batch_size": batch_size,
        "seed": seed,
        "aggregated": aggregated,
        "per_task": aggregate_by_task(episodes),
        "per_episode": [e.to_dict() for e in episodes],
        "video_paths": video_paths,
    }
    if output_dir is not None:
        path = write_eval_info(Path(output_dir) / EVAL_INFO_NAME, info)
        log.info("wrote %s", path)
        if write_plot:
            plot_episodes(episodes, Path(output_dir) / PLOT_NAME, title=spec.name)
    return info


def select_action_timing(timings: Sequence[float]) -> dict[str, float | int]:
    """Summary of ``select_action`` wall times (seconds, one per call for a batch of envs), in milliseconds.

    Returns:
        ``select_action_calls``, and ``select_action_ms_mean`` / ``_p50`` / ``_p90`` / ``_max`` (absent when there
        were no calls). With action chunking most calls pop a queued action, so ``_mean`` is the policy's cost per
        control step and ``_max`` (or ``_p90``) approaches the cost of computing a new chunk.
    """
    out: dict[str, float | int] = {"select_action_calls": len(timings)}
    if timings:
        ms = np.asarray(timings, dtype=np.float64) * 1e3
        out.update(select_action_ms_mean=float(ms.mean()), select_action_ms_p50=float(np.percentile(ms, 50)),
                   select_action_ms_p90=float(np.percentile(ms, 90)), select_action_ms_max=float(ms.max()))
    return out


def prepare_policy(policy: Any, device: str | torch.device | None = None) -> Any:
    """Put a policy in eval mode (and on ``device`` when given) if it is a ``torch.nn.Module``."""
    if isinstance(policy, torch.nn.Module):
        if device is not None:
            policy = policy.to(device)
        policy.eval()
    return policy
