"""Read and write lerobot (0.6.1) pretrained-policy folders.

A lerobot ``pretrained_model/`` folder holds ``config.json`` (the policy config, with ``"type"``),
``model.safetensors`` (the policy's state dict), and the processor pipelines ``policy_preprocessor.json`` /
``policy_postprocessor.json`` whose normalizer steps keep the statistics in
``policy_preprocessor_step_<i>_normalizer_processor.safetensors`` /
``policy_postprocessor_step_<i>_unnormalizer_processor.safetensors`` (flat keys ``"<feature>.<stat>"``).
Checkpoints written before lerobot moved normalization into processors (0.4) keep the statistics inside the
model instead, as buffers ``normalize_inputs.buffer_<feature with dots as _>.<stat>`` (also
``normalize_targets.`` / ``unnormalize_outputs.``); both sources are read.

The policy-specific part lives in ``robolearn/policies/<type>/lerobot_format.py`` (found by the naming
convention ``importlib.import_module(f"robolearn.policies.{type}.lerobot_format")``, no registry) and provides
``LEROBOT_TYPE``, ``POLICY_CLASS``, ``kwargs_from_lerobot_config(config)``,
``lerobot_config_from_kwargs(kwargs, features)``, ``state_dict_from_lerobot(sd)`` and
``state_dict_to_lerobot(sd)``. Weights load strictly: a missing, renamed or reshaped tensor raises with the
key names; nothing is loaded partially.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor

from robolearn.features import FeatureType, PolicyFeature
from robolearn.policies.base import PolicyModule, to_primitive
from robolearn.policies.normalize import EPS

CONFIG_JSON = "config.json"
WEIGHTS_NAME = "model.safetensors"
PREPROCESSOR_JSON = "policy_preprocessor.json"
POSTPROCESSOR_JSON = "policy_postprocessor.json"
NORMALIZER_STATE = "policy_preprocessor_step_3_normalizer_processor.safetensors"
UNNORMALIZER_STATE = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"

# Keys of lerobot's ``PreTrainedConfig`` that carry no model information (run/hub/device settings).
BASE_METADATA_KEYS = ("type", "input_features", "output_features", "device", "use_amp", "use_peft", "push_to_hub",
                      "repo_id", "private", "tags", "license", "pretrained_path", "pretrained_revision",
                      "normalization_mapping")
# Prefixes of the in-model normalization buffers of lerobot checkpoints older than 0.4.
OLD_NORM_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")
NORMALIZER_PREFIX = "normalizer."


class LerobotFormatError(ValueError):
    """A lerobot checkpoint that robolearn cannot load faithfully (the message names the file and key)."""


# ---------------------------------------------------------------------------------------------- helpers
def format_module(policy_type: str) -> ModuleType:
    """``robolearn.policies.<policy_type>.lerobot_format``.

    Raises:
        LerobotFormatError: no such module (robolearn has no port of that lerobot policy type).
    """
    if not re.fullmatch(r"[a-z0-9_]+", str(policy_type)):
        raise LerobotFormatError(f"lerobot config 'type' {policy_type!r} is not a valid policy name")
    name = f"robolearn.policies.{policy_type}.lerobot_format"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name not in (name, f"robolearn.policies.{policy_type}"):
            raise
        raise LerobotFormatError(
            f"lerobot policy type {policy_type!r} is not supported by robolearn (no module {name})") from None


def format_for_policy(policy: PolicyModule) -> ModuleType:
    """The ``lerobot_format`` module for ``policy``: that of ``robolearn.policies.<lerobot_type>`` when the class
    sets a ``lerobot_type`` attribute (π0.5 lives in the π0 package), else of its own package."""
    parts = type(policy).__module__.split(".")
    if len(parts) < 3 or parts[:2] != ["robolearn", "policies"]:
        raise LerobotFormatError(f"{type(policy).__qualname__} is not a robolearn.policies.<name> policy")
    return format_module(getattr(type(policy), "lerobot_type", None) or parts[2])


def convert_config_keys(config: Mapping[str, Any], names: Iterable[str], ignored: Iterable[str] = (),
                        fixed: Mapping[str, Any] | None = None, renamed: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Map a lerobot ``config.json`` onto constructor kwargs, strictly.

    Args:
        config: the parsed ``config.json``.
        names: keys copied unchanged (same name in robolearn); each must be present.
        ignored: keys accepted with any value and dropped (training-only settings robolearn sets elsewhere).
        fixed: ``{key: the only supported value}``; a different value raises (an absent key is fine).
        renamed: ``{lerobot key: robolearn kwarg}`` for keys copied under another name; each must be present.
    Returns:
        ``{kwarg: value}``, plus ``normalization_mapping`` when the config has one.
    Raises:
        LerobotFormatError: a key of ``names``/``renamed`` is missing, a ``fixed`` key has another value, or the
            config has a key robolearn does not know (the message names it).
    """
    fixed, renamed = dict(fixed or {}), dict(renamed or {})
    names, ignored = list(names), set(ignored)
    out: dict[str, Any] = {}
    for key in names:
        if key not in config:
            raise LerobotFormatError(f"config.json lacks '{key}' (type {config.get('type')!r})")
        out[key] = config[key]
    for key, ours in renamed.items():
        if key not in config:
            raise LerobotFormatError(f"config.json lacks '{key}' (type {config.get('type')!r})")
        out[ours] = config[key]
    for key, value in fixed.items():
        if key in config and _normalize_json(config[key]) != _normalize_json(value):
            raise LerobotFormatError(
                f"config.json: '{key}' = {config[key]!r} is not supported by robolearn's {config.get('type')} "
                f"(only {value!r})")
    known = set(names) | set(renamed) | ignored | set(fixed) | set(BASE_METADATA_KEYS)
    unknown = sorted(set(config) - known)
    if unknown:
        raise LerobotFormatError(f"config.json: unsupported key(s) {unknown} for type {config.get('type')!r}")
    if config.get("normalization_mapping") is not None:
        out["normalization_mapping"] = {str(k): str(v) for k, v in config["normalization_mapping"].items()}
    return out


