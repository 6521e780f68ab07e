"""ACT as a robolearn ``PolicyModule`` (Zhao et al. 2023, https://arxiv.org/abs/2304.13705)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from robolearn.features import ACTION, FeatureType
from robolearn.policies.act.model import ACT
from robolearn.policies.base import PolicyModule, fused_on_cpu


class TemporalEnsembler:
    """Online temporal ensembling of overlapping action chunks (ACT paper, Sec. IV-B).

    At every control step a new chunk ``(B, K, A)`` is predicted for times ``t .. t+K-1``. The action executed at
    time ``t`` is the weighted mean of every prediction made for ``t``, with weight ``w_i = exp(-coeff * i)``
    where ``i = 0`` is the **oldest** prediction (so ``coeff > 0`` favours older predictions, as in the paper).

    ``update(chunk) -> (B, A)`` returns the action for the current step. ``reset()`` forgets everything.
    """

    def __init__(self, coeff: float, chunk_size: int):
        self.coeff, self.chunk_size = float(coeff), int(chunk_size)
        self.reset()

    def reset(self) -> None:
        self.weighted_sum: Tensor | None = None  # (B, L, A) pending timesteps t, t+1, ...
        self.weight_sum: Tensor | None = None  # (L,)
        self.count: Tensor | None = None  # (L,) number of predictions already received per timestep

    def update(self, chunk: Tensor) -> Tensor:
        k = chunk.shape[1]
        if self.weighted_sum is None:
            count = torch.zeros(k, device=chunk.device)
            weighted = torch.zeros_like(chunk)
            wsum = torch.zeros(k, dtype=chunk.dtype, device=chunk.device)
        else:
            n_old = self.weighted_sum.shape[1]
            extra = k - n_old
            weighted = torch.cat([self.weighted_sum, torch.zeros_like(chunk[:, n_old:])], dim=1) if extra > 0 else self.weighted_sum
            wsum = torch.cat([self.weight_sum, self.weight_sum.new_zeros(extra)]) if extra > 0 else self.weight_sum
            count = torch.cat([self.count, self.count.new_zeros(extra)]) if extra > 0 else self.count
        w = torch.exp(-self.coeff * count).to(chunk.dtype)  # weight of this (count-th) prediction per timestep
        weighted = weighted + chunk * w[None, :, None]
        wsum = wsum + w
        count = count + 1
        action = weighted[:, 0] / wsum[0]
        self.weighted_sum, self.weight_sum, self.count = weighted[:, 1:], wsum[1:], count[1:]
        return action


class ACTPolicy(PolicyModule):
    """Action Chunking Transformer policy (Zhao et al. 2023, "Learning Fine-Grained Bimanual Manipulation with
    Low-Cost Hardware"). Parameter names and defaults are lerobot's ``ACTConfig`` (tuned for bimanual ALOHA),
    except ``pretrained_backbone_weights=None`` (offline default; a timm pretrained name such as
    ``"resnet18.tv_in1k"`` or lerobot's ``"ResNet18_Weights.IMAGENET1K_V1"`` loads ImageNet weights).

    Inputs: optional ``observation.state`` ``(B, D_s)``, one or more cameras ``(B, 3, H, W)`` (same size) and/or
    ``observation.environment_state`` ``(B, D_e)``; at least one camera or the environment state is required.
    Output: ``action`` chunks ``(B, chunk_size, A)``. All features MEAN_STD normalized by default.

    Training loss (normalized space): ``L1(actions, pred)`` averaged over the non-padded elements
    (``action_is_pad``; lerobot 0.6.1's reduction, checked against its fixture) ``+ kl_weight * KL(q(z|s,a) || N(0, I))`` (summed over latent dims,
    mean over the batch). In eval mode the latent is zeros and the loss is the L1 term only.

    Args:
        features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats: see
            :class:`~robolearn.policies.base.PolicyModule`. ``optimizer=None`` uses
            AdamW(``optimizer_lr``, ``optimizer_weight_decay``); an explicit ``optimizer`` replaces those two.
        n_obs_steps: must be 1.
        chunk_size: number of actions predicted per inference ``K``.
        n_action_steps: actions executed per inference (``<= chunk_size``; 1 with temporal ensembling).
        vision_backbone: timm ResNet name; its norm layers are frozen batch norm.
        temporal_ensemble_coeff: ``m`` of the paper's ``w_i = exp(-m i)`` (0.01 in the paper) or ``None``.
        optimizer_lr: AdamW learning rate (lerobot's ACT preset, as the other ``optimizer_*`` defaults).
        optimizer_weight_decay: AdamW (decoupled) weight decay.
        optimizer_lr_backbone: learning rate of the ``model.backbone`` parameter group; a parameter-group setting, so
            it applies with an explicit ``optimizer`` too.
        Others: see :class:`~robolearn.policies.act.model.ACT`.

    Raises:
        ValueError: invalid combination (``n_obs_steps != 1``, ``n_action_steps > chunk_size``, ensembling with
            ``n_action_steps != 1``, no camera and no environment state, cameras of different shapes); an explicit
            ``optimizer`` with a non-default ``optimizer_lr``/``optimizer_weight_decay``.
    """

    default_normalization_mapping = {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ENV": "MEAN_STD", "ACTION": "MEAN_STD"}
    optimizer_hparams = ("optimizer_lr", "optimizer_weight_decay")

    def __init__(
        self,
        features: Mapping[str, Any],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None | bool = None,
        normalization_mapping: Mapping[str, str] | None = None,
        use_imagenet_stats: bool = False,
        n_obs_steps: int = 1,
        chunk_size: int = 100,
        n_action_steps: int = 100,
        vision_backbone: str = "resnet18",
        pretrained_backbone_weights: str | None = None,
        replace_final_stride_with_dilation: bool = False,
        pre_norm: bool = False,
        dim_model: int = 512,
        n_heads: int = 8,
        dim_feedforward: int = 3200,
        feedforward_activation: str = "relu",
        n_encoder_layers: int = 4,
        n_decoder_layers: int = 1,
        use_vae: bool = True,
        latent_dim: int = 32,
        n_vae_encoder_layers: int = 4,
        temporal_ensemble_coeff: float | None = None,
        dropout: float = 0.1,
        kl_weight: float = 10.0,
        optimizer_lr: float = 1e-5,
        optimizer_weight_decay: float = 1e-4,
        optimizer_lr_backbone: float = 1e-5,
    ):
        super().__init__(features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats)
        self.check_single_frame_chunking("ACT", n_obs_steps, n_action_steps, chunk_size)
        if temporal_ensemble_coeff is not None and n_action_steps != 1:
            raise ValueError("temporal ensembling (temporal_ensemble_coeff) requires n_action_steps=1")
        self.state_key = self._feature_key(FeatureType.STATE)
        self.env_key = self._feature_key(FeatureType.ENV)
        cams = self.image_keys
        if len({self.features[k].shape for k in cams}) > 1:
            raise ValueError(f"ACT cameras must share one shape, got {[(k, self.features[k].shape) for k in cams]}")
        self.chunk_size, self.kl_weight, self.use_vae = chunk_size, kl_weight, use_vae
        self.optimizer_lr, self.optimizer_weight_decay = optimizer_lr, optimizer_weight_decay
        self.optimizer_lr_backbone = optimizer_lr_backbone
        self.model = ACT(
            state_dim=self.features[self.state_key].shape[0] if self.state_key else None,
            env_state_dim=self.features[self.env_key].shape[0] if self.env_key else None,
            num_cameras=len(cams),
            action_dim=self.action_dim,
            chunk_size=chunk_size,
            vision_backbone=vision_backbone,
            pretrained_backbone_weights=pretrained_backbone_weights,
            replace_final_stride_with_dilation=replace_final_stride_with_dilation,
            pre_norm=pre_norm,
            dim_model=dim_model,
            n_heads=n_heads,
            dim_feedforward=dim_feedforward,
            feedforward_activation=feedforward_activation,
            n_encoder_layers=n_encoder_layers,
            n_decoder_layers=n_decoder_layers,
            use_vae=use_vae,
            latent_dim=latent_dim,
            n_vae_encoder_layers=n_vae_encoder_layers,
            dropout=dropout,
        )
        self.temporal_ensembler = (
            TemporalEnsembler(temporal_ensemble_coeff, chunk_size) if temporal_ensemble_coeff is not None else None
        )
        self._save_policy_hparams()

    # ------------------------------------------------------------------ data contract
    @property
    def delta_indices(self) -> dict[str, list[int]]:
        """Only the action is windowed: ``{"action": [0 .. chunk_size-1]}``."""
        return {ACTION: list(range(self.chunk_size))}

    def _inputs(self, batch: Mapping[str, Any]) -> tuple[Tensor | None, Tensor | None, list[Tensor]]:
        def frame(x: Tensor, ndim: int) -> Tensor:  # drop a length-1 time axis if present
            return x[:, -1] if x.dim() == ndim + 1 else x

        state = frame(batch[self.state_key], 2) if self.state_key else None
        env = frame(batch[self.env_key], 2) if self.env_key else None
        images = [frame(batch[k], 4) for k in self.image_keys]
        return state, env, images

    # ------------------------------------------------------------------ loss / inference
    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Masked L1 (+ ``kl_weight`` * KL in training mode with the VAE) on a normalized batch with
        ``action`` ``(B, chunk_size, A)`` and optional ``action_is_pad`` ``(B, chunk_size)``."""
        state, env, images = self._inputs(batch)
        actions = batch[ACTION]
        is_pad = batch.get(f"{ACTION}_is_pad")
        actions_hat, (mu, log_sigma_x2) = self.model(state, env, images, actions, is_pad)
        l1 = F.l1_loss(actions, actions_hat, reduction="none")
        if is_pad is not None:
            valid = (~is_pad.bool()).unsqueeze(-1).to(l1.dtype)
            l1 = (l1 * valid).sum() / (valid.sum() * l1.shape[-1]).clamp_min(1)
        else:
            l1 = l1.mean()
        info = {"l1_loss": l1.detach()}
        loss = l1
        if mu is not None:
            kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
            info["kld_loss"] = kld.detach()
            loss = l1 + self.kl_weight * kld
        return loss, info

    def _predict_chunk(self, batch: dict[str, Any]) -> Tensor:
        state, env, images = self._inputs(batch)
        return self.model(state, env, images)[0]

    @torch.no_grad()
    def predict_action_chunk(self, observation: dict[str, Tensor]) -> Tensor:
        """Raw observation (states ``(B, D)``, cameras ``(B, 3, H, W)``) -> unnormalized ``(B, chunk_size, A)``."""
        return super().predict_action_chunk(observation)

    @torch.no_grad()
    def select_action(self, observation: dict[str, Tensor]) -> Tensor:
        """Next action ``(B, A)``, from the queue or, with ``temporal_ensemble_coeff``, by temporal ensembling
        of a fresh chunk predicted at every call."""
        if self.temporal_ensembler is None:
            return super().select_action(observation)
        obs = self.normalizer.normalize(observation, keys=list(self.input_features))
        action = self.temporal_ensembler.update(self._predict_chunk(obs))
        return self.normalizer.unnormalize_tensor(ACTION, action)

    def reset(self) -> None:
        super().reset()
        if self.temporal_ensembler is not None:
            self.temporal_ensembler.reset()

    # ------------------------------------------------------------------ optimization
    def get_optim_params(self) -> list[dict[str, Any]]:
        """Two groups: everything but the backbone, and ``model.backbone`` with ``optimizer_lr_backbone``."""
        backbone = [p for n, p in self.named_parameters() if n.startswith("model.backbone.") and p.requires_grad]
        rest = [p for n, p in self.named_parameters() if not n.startswith("model.backbone.") and p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": rest}]
        if backbone:
            groups.append({"params": backbone, "lr": self.optimizer_lr_backbone})
        return groups

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """AdamW(lr=``optimizer_lr``, weight_decay=``optimizer_weight_decay``), lerobot's ACT preset (torch's fused
        kernel on CPU: :func:`~robolearn.policies.base.fused_on_cpu`)."""
        params = list(params)
        return torch.optim.AdamW(params, lr=self.optimizer_lr, weight_decay=self.optimizer_weight_decay,
                                 **fused_on_cpu(params))
