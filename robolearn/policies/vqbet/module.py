"""VQ-BeT as a robolearn ``PolicyModule`` (Lee et al. 2024, https://arxiv.org/abs/2403.03181)."""

from __future__ import annotations

import collections
import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from robolearn.features import ACTION, FeatureType
from robolearn.policies.base import PolicyModule
from robolearn.policies.vqbet.model import VQBeTModel


class VQBeTPolicy(PolicyModule):
    """VQ-BeT: a residual VQ-VAE discretizes action chunks, then a causal GPT over observation tokens predicts
    the primary/secondary codes and continuous offsets (Lee et al. 2024, "Behavior Generation with Latent
    Actions"). Parameter names and defaults are lerobot's ``VQBeTConfig`` (0.6.1), except
    ``pretrained_backbone_weights=None`` (offline default; ``"ResNet18_Weights.IMAGENET1K_V1"`` is lerobot's).

    Training has two phases, both inside :meth:`training_step` (the loop is generic): while
    ``vqbet.action_head.vqvae_model.discretized`` is false the loss is the VQ-VAE loss on every
    ``action_chunk_size`` sliding window of the action sequence; once ``trainer.global_step`` reaches
    ``n_vqvae_training_steps`` the codebooks are frozen (``discretized = freeze_codebook = True``, saved in the
    state dict) and the loss becomes ``5 * focal(primary code) + 0.5 * focal(secondary code) +
    offset_loss_weight * L1(offsets)``. One Adam optimizer holds three groups (lerobot's): GPT/encoders/heads
    (``optimizer_lr``, ``optimizer_weight_decay``), the VQ-VAE (``optimizer_vqvae_lr``,
    ``optimizer_vqvae_weight_decay``) and GPT no-decay parameters (weight decay 0); parameters without gradient
    in a phase are left untouched by Adam. The default schedule is lerobot's ``vqbet`` one: constant during
    phase 1, then linear warm-up over ``scheduler_warmup_steps`` and a cosine decay. An explicit ``optimizer``
    replaces ``optimizer_lr``/``_betas``/``_eps``/``_weight_decay`` (the groups keep their own settings) and an
    explicit ``lr_scheduler`` replaces ``scheduler_warmup_steps``; combining one with a non-default value of what
    it replaces raises.

    Inputs: ``observation.state`` ``(B, n_obs_steps, D)`` and one or more cameras ``(B, n_obs_steps, 3, H, W)``
    (same shape; lerobot accepts exactly one), or instead of cameras ``observation.environment_state``
    ``(B, n_obs_steps, E)`` (robolearn's state-only variant, one projected token per step, for the Diffusion Policy
    paper's PushT keypoint comparison; it has no lerobot counterpart). Output: ``action``. Normalization: VISUAL
    IDENTITY, STATE/ENV/ACTION MIN_MAX. ``select_action`` executes all ``action_chunk_size`` actions of the current
    step's chunk.

    Raises:
        ValueError: no state, neither a camera nor an environment state, both, cameras of different shapes, a
            crop larger than the image, too many tokens for ``gpt_block_size``; an explicit
            ``optimizer``/``lr_scheduler`` with a non-default value of an argument it replaces.
    """

    default_normalization_mapping = {"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ENV": "MIN_MAX", "ACTION": "MIN_MAX"}
    # optimizer_vqvae_lr / optimizer_vqvae_weight_decay are parameter-group settings: they apply with any optimizer
    optimizer_hparams = ("optimizer_lr", "optimizer_betas", "optimizer_eps", "optimizer_weight_decay")
    lr_scheduler_hparams = ("scheduler_warmup_steps",)

    def __init__(
        self,
        features: Mapping[str, Any],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None | bool = None,
        normalization_mapping: Mapping[str, str] | None = None,
        use_imagenet_stats: bool = False,
        n_obs_steps: int = 5,
        n_action_pred_token: int = 3,
        action_chunk_size: int = 5,
        vision_backbone: str = "resnet18",
        crop_shape: tuple[int, int] | None = (84, 84),
        crop_is_random: bool = True,
        pretrained_backbone_weights: str | None = None,
        use_group_norm: bool = False,
        spatial_softmax_num_keypoints: int = 32,
        n_vqvae_training_steps: int = 20000,
        vqvae_n_embed: int = 16,
        vqvae_embedding_dim: int = 256,
        vqvae_enc_hidden_dim: int = 128,
        gpt_block_size: int = 500,
        gpt_input_dim: int = 512,
        gpt_output_dim: int = 512,
        gpt_n_layer: int = 8,
        gpt_n_head: int = 8,
        gpt_hidden_dim: int = 512,
        dropout: float = 0.1,
        offset_loss_weight: float = 10000.0,
        primary_code_loss_weight: float = 5.0,
        secondary_code_loss_weight: float = 0.5,
        bet_softmax_temperature: float = 0.1,
        sequentially_select: bool = False,
        optimizer_lr: float = 1e-4,
        optimizer_betas: tuple[float, float] = (0.95, 0.999),
        optimizer_eps: float = 1e-8,
        optimizer_weight_decay: float = 1e-6,
        optimizer_vqvae_lr: float = 1e-3,
        optimizer_vqvae_weight_decay: float = 1e-4,
        scheduler_warmup_steps: int = 500,
    ):
        super().__init__(features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats)
        self.state_key = self._feature_key(FeatureType.STATE)
        self.env_key = self._feature_key(FeatureType.ENV)
        if self.state_key is None or not (self.image_keys or self.env_key):
            raise ValueError(f"VQ-BeT needs observation.state and a camera or observation.environment_state; got "
                             f"features {sorted(self.features)}")
        if self.image_keys and self.env_key is not None:
            raise ValueError("VQ-BeT reads cameras or observation.environment_state, not both (lerobot's reads "
                             "cameras only); remove one from the features")
        shapes = {self.features[k].shape for k in self.image_keys}
        if len(shapes) > 1:
            raise ValueError(f"VQ-BeT cameras must share one shape, got {[(k, self.features[k].shape) for k in self.image_keys]}")
        self.n_obs_steps, self.n_action_pred_token, self.action_chunk_size = n_obs_steps, n_action_pred_token, action_chunk_size
        self.n_vqvae_training_steps = n_vqvae_training_steps
        self.optim_cfg = dict(lr=optimizer_lr, betas=tuple(optimizer_betas), eps=optimizer_eps,
                              weight_decay=optimizer_weight_decay, vqvae_lr=optimizer_vqvae_lr,
                              vqvae_weight_decay=optimizer_vqvae_weight_decay, warmup=scheduler_warmup_steps)
        self.vqbet = VQBeTModel(
            state_dim=self.features[self.state_key].shape[0], image_shape=next(iter(shapes), None),
            env_state_dim=self.features[self.env_key].shape[0] if self.env_key else None,
            num_cameras=len(self.image_keys), action_dim=self.action_dim, n_obs_steps=n_obs_steps,
            n_action_pred_token=n_action_pred_token, action_chunk_size=action_chunk_size,
            vision_backbone=vision_backbone, pretrained_backbone_weights=pretrained_backbone_weights,
            use_group_norm=use_group_norm, crop_shape=tuple(crop_shape) if crop_shape is not None else None,
            crop_is_random=crop_is_random, spatial_softmax_num_keypoints=spatial_softmax_num_keypoints,
            vqvae_n_embed=vqvae_n_embed, vqvae_embedding_dim=vqvae_embedding_dim,
            vqvae_enc_hidden_dim=vqvae_enc_hidden_dim, gpt_block_size=gpt_block_size, gpt_input_dim=gpt_input_dim,
            gpt_output_dim=gpt_output_dim, gpt_n_layer=gpt_n_layer, gpt_n_head=gpt_n_head,
            gpt_hidden_dim=gpt_hidden_dim, dropout=dropout, offset_loss_weight=offset_loss_weight,
            primary_code_loss_weight=primary_code_loss_weight, secondary_code_loss_weight=secondary_code_loss_weight,
            bet_softmax_temperature=bet_softmax_temperature, sequentially_select=sequentially_select,
        )
        self._obs_history: dict[str, collections.deque[Tensor]] = {}
        self._save_policy_hparams()

    # ------------------------------------------------------------------ data contract
    @property
    def delta_indices(self) -> dict[str, list[int]]:
        """Observations ``[1-n_obs_steps .. 0]``; actions ``[1-n_obs_steps .. n_action_pred_token+chunk-2]``."""
        obs = list(range(1 - self.n_obs_steps, 1))
        out = {k: obs for k in self.input_features}
        out[ACTION] = list(range(1 - self.n_obs_steps, self.n_action_pred_token + self.action_chunk_size - 1))
        return out

    @property
    def n_action_steps(self) -> int:
        """``select_action`` executes the whole chunk of the current step (``action_chunk_size``)."""
        return self.action_chunk_size

    @property
    def discretized(self) -> bool:
        """True once the VQ-VAE is trained and frozen (phase 2)."""
        return bool(self.vqbet.action_head.vqvae_model.discretized)

    def freeze_vqvae(self) -> None:
        """Enter phase 2: mark the VQ-VAE discretized and stop codebook updates."""
        vq = self.vqbet.action_head.vqvae_model
        vq.discretized.fill_(True)
        vq.vq_layer.freeze_codebook.fill_(True)

    def _window(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        state = batch[self.state_key]
        images = torch.stack([batch[k] for k in self.image_keys], dim=2) if self.image_keys else None  # (B, S, cams, C, H, W)
        env_state = batch[self.env_key] if self.env_key else None  # (B, S, E)
        return state, images, env_state

    # ------------------------------------------------------------------ loss / inference
    def head_outputs(self, batch: Mapping[str, Any], sampled_centers: Tensor | None = None) -> dict[str, Tensor]:
        """Action-head outputs (codes, logits, decoded and predicted actions) for a normalized window batch."""
        return self.vqbet(*self._window(batch), sampled_centers=sampled_centers)

    def compute_loss(self, batch: dict[str, Any], sampled_centers: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Phase-dependent loss on a normalized batch (``action`` ``(B, n_obs_steps + n_action_pred_token +
        action_chunk_size - 2, A)``). ``sampled_centers`` fixes the code draw (tests)."""
        actions = batch[ACTION]
        head = self.vqbet.action_head
        if not self.discretized:
            c = self.action_chunk_size
            chunks = torch.cat([actions[:, j:j + c] for j in range(actions.shape[1] + 1 - c)], dim=0)
            loss, metric = head.vqvae_model.vqvae_forward(chunks)
            codes = metric.pop("codes")
            metric["n_different_codes"] = torch.tensor(float(sum(len(torch.unique(codes[:, i])) for i in range(codes.shape[1]))))
            metric["n_different_combinations"] = torch.tensor(float(len(torch.unique(codes, dim=0))))
            return loss, metric
        out = self.head_outputs(batch, sampled_centers)
        return head.loss(out, actions[:, self.vqbet.select_target_actions_indices])

    def _predict_chunk(self, batch: dict[str, Any], sampled_centers: Tensor | None = None) -> Tensor:
        return self.vqbet.rollout(self.head_outputs(batch, sampled_centers))

    def _prepare_observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Append the frame to the per-key history (a fresh history repeats it ``n_obs_steps`` times) and return
        the window ``(B, n_obs_steps, ...)``."""
        out = {}
        for key in self.input_features:
            if key not in observation:
                raise KeyError(f"observation lacks '{key}'; the policy needs {sorted(self.input_features)}")
            hist = self._obs_history.get(key)
            if hist is None:
                hist = collections.deque([observation[key]] * self.n_obs_steps, maxlen=self.n_obs_steps)
                self._obs_history[key] = hist
            else:
                hist.append(observation[key])
            out[key] = torch.stack(list(hist), dim=1)
        return out

    def reset(self) -> None:
        super().reset()
        self._obs_history.clear()

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Switch to phase 2 once ``global_step >= n_vqvae_training_steps``, then the base step."""
        if not self.discretized and self.global_step >= self.n_vqvae_training_steps:
            self.freeze_vqvae()
        self.log("train/phase", 2.0 if self.discretized else 1.0, on_step=True, batch_size=self._batch_size(batch))
        return super().training_step(batch, batch_idx)

    def get_optim_params(self) -> list[dict[str, Any]]:
        """lerobot's three groups: decay (GPT Linear weights, encoders, projectors, token, heads), VQ-VAE
        (own lr / weight decay), no-decay (GPT biases, LayerNorm, position embedding)."""
        m = self.vqbet
        vqvae = list(m.action_head.vqvae_model.parameters())
        decay, no_decay = m.policy.param_groups()
        vq_ids = {id(p) for p in vqvae} | {id(p) for p in decay} | {id(p) for p in no_decay}
        decay = decay + [p for p in m.parameters() if id(p) not in vq_ids]
        return [
            {"params": decay},
            {"params": vqvae, "lr": self.optim_cfg["vqvae_lr"], "weight_decay": self.optim_cfg["vqvae_weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """Adam(optimizer_lr, optimizer_betas, optimizer_eps, optimizer_weight_decay), lerobot's preset."""
        c = self.optim_cfg
        return torch.optim.Adam(params, lr=c["lr"], betas=c["betas"], eps=c["eps"], weight_decay=c["weight_decay"])

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """lerobot's ``vqbet`` schedule: factor 1 for ``n_vqvae_training_steps`` steps, then linear warm-up over
        ``scheduler_warmup_steps`` and a half-cosine over the run's remaining optimizer steps."""
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        n_vq, warm = self.n_vqvae_training_steps, self.optim_cfg["warmup"]

        def factor(step: int) -> float:
            if step < n_vq:
                return 1.0
            s = step - n_vq
            if s < warm:
                return s / max(1, warm)
            progress = (s - warm) / max(1, total - warm)
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
