"""Read and write lerobot 0.6.1 ``tdmpc`` checkpoints (``config.json`` + ``model.safetensors``).

The four functions below are what the generic loader (``robolearn.policies.lerobot_compat``) calls for a
``config.json`` with ``"type": "tdmpc"``. Our constructor arguments carry lerobot's ``TDMPCConfig`` names,
and our state dict uses lerobot's keys (``model.*`` online network, ``model_target.*`` EMA target), so
both maps are identities apart from the normalizer buffers, which lerobot keeps in its processor files.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from robolearn.policies.tdmpc.module import TDMPCPolicy

LEROBOT_TYPE = "tdmpc"
POLICY_CLASS = TDMPCPolicy

# TDMPCConfig fields that are constructor arguments of TDMPCPolicy under the same name.
MODEL_KEYS = (
    "n_obs_steps", "n_action_repeats", "horizon", "n_action_steps", "image_encoder_hidden_dim",
    "state_encoder_hidden_dim", "latent_dim", "q_ensemble_size", "mlp_dim", "discount", "use_mpc",
    "cem_iterations", "max_std", "min_std", "n_gaussian_samples", "n_pi_samples",
    "uncertainty_regularizer_coeff", "n_elites", "elite_weighting_temperature", "gaussian_mean_momentum",
    "max_random_shift_ratio", "reward_coeff", "expectile_weight", "value_coeff", "consistency_coeff",
    "advantage_scaling", "pi_coeff", "temporal_decay_coeff", "target_model_momentum", "optimizer_lr",
)
# PreTrainedConfig fields that only concern lerobot's runtime or the Hub; they do not change the model.
IGNORED_KEYS = (
    "type", "input_features", "output_features", "device", "use_amp", "push_to_hub", "repo_id", "private",
    "tags", "license", "pretrained_path", "pretrained_revision",
)
# The values we write for IGNORED_KEYS (lerobot 0.6.1 requires none of them; these are its defaults, with
# push_to_hub off because no repo_id is known).
_RUNTIME_DEFAULTS = {
    "device": "cpu", "use_amp": False, "use_peft": False, "push_to_hub": False, "repo_id": None, "private": None,
    "tags": None, "license": None, "pretrained_path": None, "pretrained_revision": None,
}
# lerobot's TDMPCConfig.normalization_mapping default.
_LEROBOT_NORM_MAP = {"VISUAL": "IDENTITY", "STATE": "IDENTITY", "ENV": "IDENTITY", "ACTION": "MIN_MAX"}

# Every parameter of TD-MPC's TOLD model, without the model/model_target prefix.
_PARAM_RE = re.compile(
    r"(_encoder\.(image_enc_layers\.(0|2|4|6|9|10)|state_enc_layers\.(0|2|3)|env_state_enc_layers\.(0|2|3))"
    r"|_dynamics\.(0|1|3|4|6|7)|_reward\.(0|1|3|4|6)|_pi\.(0|1|3|4|6)|_Qs\.\d+\.(0|1|3|5)|_V\.(0|1|3|5))"
    r"\.(weight|bias)"
)
# In-model normalization buffers of lerobot < 0.4 checkpoints; the generic loader reads stats from them.
_OLD_NORM_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")


def kwargs_from_lerobot_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor kwargs of :class:`TDMPCPolicy` (all but ``features``/``stats``) from lerobot's
    ``config.json`` dict.

    Raises:
        ValueError: ``type`` is not ``"tdmpc"``, ``use_peft`` is true, or the config has a key this
            version does not know (the message names it).
    """
    if config.get("type") != LEROBOT_TYPE:
        raise ValueError(f"config.json 'type' is {config.get('type')!r}, expected {LEROBOT_TYPE!r}")
    if config.get("use_peft"):
        raise ValueError("config.json 'use_peft' is true; PEFT adapters are not supported for tdmpc")
    unknown = sorted(k for k in config if k not in MODEL_KEYS and k not in IGNORED_KEYS and k not in ("use_peft", "normalization_mapping"))
    if unknown:
        raise ValueError(f"config.json has keys TD-MPC does not support: {unknown}")
    kwargs = {k: config[k] for k in MODEL_KEYS if k in config}
    if "normalization_mapping" in config:
        kwargs["normalization_mapping"] = {str(k): str(v) for k, v in config["normalization_mapping"].items()}
    return kwargs


