"""Messages between the HIL-SERL learner and its actors (Luo et al. 2024, "Precise and Dexterous Robotic
Manipulation via Human-in-the-Loop Reinforcement Learning", Sec. III: actor and learner run as separate processes).

Transport: gRPC with generic unary handlers on raw bytes, as :mod:`robolearn.inference.server`; payloads are
:mod:`robolearn.inference.codec` messages (msgpack + safetensors, never pickle). Service
``robolearn.rl.Learner`` (the learner is the server, actors are clients):

- ``Ready`` (``{"type": "actor_ready", "actor_id": str}``) -> ``{"type": "learner_ready", "features": {key:
  {type, shape}}, "policy": class name, "weights_version": int}``: the handshake;
- ``PushTransitions`` (``{"type": "transitions", "actor_id": str, "transitions": {key: tensor (N, ...)},
  "episodes": [{"episode_return", "success", "length", "env_step", "interventions"[, "sim_success"]}]}``) ->
  ``{"type": "transitions_reply", "accepted": N, "weights_version": int}``;
- ``GetWeights`` (``{"type": "get_weights", "have_version": int}``) -> ``{"type": "weights", "version": int,
  "state_dict": {name: tensor} | None}`` (None when the actor already holds the newest version).

Transitions use :mod:`robolearn.rl.replay`'s layout with a leading axis ``N`` and must carry
``complementary_info.is_intervention`` (float 0/1, HIL-SERL's human-intervention flag).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from robolearn.features import ACTION, FeatureType, PolicyFeature
from robolearn.rl.replay import DONE, INFO_PREFIX, REWARD, TRUNCATED

SERVICE = "robolearn.rl.Learner"
METHODS = ("Ready", "PushTransitions", "GetWeights")
IS_INTERVENTION = INFO_PREFIX + "is_intervention"
EPISODE_FIELDS = ("episode_return", "success", "length", "env_step", "interventions")
# Optional: the simulator's own success when the reward came from elsewhere (RobotEnv's info["sim_success"]).
OPTIONAL_EPISODE_FIELDS = ("sim_success",)


def method_path(name: str) -> str:
    """Full gRPC method path, e.g. ``/robolearn.rl.Learner/PushTransitions``."""
    return f"/{SERVICE}/{name}"


def stack_transitions(transitions: list[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack single transitions (no batch axis) into ``{key: (N, ...)}``.

    Raises:
        ValueError: an empty list, or transitions with different keys (names them).
    """
    if not transitions:
        raise ValueError("stack_transitions: no transitions")
    keys = set(transitions[0])
    for i, t in enumerate(transitions[1:], 1):
        if set(t) != keys:
            raise ValueError(f"transition {i} has keys {sorted(t)}, transition 0 has {sorted(keys)}")
    return {k: torch.stack([torch.as_tensor(t[k]) for t in transitions]) for k in sorted(keys)}


def validate_transitions(batch: Any, features: Mapping[str, PolicyFeature], max_transitions: int) -> dict[str, torch.Tensor]:
    """Check a received transition batch against the learner's features; returns it with ``next.done``/
    ``next.truncated`` as bool and ``next.reward``/``is_intervention`` as float32 ``(N,)``.

    Args:
        batch: the message's ``transitions`` value.
        features: the learner's policy features (observation keys and ``action``; cameras ``(C, H, W)``).
        max_transitions: largest ``N`` accepted.

    Raises:
        ValueError: not a map of tensors, a missing or unexpected key, a key whose shape is not ``(N, *feature
            shape)``, ``N`` outside ``[1, max_transitions]``, non-finite actions or rewards, or an
            ``is_intervention`` value other than 0/1. The message names the key, the expected and the received value.
    """
    if not isinstance(batch, dict) or not all(isinstance(v, torch.Tensor) for v in batch.values()):
        raise ValueError("'transitions' must be a map {key: tensor (N, ...)}")
    obs_keys = [k for k, f in features.items() if f.type not in (FeatureType.ACTION, FeatureType.REWARD)]
    required = [*obs_keys, *("next." + k for k in obs_keys), ACTION, REWARD, DONE, IS_INTERVENTION]
    missing = [k for k in required if k not in batch]
    allowed = set(required) | {TRUNCATED}
    extra = sorted(k for k in batch if k not in allowed and not k.startswith(INFO_PREFIX))
    if missing or extra:
        raise ValueError(f"transition keys differ from the learner's: missing {missing}, unexpected {extra}")
    n = int(batch[ACTION].shape[0]) if batch[ACTION].dim() else 0
    if not 1 <= n <= max_transitions:
        raise ValueError(f"a transitions message must hold 1..{max_transitions} transitions, got {n}")
    for key in [*obs_keys, ACTION]:
        want = (n, *features[key].shape)
        for k in (key, "next." + key) if key != ACTION else (key,):
            if tuple(batch[k].shape) != want:
                raise ValueError(f"transition key '{k}' has shape {tuple(batch[k].shape)}, expected {want}")
    out = dict(batch)
    for key in (REWARD, DONE, TRUNCATED, IS_INTERVENTION):
        if key in out:
            if out[key].numel() != n:
                raise ValueError(f"transition key '{key}' must hold one value per transition ({n}), got shape "
                                 f"{tuple(out[key].shape)}")
            out[key] = out[key].reshape(n)
    for key in (ACTION, REWARD):
        if not torch.isfinite(out[key].float()).all():
            raise ValueError(f"transition key '{key}' holds non-finite values")
    flag = out[IS_INTERVENTION].float()
    if not ((flag == 0) | (flag == 1)).all():
        raise ValueError(f"'{IS_INTERVENTION}' must be 0 or 1, got values {sorted(set(flag.tolist()))[:5]}")
    out[IS_INTERVENTION] = flag
    out[REWARD] = out[REWARD].float()
    out[DONE] = out[DONE].bool()
    if TRUNCATED in out:
        out[TRUNCATED] = out[TRUNCATED].bool()
    return out


def validate_episodes(episodes: Any) -> list[dict[str, float]]:
    """Check the ``episodes`` list of a transitions message (each a map with :data:`EPISODE_FIELDS` numbers and,
    when present and not None, :data:`OPTIONAL_EPISODE_FIELDS` numbers; other keys are dropped).

    Raises:
        ValueError: not a list of maps, or a missing / non-numeric field (named).
    """
    if not isinstance(episodes, list):
        raise ValueError(f"'episodes' must be a list, got {type(episodes).__name__}")
    out = []
    for i, ep in enumerate(episodes):
        if not isinstance(ep, dict):
            raise ValueError(f"episodes[{i}] must be a map, got {type(ep).__name__}")
        bad = [f for f in EPISODE_FIELDS if not isinstance(ep.get(f), (int, float, bool))]
        optional = [f for f in OPTIONAL_EPISODE_FIELDS if ep.get(f) is not None]
        bad += [f for f in optional if not isinstance(ep[f], (int, float, bool))]
        if bad:
            raise ValueError(f"episodes[{i}] lacks numeric fields {bad}")
        out.append({f: float(ep[f]) for f in (*EPISODE_FIELDS, *optional)})
    return out
