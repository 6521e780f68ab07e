"""lerobot ``diffusion`` checkpoints <-> robolearn :class:`DiffusionPolicy` (lerobot 0.6.1 ``DiffusionConfig``).

Config fields and state-dict keys (``diffusion.*``) have the same names in both; the weight maps are identities.
Every model field is read explicitly from ``config.json`` (robolearn's defaults are the paper's, lerobot's
differ). Unsupported: ``resize_shape`` other than null and ``crop_ratio`` other than 1.0 (raise naming the key).
The optimizer and scheduler fields (``optimizer_lr``, ``optimizer_betas``, ``optimizer_eps``,
``optimizer_weight_decay``, ``scheduler_name``, ``scheduler_warmup_steps``) are ``DiffusionPolicy`` constructor
arguments too: read on load, written from the policy's values on export (a policy trained with an explicit
``optimizer``/``lr_scheduler`` node exports its constructor values, which that node replaced). Other training-only
fields (``drop_n_last_frames``, ``gradient_checkpointing``, ``compile_*``) are ignored on load and written with
lerobot's defaults on export.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from robolearn.features import PolicyFeature
from robolearn.policies.diffusion.module import DiffusionPolicy
from robolearn.policies.lerobot_compat import LerobotFormatError, base_lerobot_config, convert_config_keys

LEROBOT_TYPE = "diffusion"
POLICY_CLASS = DiffusionPolicy

NAMES = ("n_obs_steps", "horizon", "n_action_steps", "vision_backbone", "crop_shape", "crop_is_random",
         "use_group_norm", "spatial_softmax_num_keypoints", "use_separate_rgb_encoder_per_camera", "down_dims",
         "kernel_size", "n_groups", "diffusion_step_embed_dim", "use_film_scale_modulation", "noise_scheduler_type",
         "num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type", "clip_sample",
         "clip_sample_range", "num_inference_steps", "do_mask_loss_for_padding", "optimizer_lr", "optimizer_betas",
         "optimizer_eps", "optimizer_weight_decay", "scheduler_name", "scheduler_warmup_steps")
IGNORED = ("pretrained_backbone_weights", "drop_n_last_frames", "gradient_checkpointing", "compile_model",
           "compile_mode")
FIXED = {"resize_shape": None, "crop_ratio": 1.0}


def kwargs_from_lerobot_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``DiffusionPolicy`` kwargs from a lerobot ``diffusion`` ``config.json`` (``LerobotFormatError``, a
    ``ValueError``, names an unknown, missing or unsupported key)."""
    kwargs = convert_config_keys(config, NAMES, ignored=IGNORED, fixed=FIXED)
    for key in ("crop_shape", "down_dims", "optimizer_betas"):
        if kwargs[key] is not None:
            kwargs[key] = list(kwargs[key])
    return kwargs


def lerobot_config_from_kwargs(kwargs: Mapping[str, Any], features: Mapping[str, PolicyFeature]) -> dict[str, Any]:
    """A lerobot 0.6.1 ``diffusion`` ``config.json`` dict from ``DiffusionPolicy`` kwargs.

    Raises:
        LerobotFormatError: ``replace_final_stride_with_dilation`` is set (lerobot's Diffusion Policy has no such
            option: its model would have another feature map and spatial-softmax size).
    """
    if kwargs.get("replace_final_stride_with_dilation"):
        raise LerobotFormatError("replace_final_stride_with_dilation=True has no equivalent in lerobot's diffusion "
                                 "config; export a policy trained without it")
    config = base_lerobot_config(LEROBOT_TYPE, features, kwargs["n_obs_steps"], kwargs["normalization_mapping"])
    for key in NAMES:
        value = kwargs[key]
        config[key] = list(value) if isinstance(value, tuple) else value
    config.update({
        "pretrained_backbone_weights": kwargs.get("pretrained_backbone_weights"),
        "drop_n_last_frames": kwargs["horizon"] - kwargs["n_action_steps"] - kwargs["n_obs_steps"] + 1,
        "resize_shape": None, "crop_ratio": 1.0, "gradient_checkpointing": False, "compile_model": False,
        "compile_mode": "reduce-overhead",
    })
    return config


def state_dict_from_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Identity: robolearn's ``diffusion.*`` keys are lerobot's."""
    return dict(sd)


def state_dict_to_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Identity (see :func:`state_dict_from_lerobot`)."""
    return dict(sd)
