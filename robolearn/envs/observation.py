"""Map a gymnasium env's observations to the dataset keys a policy was trained on.

An env config names, for each native observation key, the LeRobotDataset key it corresponds to
(``features_map``). Nested ``gymnasium.spaces.Dict`` observations are addressed with dotted paths:
gym-aloha's ``{"pixels": {"top": ...}, "agent_pos": ...}`` is mapped with
``{"pixels.top": "observation.images.top", "agent_pos": "observation.state"}``.

Conversions match what the dataset reader gives a policy (see ``docs/architecture.md``):

- camera: ``uint8 (B, H, W, 3)`` -> ``float32 (B, 3, H, W)`` in [0, 1];
- anything else: ``float32 (B, *shape)`` (gym's float64 states are cast).
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch

from robolearn.features import OBS_ENV_STATE, FeatureType, PolicyFeature


def flatten_observation(obs: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a.b": x}``; a non-dict observation becomes ``{"": obs}`` (no prefix)."""
    if not isinstance(obs, Mapping):
        return {prefix: obs}
    out: dict[str, Any] = {}
    for key, value in obs.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten_observation(value, name))
    return out


def flatten_space(space: gym.Space) -> dict[str, gym.Space]:
    """Leaf spaces of a (nested) ``Dict`` space by dotted path; a non-Dict space is ``{"": space}``."""
    if not isinstance(space, gym.spaces.Dict):
        return {"": space}
    out: dict[str, gym.Space] = {}
    for key, sub in space.spaces.items():
        for leaf, leaf_space in flatten_space(sub).items():
            out[f"{key}.{leaf}" if leaf else str(key)] = leaf_space
    return out


def _is_camera(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def env_policy_features(observation_space: gym.Space, features_map: Mapping[str, str]) -> dict[str, PolicyFeature]:
    """The :class:`PolicyFeature` s an env provides once mapped: ``{dataset key: PolicyFeature}``.

    A uint8 ``(H, W, C)`` Box is a ``VISUAL`` feature of shape ``(C, H, W)``; the key
    ``observation.environment_state`` is ``ENV``; every other key is ``STATE``.

    Args:
        observation_space: one env's observation space (``vector_env.single_observation_space``).
        features_map: ``{native dotted key: dataset key}``.

    Raises:
        KeyError: a mapped native key is not in the observation space (the message lists the ones that are).
    """
    leaves = flatten_space(observation_space)
    out: dict[str, PolicyFeature] = {}
    for native, key in features_map.items():
        if native not in leaves:
            raise KeyError(
                f"env features_map names observation key {native!r} (-> {key!r}), but the env's observation "
                f"space has {sorted(leaves)}"
            )
        space = leaves[native]
        if _is_camera(space):
            h, w, c = space.shape
            out[key] = PolicyFeature(FeatureType.VISUAL, (int(c), int(h), int(w)))
        else:
            ftype = FeatureType.ENV if key == OBS_ENV_STATE else FeatureType.STATE
            out[key] = PolicyFeature(ftype, tuple(int(s) for s in space.shape))
    return out


def check_policy_features(policy_features: Mapping[str, PolicyFeature], env_features: Mapping[str, PolicyFeature],
                          env_name: str = "env") -> None:
    """Check that every input the policy needs is provided by the env with the same shape.

    Extra env keys are allowed (they are dropped before the policy sees them: e.g. a policy trained with
    ``dataset.exclude_features=[observation.environment_state]``).

    Raises:
        ValueError: one message listing the policy's input features, the env's mapped features and the
            keys that are missing or differ in shape.
    """
    problems = []
    for key, feat in policy_features.items():
        if key not in env_features:
            problems.append(f"{key!r} is missing from the env")
        elif tuple(env_features[key].shape) != tuple(feat.shape):
            problems.append(f"{key!r} has shape {list(env_features[key].shape)} in the env, "
                            f"{list(feat.shape)} in the policy")
    if problems:
        def fmt(feats: Mapping[str, PolicyFeature]) -> str:
            return ", ".join(f"{k}: {list(f.shape)}" for k, f in feats.items()) or "(none)"

        raise ValueError(
            f"policy and {env_name} features differ: {'; '.join(problems)}.\n"
            f"  policy input features: {fmt(policy_features)}\n"
            f"  env features (after features_map): {fmt(env_features)}\n"
            "Fix the env config's features_map (or image size), or evaluate on the env the policy was trained for."
        )


def preprocess_observation(obs: Any, features_map: Mapping[str, str], keys: set[str] | None = None,
                           device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Batched native observation -> ``{dataset key: tensor}`` as the dataset reader returns them.

    Args:
        obs: a vector env's observation (arrays with a leading batch axis ``B``), possibly nested dicts.
        features_map: ``{native dotted key: dataset key}``.
        keys: keep only these dataset keys (the policy's inputs); ``None`` keeps all mapped keys.
        device: where the tensors go.

    Returns:
        Cameras ``float32 (B, C, H, W)`` in [0, 1]; other features ``float32 (B, *shape)``.

    Raises:
        KeyError: a mapped key is missing from ``obs``.
        ValueError: a camera array that is not ``uint8 (B, H, W, C)``.
    """
    flat = flatten_observation(obs)
    out: dict[str, torch.Tensor] = {}
    for native, key in features_map.items():
        if keys is not None and key not in keys:
            continue
        if native not in flat:
            raise KeyError(f"observation has no key {native!r} (for {key!r}); it has {sorted(flat)}")
        value = np.asarray(flat[native])
        if value.dtype == np.uint8:
            if value.ndim != 4:
                raise ValueError(f"camera {native!r} must be uint8 (B, H, W, C), got shape {value.shape}")
            tensor = torch.from_numpy(np.ascontiguousarray(value)).permute(0, 3, 1, 2).float().div_(255.0)
        else:
            tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        out[key] = tensor.to(device)
    return out
