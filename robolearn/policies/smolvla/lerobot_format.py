"""lerobot ``smolvla`` checkpoints <-> robolearn :class:`SmolVLAPolicy` (lerobot 0.6.1's ``SmolVLAConfig``).

Config: lerobot's field names are robolearn's constructor names. ``load_vlm_weights`` is forced to False on load
(the weights come from ``model.safetensors``, as lerobot does when loading a whole policy). robolearn-only arguments
(``tokenizer_name``, ``peft``, ``gradient_checkpointing``, ``use_imagenet_stats``) are not written and take their
defaults on load. Offline, set ``policy.tokenizer`` (or ``tokenizer_name``) before the first forward: lerobot's
tokenizer is the VLM's (``vlm_model_name``).

Weights: robolearn keeps the module tree of lerobot's ``SmolVLAPolicy`` (``model`` = ``VLAFlowMatching`` with
``vlm_with_expert`` = ``SmolVLMWithExpertModel`` holding ``vlm`` (a ``transformers`` SmolVLM:
``vlm.model.vision_model``, ``vlm.model.connector``, ``vlm.model.text_model`` truncated to ``num_vlm_layers``,
``vlm.lm_head``) and ``lm_expert`` (a Llama decoder without ``embed_tokens``), plus ``state_proj``,
``action_in_proj``, ``action_out_proj``, ``action_time_mlp_in``, ``action_time_mlp_out``). Source of these names:
lerobot's ``modeling_smolvla.py`` / ``smolvlm_with_expert.py`` attribute names (the ``SmolVLMWithExpertModel`` and
``VLAFlowMatching`` constructors) and ``transformers``' SmolVLM module tree; checked against a tiny checkpoint
written by lerobot 0.6.1 itself (``tests/policies/test_vla_parity.py``), not against a released one. The map below is therefore the identity on each listed prefix;
a key under no listed prefix is reported (with the others) and loading fails.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from robolearn.features import PolicyFeature
from robolearn.policies.lerobot_compat import LerobotFormatError, base_lerobot_config, convert_config_keys
from robolearn.policies.smolvla.module import SmolVLAPolicy
from robolearn.policies.vla.lora import lora_enabled

LEROBOT_TYPE = "smolvla"
POLICY_CLASS = SmolVLAPolicy

REQUIRED = ("chunk_size", "n_action_steps", "max_state_dim", "max_action_dim", "vlm_model_name")
OPTIONAL = ("n_obs_steps", "resize_imgs_with_padding", "empty_cameras", "adapt_to_pi_aloha",
            "use_delta_joint_actions_aloha", "tokenizer_max_length", "num_steps", "use_cache", "freeze_vision_encoder",
            "train_expert_only", "train_state_proj", "optimizer_lr", "optimizer_betas", "optimizer_eps",
            "optimizer_weight_decay", "optimizer_grad_clip_norm", "scheduler_warmup_steps", "scheduler_decay_steps",
            "scheduler_decay_lr", "add_image_special_tokens", "attention_mode", "prefix_length", "pad_language_to",
            "num_expert_layers", "num_vlm_layers", "self_attn_every_n_layers", "expert_width_multiplier",
            "min_period", "max_period")
IGNORED = ("compile_model", "compile_mode", "load_vlm_weights")
FIXED = {"rtc_config": None}

# lerobot name prefix -> robolearn name prefix (explicit; identity because the module trees are the same).
PREFIX_MAP: tuple[tuple[str, str], ...] = (
    ("model.vlm_with_expert.vlm.model.vision_model.", "model.vlm_with_expert.vlm.model.vision_model."),
    ("model.vlm_with_expert.vlm.model.connector.", "model.vlm_with_expert.vlm.model.connector."),
    ("model.vlm_with_expert.vlm.model.text_model.", "model.vlm_with_expert.vlm.model.text_model."),
    ("model.vlm_with_expert.vlm.lm_head.", "model.vlm_with_expert.vlm.lm_head."),
    ("model.vlm_with_expert.lm_expert.layers.", "model.vlm_with_expert.lm_expert.layers."),
    ("model.vlm_with_expert.lm_expert.norm.", "model.vlm_with_expert.lm_expert.norm."),
    ("model.state_proj.", "model.state_proj."),
    ("model.action_in_proj.", "model.action_in_proj."),
    ("model.action_out_proj.", "model.action_out_proj."),
    ("model.action_time_mlp_in.", "model.action_time_mlp_in."),
    ("model.action_time_mlp_out.", "model.action_time_mlp_out."),
)


def kwargs_from_lerobot_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``SmolVLAPolicy`` kwargs from a lerobot ``smolvla`` ``config.json`` (``load_vlm_weights`` set to False).

    Raises:
        LerobotFormatError: (a ``ValueError``) wrong type, a required key missing, an unknown key, or an unsupported
            value (``rtc_config``, the ALOHA adaptations, image special tokens), named in the message.
    """
    if config.get("type", LEROBOT_TYPE) != LEROBOT_TYPE:
        raise LerobotFormatError(f"config.json type {config.get('type')!r} is not {LEROBOT_TYPE!r}")
    names = list(REQUIRED) + [k for k in OPTIONAL if k in config]
    kwargs = convert_config_keys(config, names, ignored=IGNORED, fixed=FIXED)
    for key in ("adapt_to_pi_aloha", "use_delta_joint_actions_aloha", "add_image_special_tokens"):
        if kwargs.get(key):
            raise LerobotFormatError(f"config.json: '{key}' = true is not supported by robolearn's smolvla")
    for key in ("resize_imgs_with_padding", "optimizer_betas"):
        if key in kwargs:
            kwargs[key] = list(kwargs[key])
    kwargs["load_vlm_weights"] = False
    return kwargs