def _normalize_json(value: Any) -> Any:
    return json.loads(json.dumps(to_primitive(value)))


def features_from_lerobot_config(config: Mapping[str, Any]) -> dict[str, PolicyFeature]:
    """``input_features`` + ``output_features`` of a lerobot config as ``{key: PolicyFeature}``.

    Raises:
        LerobotFormatError: the config has no ``input_features``/``output_features`` (pre-2025 format with
            ``input_shapes``), or a feature type robolearn does not know.
    """
    if "input_features" not in config or "output_features" not in config:
        hint = " (old 'input_shapes' format: re-save it with lerobot >= 0.2 first)" if "input_shapes" in config else ""
        raise LerobotFormatError(f"config.json has no 'input_features'/'output_features'{hint}")
    out: dict[str, PolicyFeature] = {}
    for group in ("input_features", "output_features"):
        for key, spec in (config[group] or {}).items():
            try:
                out[key] = PolicyFeature(FeatureType(spec["type"]), tuple(int(s) for s in spec["shape"]))
            except (KeyError, ValueError) as e:
                raise LerobotFormatError(f"config.json: {group}.{key} = {spec!r} is not a {{type, shape}} feature "
                                         f"with a type in {[t.value for t in FeatureType]}") from e
    return out


def lerobot_features(features: Mapping[str, PolicyFeature]) -> tuple[dict, dict]:
    """``(input_features, output_features)`` in lerobot's ``config.json`` layout; ``ACTION`` (and ``REWARD``)
    features are outputs."""
    inputs, outputs = {}, {}
    for key, f in features.items():
        (outputs if f.type in (FeatureType.ACTION, FeatureType.REWARD) else inputs)[key] = f.to_dict()
    return inputs, outputs


def base_lerobot_config(policy_type: str, features: Mapping[str, PolicyFeature], n_obs_steps: int,
                        normalization_mapping: Mapping[str, str]) -> dict[str, Any]:
    """The ``PreTrainedConfig`` fields lerobot 0.6.1 writes for every policy (run/hub settings at their defaults)."""
    inputs, outputs = lerobot_features(features)
    return {"type": policy_type, "n_obs_steps": int(n_obs_steps), "input_features": inputs, "output_features": outputs,
            "device": "cpu", "use_amp": False, "use_peft": False, "push_to_hub": True, "repo_id": None,
            "private": None, "tags": None, "license": None, "pretrained_path": None, "pretrained_revision": None,
            "normalization_mapping": {str(k): str(v) for k, v in normalization_mapping.items()}}


# ---------------------------------------------------------------------------------------------- statistics
def _flat_to_nested(flat: Mapping[str, Tensor]) -> dict[str, dict[str, np.ndarray]]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        feature, _, stat = key.rpartition(".")
        if not feature:
            raise LerobotFormatError(f"statistics key {key!r} is not '<feature>.<stat>'")
        stats.setdefault(feature, {})[stat] = value.detach().cpu().float().numpy()
    return stats


