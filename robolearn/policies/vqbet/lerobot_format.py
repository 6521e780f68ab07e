"""lerobot ``vqbet`` checkpoints <-> robolearn :class:`VQBeTPolicy` (lerobot 0.6.1 ``VQBeTConfig``).

Every ``VQBeTConfig`` field has the same name and meaning in ``VQBeTPolicy.__init__`` and every state-dict key
is identical (``vqbet.*``), so both maps are identities. ``pretrained_backbone_weights`` is dropped on load
(the backbone's weights are in ``model.safetensors``; no download).
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from robolearn.features import FeatureType, PolicyFeature
from robolearn.policies.lerobot_compat import LerobotFormatError, base_lerobot_config, convert_config_keys
from robolearn.policies.vqbet.module import VQBeTPolicy

LEROBOT_TYPE = "vqbet"
POLICY_CLASS = VQBeTPolicy

NAMES = ("n_obs_steps", "n_action_pred_token", "action_chunk_size", "vision_backbone", "crop_shape", "crop_is_random",
         "use_group_norm", "spatial_softmax_num_keypoints", "n_vqvae_training_steps", "vqvae_n_embed",
         "vqvae_embedding_dim", "vqvae_enc_hidden_dim", "gpt_block_size", "gpt_input_dim", "gpt_output_dim",
         "gpt_n_layer", "gpt_n_head", "gpt_hidden_dim", "dropout", "offset_loss_weight", "primary_code_loss_weight",
         "secondary_code_loss_weight", "bet_softmax_temperature", "sequentially_select", "optimizer_lr",
         "optimizer_betas", "optimizer_eps", "optimizer_weight_decay", "optimizer_vqvae_lr",
         "optimizer_vqvae_weight_decay", "scheduler_warmup_steps")
# ``mlp_hidden_dim`` was in older VQBeTConfig versions and never used by the model.
IGNORED = ("pretrained_backbone_weights", "mlp_hidden_dim")


def kwargs_from_lerobot_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``VQBeTPolicy`` kwargs from a lerobot ``vqbet`` ``config.json`` (raises ``LerobotFormatError``, a
    ``ValueError``, naming an unknown or missing key)."""
    kwargs = convert_config_keys(config, NAMES, ignored=IGNORED)
    if kwargs["crop_shape"] is not None:
        kwargs["crop_shape"] = list(kwargs["crop_shape"])
    return kwargs


def lerobot_config_from_kwargs(kwargs: Mapping[str, Any], features: Mapping[str, PolicyFeature]) -> dict[str, Any]:
    """A lerobot 0.6.1 ``vqbet`` ``config.json`` dict from ``VQBeTPolicy`` kwargs.

    Raises:
        LerobotFormatError: a state-only policy (``observation.environment_state``, no camera): lerobot's VQ-BeT
            reads cameras only.
    """
    if not any(f.type == FeatureType.VISUAL for f in features.values()):
        raise LerobotFormatError("this VQ-BeT reads observation.environment_state instead of a camera (robolearn's "
                                 "state-only variant); lerobot's vqbet has no such input, so it cannot be exported "
                                 "in lerobot's format")
    config = base_lerobot_config(LEROBOT_TYPE, features, kwargs["n_obs_steps"], kwargs["normalization_mapping"])
    for key in NAMES:
        value = kwargs[key]
        config[key] = list(value) if isinstance(value, tuple) else value
    config["pretrained_backbone_weights"] = kwargs.get("pretrained_backbone_weights")
    return config


def state_dict_from_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Identity: robolearn's ``vqbet.*`` keys are lerobot's."""
    return dict(sd)


def state_dict_to_lerobot(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Identity (see :func:`state_dict_from_lerobot`)."""
    return dict(sd)