def lerobot_config_from_kwargs(kwargs: Mapping[str, Any], features: Mapping[str, PolicyFeature]) -> dict[str, Any]:
    """lerobot 0.6.1 ``config.json`` for a ``SmolVLAPolicy`` with constructor ``kwargs``.

    Raises:
        LerobotFormatError: LoRA adapters are enabled (``peft.r > 0``: merge them first, lerobot stores adapters
            separately), or ``env_state_in_prefix`` is True (robolearn-only: lerobot's SmolVLA would drop the
            environment state).
    """
    if kwargs.get("env_state_in_prefix"):
        raise LerobotFormatError("a SmolVLA policy with env_state_in_prefix=True reads the environment state, which "
                                 "lerobot's smolvla does not: it cannot be written as a lerobot checkpoint")
    if lora_enabled(kwargs.get("peft")):
        raise LerobotFormatError("a SmolVLA policy with LoRA adapters (peft.r > 0) cannot be written as a lerobot "
                                 "checkpoint; merge the adapters first (robolearn.policies.vla.lora.merge_lora)")
    config = base_lerobot_config(LEROBOT_TYPE, features, kwargs.get("n_obs_steps", 1),
                                 kwargs.get("normalization_mapping") or SmolVLAPolicy.default_normalization_mapping)
    for key in REQUIRED + OPTIONAL:
        if key in kwargs and key != "n_obs_steps":
            value = kwargs[key]
            config[key] = list(value) if isinstance(value, tuple) else value
    config.update({"load_vlm_weights": False, "rtc_config": None, "compile_model": False,
                   "compile_mode": "max-autotune"})
    return config


def _rename(sd: Mapping[str, Tensor], table: tuple[tuple[str, str], ...], source: str) -> dict[str, Tensor]:
    out, unmatched = {}, []
    for key, value in sd.items():
        for old, new in table:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            unmatched.append(key)
    if unmatched:
        raise LerobotFormatError(f"{source}: {len(unmatched)} tensor name(s) match no entry of the smolvla name map: "
                                 f"{sorted(unmatched)}")
    return out


def state_dict_from_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """lerobot ``smolvla`` weights -> robolearn names.

    Raises:
        LerobotFormatError: tensors whose names match no entry of ``PREFIX_MAP`` (all listed).
    """
    return _rename(sd, PREFIX_MAP, "lerobot smolvla weights")


def state_dict_to_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """robolearn ``SmolVLAPolicy`` weights (without ``normalizer.*``) -> lerobot names.

    Raises:
        LerobotFormatError: names outside the map (e.g. LoRA adapters, all listed).
    """
    return _rename(sd, tuple((new, old) for old, new in PREFIX_MAP), "robolearn smolvla weights")
