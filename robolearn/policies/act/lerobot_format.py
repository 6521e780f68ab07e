"""lerobot ``act`` checkpoints <-> robolearn :class:`ACTPolicy` (lerobot 0.6.1 ``ACTConfig``).

Config fields and state-dict keys (``model.*``) have the same names in both, so the weight maps are identities.
``pretrained_backbone_weights`` is dropped on load (the weights are in ``model.safetensors``). The optimizer fields
(``optimizer_lr``, ``optimizer_weight_decay``, ``optimizer_lr_backbone``) are ``ACTPolicy`` constructor arguments
too: read on load, written from the policy's values on export. (A policy trained with an explicit ``optimizer``
node exports its constructor values, which that node replaced.)
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from robolearn.features import PolicyFeature
from robolearn.policies.act.module import ACTPolicy
from robolearn.policies.lerobot_compat import base_lerobot_config, convert_config_keys

LEROBOT_TYPE = "act"
POLICY_CLASS = ACTPolicy

NAMES = ("n_obs_steps", "chunk_size", "n_action_steps", "vision_backbone", "replace_final_stride_with_dilation",
         "pre_norm", "dim_model", "n_heads", "dim_feedforward", "feedforward_activation", "n_encoder_layers",
         "n_decoder_layers", "use_vae", "latent_dim", "n_vae_encoder_layers", "temporal_ensemble_coeff", "dropout",
         "kl_weight", "optimizer_lr", "optimizer_weight_decay", "optimizer_lr_backbone")
IGNORED = ("pretrained_backbone_weights",)


def kwargs_from_lerobot_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``ACTPolicy`` kwargs from a lerobot ``act`` ``config.json`` (``LerobotFormatError``, a ``ValueError``,
    names an unknown or missing key)."""
    return convert_config_keys(config, NAMES, ignored=IGNORED)


def lerobot_config_from_kwargs(kwargs: Mapping[str, Any], features: Mapping[str, PolicyFeature]) -> dict[str, Any]:
    """A lerobot 0.6.1 ``act`` ``config.json`` dict from ``ACTPolicy`` kwargs."""
    config = base_lerobot_config(LEROBOT_TYPE, features, kwargs["n_obs_steps"], kwargs["normalization_mapping"])
    for key in NAMES:
        config[key] = kwargs[key]
    config["pretrained_backbone_weights"] = kwargs.get("pretrained_backbone_weights")
    return config


def state_dict_from_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Identity: robolearn's ``model.*`` keys are lerobot's (torchvision-named ResNet, FrozenBatchNorm2d)."""
    return dict(sd)


def state_dict_to_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Identity (see :func:`state_dict_from_lerobot`)."""
    return dict(sd)