def lerobot_config_from_kwargs(kwargs: Mapping[str, Any], features: Mapping[str, Any]) -> dict[str, Any]:
    """lerobot 0.6.1 ``config.json`` dict (``"type": "tdmpc"``) from our constructor kwargs and features.

    ``features`` maps keys to ``PolicyFeature`` or ``{type, shape}``; ``action`` goes to ``output_features``,
    reward features are left out (lerobot reads ``next.reward`` from the dataset, not from the config), the
    rest go to ``input_features``. Missing kwargs take :class:`TDMPCPolicy`'s defaults (lerobot's).

    Raises:
        ValueError: a kwarg lerobot's config cannot express (``optimizer``, ``lr_scheduler`` objects are
            ignored; ``use_imagenet_stats`` true is rejected since lerobot applies it at training time).
    """
    import inspect

    from robolearn.policies.base import coerce_features

    if kwargs.get("use_imagenet_stats"):
        raise ValueError("use_imagenet_stats=True cannot be written to a lerobot tdmpc config.json")
    unknown = sorted(k for k in kwargs if k not in MODEL_KEYS and k not in (
        "normalization_mapping", "use_imagenet_stats", "optimizer", "lr_scheduler"))
    if unknown:
        raise ValueError(f"kwargs not expressible in a lerobot tdmpc config.json: {unknown}")
    defaults = {n: p.default for n, p in inspect.signature(TDMPCPolicy.__init__).parameters.items()}
    feats = coerce_features(features)
    inputs = {k: {"type": f.type.value, "shape": list(f.shape)} for k, f in feats.items() if f.type.value not in ("ACTION", "REWARD")}
    outputs = {k: {"type": f.type.value, "shape": list(f.shape)} for k, f in feats.items() if f.type.value == "ACTION"}
    norm = dict(_LEROBOT_NORM_MAP)
    norm.update({str(k): str(getattr(v, "value", v)) for k, v in (kwargs.get("normalization_mapping") or {}).items()})
    config: dict[str, Any] = {"type": LEROBOT_TYPE, "n_obs_steps": kwargs.get("n_obs_steps", defaults["n_obs_steps"]),
                              "input_features": inputs, "output_features": outputs, **_RUNTIME_DEFAULTS,
                              "normalization_mapping": norm}
    for key in MODEL_KEYS:
        config[key] = kwargs.get(key, defaults[key])
    return config


def _check_keys(sd: Mapping[str, Tensor], where: str) -> None:
    bad, halves = [], {"model": set(), "model_target": set()}
    for key in sd:
        prefix, _, rest = key.partition(".")
        if prefix in halves and _PARAM_RE.fullmatch(rest):
            halves[prefix].add(rest)
        else:
            bad.append(key)
    errors = []
    if bad:
        errors.append(f"unknown keys {sorted(bad)}")
    for name, other in (("model", "model_target"), ("model_target", "model")):
        lonely = sorted(halves[name] - halves[other])
        if lonely:
            errors.append(f"keys under '{name}.' without a '{other}.' counterpart: {lonely}")
    for part in ("_dynamics.", "_reward.", "_pi.", "_Qs.0.", "_V."):
        if not any(k.startswith(part) for k in halves["model"]):
            errors.append(f"no 'model.{part}*' parameters")
    if errors:
        raise ValueError(f"{where}: not a TD-MPC state dict: " + "; ".join(errors))


def state_dict_from_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict from lerobot's (identity names; lerobot < 0.4 in-model normalization buffers are
    dropped, their statistics reach the normalizer through ``stats``).

    Raises:
        ValueError: a key that is not a TD-MPC parameter, a ``model.*`` key without its ``model_target.*``
            twin (or the reverse), or a missing head; the message lists the keys.
    """
    out = {k: v for k, v in sd.items() if not k.startswith(_OLD_NORM_PREFIXES)}
    _check_keys(out, "lerobot state dict")
    return out


def state_dict_to_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """lerobot's state dict from ours: identity names; the ``normalizer.*`` buffers are left out (lerobot
    keeps statistics in its processor files).

    Raises:
        ValueError: as :func:`state_dict_from_lerobot`, for keys other than ``normalizer.*``.
    """
    out = {k: v for k, v in sd.items() if not k.startswith("normalizer.")}
    _check_keys(out, "robolearn TD-MPC state dict")
    return out