def _normalizer_state_file(folder: Path) -> Path | None:
    """The normalizer statistics file named by ``policy_preprocessor.json`` (or found by name)."""
    pipeline = folder / PREPROCESSOR_JSON
    if pipeline.is_file():
        with open(pipeline) as fh:
            steps = json.load(fh).get("steps", [])
        for step in steps:
            if step.get("registry_name") == "normalizer_processor" and step.get("state_file"):
                path = folder / step["state_file"]
                if not path.is_file():
                    raise FileNotFoundError(f"{pipeline} names state_file {step['state_file']!r}, not found in {folder}")
                return path
    found = sorted(folder.glob("policy_preprocessor_step_*_normalizer_processor.safetensors"))
    return found[0] if found else None


def stats_from_old_buffers(state_dict: Mapping[str, Tensor], features: Mapping[str, PolicyFeature]) -> dict:
    """Statistics from pre-0.4 in-model buffers (``normalize_inputs.buffer_observation_state.mean`` ...).

    ``normalize_*`` and ``unnormalize_outputs`` hold the same values; the first one found wins.
    """
    by_buffer = {"buffer_" + k.replace(".", "_"): k for k in features}
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        if not key.startswith(OLD_NORM_PREFIXES):
            continue
        _, buffer, stat = key.split(".", 2)
        feature = by_buffer.get(buffer)
        if feature is None:
            continue
        stats.setdefault(feature, {}).setdefault(stat, value.detach().cpu().float().numpy())
    return stats


def read_lerobot_stats(folder: Path, state_dict: Mapping[str, Tensor], features: Mapping[str, PolicyFeature]) -> dict:
    """Statistics from the preprocessor's normalizer file, else from old in-model buffers, else ``{}``."""
    from robolearn.policies.weights_file import load_weights

    path = _normalizer_state_file(folder)
    if path is not None:
        return _flat_to_nested(load_weights(path))
    return stats_from_old_buffers(state_dict, features)


