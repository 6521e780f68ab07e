"""lerobot ``pi0`` checkpoints <-> robolearn :class:`Pi0Policy` (lerobot's ``PI0Config`` / PyTorch port of openpi).

Config: lerobot's field names are robolearn's constructor names; robolearn-only arguments
(``pretrained_backbone_weights``, ``tokenizer_name``, ``peft``, ``use_imagenet_stats``) are not written and take
their defaults on load (set ``policy.tokenizer`` or ``tokenizer_name`` for an offline tokenizer).

Weights: robolearn keeps lerobot's module tree (``model.paligemma_with_expert.paligemma.model.{vision_tower,
multi_modal_projector,language_model}``, ``model.paligemma_with_expert.paligemma.lm_head``,
``model.paligemma_with_expert.gemma_expert.model.*``, ``model.action_in_proj`` ...), so most names map to
themselves. The explicit map below also reads the older ``transformers`` PaliGemma layout
(``paligemma.language_model.model.*``, ``paligemma.vision_tower.*``, ...); the unused expert ``lm_head``
is dropped; a missing ``paligemma.lm_head.weight`` is restored from the (tied) token embedding. Anything else that
does not match makes the generic loader fail listing the keys. This map was written from lerobot's module names,
not checked against a released lerobot π0 checkpoint (no π0 parity fixture exists).
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from robolearn.features import PolicyFeature
from robolearn.policies.lerobot_compat import LerobotFormatError, base_lerobot_config, convert_config_keys
from robolearn.policies.pi0.module import Pi0Policy
from robolearn.policies.vla.lora import lora_enabled

LEROBOT_TYPE = "pi0"
POLICY_CLASS = Pi0Policy

REQUIRED = ("chunk_size", "n_action_steps", "max_state_dim", "max_action_dim", "paligemma_variant",
            "action_expert_variant")
OPTIONAL = ("n_obs_steps", "dtype", "num_inference_steps", "time_sampling_beta_alpha", "time_sampling_beta_beta",
            "time_sampling_scale", "time_sampling_offset", "min_period", "max_period", "image_resolution",
            "empty_cameras", "tokenizer_max_length", "freeze_vision_encoder", "train_expert_only",
            "gradient_checkpointing", "optimizer_lr", "optimizer_betas", "optimizer_eps", "optimizer_weight_decay",
            "optimizer_grad_clip_norm", "scheduler_warmup_steps", "scheduler_decay_steps", "scheduler_decay_lr")
# lerobot settings with no effect on the weights or on inference results.
IGNORED = ("compile_model", "compile_mode", "use_cache")
# Settings robolearn does not implement: accepted only with these values.
FIXED = {"rtc_config": None, "use_relative_actions": False}
ROBOLEARN_ONLY = ("pretrained_backbone_weights", "tokenizer_name", "peft", "use_imagenet_stats", "normalization_mapping")

PREFIX = "model.paligemma_with_expert."
# older lerobot/transformers PaliGemma layout -> ours (prefixes after PREFIX)
OLD_LAYOUT = (
    ("paligemma.language_model.model.", "paligemma.model.language_model."),
    ("paligemma.language_model.lm_head.", "paligemma.lm_head."),
    ("paligemma.vision_tower.", "paligemma.model.vision_tower."),
    ("paligemma.multi_modal_projector.", "paligemma.model.multi_modal_projector."),
)
DROPPED = (PREFIX + "gemma_expert.lm_head.weight",)
LM_HEAD = PREFIX + "paligemma.lm_head.weight"
EMBED = PREFIX + "paligemma.model.language_model.embed_tokens.weight"


def kwargs_from_lerobot_config(config: Mapping[str, Any], lerobot_type: str = LEROBOT_TYPE) -> dict[str, Any]:
    """``Pi0Policy`` kwargs from a lerobot ``pi0`` ``config.json``.

    Raises:
        LerobotFormatError: (a ``ValueError``) a required key missing, an unknown key, or an unsupported value
            (``rtc_config``, ``use_relative_actions``, a variant robolearn does not know), named in the message.
    """
    if config.get("type", lerobot_type) != lerobot_type:
        raise LerobotFormatError(f"config.json type {config.get('type')!r} is not {lerobot_type!r}")
    names = list(REQUIRED) + [k for k in OPTIONAL if k in config]
    kwargs = convert_config_keys(config, names, ignored=IGNORED, fixed=FIXED)
    from robolearn.policies.pi0.configs import GEMMA_VARIANTS, PALIGEMMA_VISION

    if kwargs["paligemma_variant"] not in PALIGEMMA_VISION:
        raise LerobotFormatError(f"config.json: paligemma_variant={kwargs['paligemma_variant']!r} is not supported "
                                 f"(robolearn has {sorted(PALIGEMMA_VISION)})")
    if kwargs["action_expert_variant"] not in GEMMA_VARIANTS:
        raise LerobotFormatError(f"config.json: action_expert_variant={kwargs['action_expert_variant']!r} is not "
                                 f"supported (robolearn has {sorted(GEMMA_VARIANTS)})")
    if "image_resolution" in kwargs:
        kwargs["image_resolution"] = list(kwargs["image_resolution"])
    return kwargs


def lerobot_config_from_kwargs(kwargs: Mapping[str, Any], features: Mapping[str, PolicyFeature],
                               lerobot_type: str = LEROBOT_TYPE) -> dict[str, Any]:
    """A lerobot ``pi0`` ``config.json`` dict from ``Pi0Policy`` kwargs.

    Raises:
        LerobotFormatError: LoRA adapters are active (``peft.r > 0``): lerobot's config cannot express them.
    """
    if lora_enabled(kwargs.get("peft")):
        raise LerobotFormatError("a π0 policy with LoRA adapters (peft.r > 0) cannot be written as a lerobot "
                                 "checkpoint; merge the adapters into the base weights first")
    config = base_lerobot_config(lerobot_type, features, kwargs.get("n_obs_steps", 1), kwargs["normalization_mapping"])
    for key in REQUIRED + OPTIONAL:
        if key in kwargs:
            value = kwargs[key]
            config[key] = list(value) if isinstance(value, tuple) else value
    config.update(FIXED)
    config.update(compile_model=False, compile_mode="max-autotune")
    return config


def state_dict_from_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """lerobot ``pi0`` weights -> robolearn names (see the module docstring for the map)."""
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if key in DROPPED:
            continue
        new = key
        if key.startswith(PREFIX):
            rest = key[len(PREFIX):]
            for old, ours in OLD_LAYOUT:
                if rest.startswith(old):
                    new = PREFIX + ours + rest[len(old):]
                    break
        if new in out:
            raise LerobotFormatError(f"lerobot weights hold both {key!r} and another name for {new!r}")
        out[new] = value
    if LM_HEAD not in out and EMBED in out:
        out[LM_HEAD] = out[EMBED]  # tied to the token embedding
    return out


def state_dict_to_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """robolearn weights -> lerobot names (identity on robolearn's current layout; LoRA keys rejected).

    Raises:
        LerobotFormatError: LoRA parameters present.
    """
    lora = sorted(k for k in sd if ".lora_" in k or ".base_layer." in k)
    if lora:
        raise LerobotFormatError(f"LoRA parameters cannot be written as lerobot π0 weights: {lora[:3]} ...")
    return dict(sd)