# ---------------------------------------------------------------------------------------------- weights
def check_keys(ours: Mapping[str, Tensor], theirs: Mapping[str, Tensor], source: str) -> None:
    """Raise unless ``theirs`` has exactly ``ours``'s keys with the same shapes (names listed in the message).

    Raises:
        LerobotFormatError: missing, unexpected (e.g. renamed) or reshaped tensors.
    """
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    reshaped = sorted(f"{k}: {tuple(theirs[k].shape)} vs expected {tuple(ours[k].shape)}"
                      for k in set(ours) & set(theirs) if tuple(ours[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or reshaped:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected}")
        if reshaped:
            parts.append(f"shape mismatches {reshaped}")
        raise LerobotFormatError(f"{source} does not match the robolearn module: " + "; ".join(parts))


def read_lerobot_checkpoint(folder: str | os.PathLike) -> tuple[type[PolicyModule], dict[str, Any],
                                                              dict[str, PolicyFeature], dict, dict[str, Tensor]]:
    """Read a lerobot ``pretrained_model`` folder without building the policy.

    Returns:
        ``(policy class, constructor kwargs, features, statistics, weights)``: the kwargs from ``config.json``
        (the type's ``kwargs_from_lerobot_config``), the statistics from the processor files or old in-model
        buffers (``{}`` if none), the weights renamed to robolearn's names (``state_dict_from_lerobot``) without
        the old in-model normalization buffers.
    Raises:
        FileNotFoundError: ``config.json`` or ``model.safetensors`` missing.
        LerobotFormatError: no ``type``, an unsupported type or config value, or tensor names the type's name map
            does not cover.
    """
    from robolearn.policies.weights_file import load_weights

    folder = Path(folder)
    for name in (CONFIG_JSON, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found (expected a lerobot pretrained_model folder)")
    with open(folder / CONFIG_JSON) as fh:
        config = json.load(fh)
    if "type" not in config:
        raise LerobotFormatError(f"{folder / CONFIG_JSON} has no 'type'")
    fmt = format_module(config["type"])
    features = features_from_lerobot_config(config)
    kwargs = fmt.kwargs_from_lerobot_config(config)
    raw = load_weights(folder / WEIGHTS_NAME)
    stats = read_lerobot_stats(folder, raw, features)
    weights = fmt.state_dict_from_lerobot({k: v for k, v in raw.items() if not k.startswith(OLD_NORM_PREFIXES)})
    return fmt.POLICY_CLASS, kwargs, features, stats, weights


def load_lerobot_policy(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> PolicyModule:
    """Build a robolearn policy from a lerobot ``pretrained_model`` folder (in eval mode).

    Raises:
        FileNotFoundError: ``config.json`` or ``model.safetensors`` missing.
        LerobotFormatError: unsupported type or config value, no statistics for a normalized feature,
            missing/renamed/reshaped tensors (named in the message).
    """
    folder = Path(folder)
    cls, kwargs, features, stats, converted = read_lerobot_checkpoint(folder)
    try:
        policy = cls(features=features, stats=stats, **kwargs)
    except KeyError as e:
        raise LerobotFormatError(f"{folder}: no usable normalization statistics: {e.args[0]}") from None
    ours = {k: v for k, v in policy.state_dict().items() if not k.startswith(NORMALIZER_PREFIX)}
    check_keys(ours, converted, str(folder / WEIGHTS_NAME))
    full = dict(policy.state_dict())
    full.update(converted)
    policy.load_state_dict(full, strict=True)
    return policy.to(map_location).eval()


# ---------------------------------------------------------------------------------------------- export
def _pipeline_step(registry_name: str, config: dict, state_file: str | None = None) -> dict:
    step = {"registry_name": registry_name, "config": config}
    if state_file is not None:
        step["state_file"] = state_file
    return step


def policy_kwargs(policy: PolicyModule) -> dict[str, Any]:
    """The policy's constructor kwargs (hyper-parameters) without ``features``, with its effective
    ``normalization_mapping``."""
    kwargs = {k: to_primitive(v) for k, v in policy.hparams.items() if k != "features"}
    kwargs["normalization_mapping"] = {t.value: m.value for t, m in policy.normalizer.norm_map.items()}
    return kwargs


def save_lerobot_pretrained(policy: PolicyModule, directory: str | os.PathLike) -> Path:
    """Write ``policy`` as a lerobot 0.6.1 ``pretrained_model`` folder.

    Files: ``config.json``, ``model.safetensors``, ``policy_preprocessor.json`` (rename -> to_batch ->
    device(cpu) -> normalizer) with ``policy_preprocessor_step_3_normalizer_processor.safetensors``, and
    ``policy_postprocessor.json`` (unnormalizer -> device(cpu)) with
    ``policy_postprocessor_step_0_unnormalizer_processor.safetensors``. The statistics files hold the
    policy's normalizer buffers (``"<feature>.<stat>"``), i.e. only the statistics the policy uses.

    Raises:
        LerobotFormatError: the policy has no ``lerobot_format`` module, or a setting lerobot cannot express.
    """
    from safetensors.torch import save_file

    fmt = format_for_policy(policy)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kwargs = policy_kwargs(policy)
    features = policy.features
    config = fmt.lerobot_config_from_kwargs(kwargs, features)
    with open(directory / CONFIG_JSON, "w") as fh:
        json.dump(config, fh, indent=4)
    sd = {k: v for k, v in policy.state_dict().items() if not k.startswith(NORMALIZER_PREFIX)}
    out = {k: v.detach().cpu().contiguous().clone() for k, v in fmt.state_dict_to_lerobot(sd).items()}
    save_file(out, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})

    flat = {f"{feat}.{stat}": torch.tensor(np.asarray(v, dtype=np.float32))
            for feat, d in policy.normalizer.stats_dict().items() for stat, v in d.items()}
    norm_map = config["normalization_mapping"]
    all_feats = {k: f.to_dict() for k, f in features.items()}
    action_feats = {k: f.to_dict() for k, f in features.items() if f.type in (FeatureType.ACTION,)}
    pre = {"name": "policy_preprocessor", "steps": [
        _pipeline_step("rename_observations_processor", {"rename_map": {}}),
        _pipeline_step("to_batch_processor", {}),
        _pipeline_step("device_processor", {"device": "cpu", "float_dtype": None}),
        _pipeline_step("normalizer_processor", {"eps": EPS, "features": all_feats, "norm_map": norm_map}, NORMALIZER_STATE),
    ]}
    post = {"name": "policy_postprocessor", "steps": [
        _pipeline_step("unnormalizer_processor", {"eps": EPS, "features": action_feats, "norm_map": norm_map},
                       UNNORMALIZER_STATE),
        _pipeline_step("device_processor", {"device": "cpu", "float_dtype": None}),
    ]}
    for name, pipeline, state in ((PREPROCESSOR_JSON, pre, NORMALIZER_STATE), (POSTPROCESSOR_JSON, post, UNNORMALIZER_STATE)):
        with open(directory / name, "w") as fh:
            json.dump(pipeline, fh, indent=2)
        save_file(flat, str(directory / state))
    return directory


def is_lerobot_folder(folder: str | os.PathLike) -> bool:
    """True if ``folder`` has a lerobot ``config.json`` (with a ``type``)."""
    path = Path(folder) / CONFIG_JSON
    if not path.is_file():
        return False
    try:
        with open(path) as fh:
            return "type" in json.load(fh)
    except (OSError, json.JSONDecodeError):
        return False
