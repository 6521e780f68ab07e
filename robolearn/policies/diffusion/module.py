"""Diffusion Policy as a robolearn ``PolicyModule`` (Chi et al. 2023, https://arxiv.org/abs/2303.04137)."""

from __future__ import annotations

import collections
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from robolearn.features import ACTION, FeatureType
from robolearn.policies.base import PolicyModule, fused_on_cpu
from robolearn.policies.diffusion.model import DiffusionModel


class DiffusionPolicy(PolicyModule):
    """Diffusion Policy, CNN (1-D conditional U-Net) variant (Chi et al. 2023, "Diffusion Policy: Visuomotor
    Policy Learning via Action Diffusion").

    Defaults are **the paper's** (the values lerobot used until its May 2026 change, PR #3202, to
    ``horizon=64, n_action_steps=32``, ImageNet backbone, BatchNorm, per-camera encoders, no crop); we pick the
    paper's explicitly: ``n_obs_steps=2, horizon=16, n_action_steps=8``, random-init ResNet-18 with GroupNorm,
    84x84 crops, one encoder shared by all cameras, DDPM with 100 steps. Parameter names are lerobot's.

    Inputs: ``observation.state`` ``(B, T_obs, D_s)`` (optional), cameras ``(B, T_obs, 3, H, W)`` and/or
    ``observation.environment_state`` ``(B, T_obs, D_e)``; at least one camera or the environment state.
    Output: ``action``. Normalization: VISUAL MEAN_STD, STATE/ENV/ACTION MIN_MAX (to [-1, 1]).

    Training loss: MSE between predicted and true noise (``prediction_type="epsilon"``) over the whole
    ``horizon`` window, padded steps included unless ``do_mask_loss_for_padding``.
    Inference: ``num_inference_steps`` reverse steps (default ``num_train_timesteps``); the executed actions are
    ``sample[:, n_obs_steps-1 : n_obs_steps-1+n_action_steps]``.

    Args:
        features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats: see
            :class:`~robolearn.policies.base.PolicyModule`. ``optimizer=None`` uses Adam(``optimizer_lr``,
            ``optimizer_betas``, ``optimizer_eps``, ``optimizer_weight_decay``); ``lr_scheduler=None`` uses diffusers'
            ``scheduler_name`` schedule with ``scheduler_warmup_steps`` warm-up steps over
            ``trainer.estimated_stepping_batches`` (``False`` disables it). An explicit ``optimizer`` /
            ``lr_scheduler`` replaces those arguments (combining it with a non-default one raises).
        n_obs_steps: observation frames ``T_obs`` fed to the model.
        horizon: length of the denoised action window (multiple of ``2**(len(down_dims)-1)``).
        n_action_steps: actions executed per inference (``<= horizon - n_obs_steps + 1``).
        crop_shape: ``(h, w)`` crop (random in training if ``crop_is_random``, center in eval) or ``None``.
        use_group_norm: GroupNorm(C/16) in the backbone instead of BatchNorm (not with pretrained weights).
        replace_final_stride_with_dilation: dilate the backbone's last stage instead of striding (output stride 16:
            a 64x64 frame gives 4x4 feature cells for the spatial softmax instead of 2x2). robolearn's own option,
            as ACT's: lerobot's Diffusion Policy has none, so a policy with it cannot be exported in lerobot's format.
        noise_scheduler_type: ``"DDPM"`` or ``"DDIM"``.
        optimizer_lr, optimizer_betas, optimizer_eps, optimizer_weight_decay: Adam's learning rate, betas, eps and
            (L2) weight decay: the paper's values, lerobot's names and defaults.
        scheduler_name: a ``diffusers.optimization.get_scheduler`` name (``"cosine"``: warm-up, then cosine decay
            to 0 at the last optimizer step).
        scheduler_warmup_steps: linear warm-up length in optimizer steps.
        Others: see :class:`~robolearn.policies.diffusion.model.DiffusionModel`.

    Raises:
        ValueError: invalid sizes (see above), a crop larger than the images, no camera and no env state; an
            explicit ``optimizer``/``lr_scheduler`` with a non-default value of an argument it replaces.
    """

    default_normalization_mapping = {"VISUAL": "MEAN_STD", "STATE": "MIN_MAX", "ENV": "MIN_MAX", "ACTION": "MIN_MAX"}
    optimizer_hparams = ("optimizer_lr", "optimizer_betas", "optimizer_eps", "optimizer_weight_decay")
    lr_scheduler_hparams = ("scheduler_name", "scheduler_warmup_steps")

    def __init__(
        self,
        features: Mapping[str, Any],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None | bool = None,
        normalization_mapping: Mapping[str, str] | None = None,
        use_imagenet_stats: bool = False,
        n_obs_steps: int = 2,
        horizon: int = 16,
        n_action_steps: int = 8,
        vision_backbone: str = "resnet18",
        pretrained_backbone_weights: str | None = None,
        use_group_norm: bool = True,
        crop_shape: tuple[int, int] | None = (84, 84),
        crop_is_random: bool = True,
        spatial_softmax_num_keypoints: int = 32,
        replace_final_stride_with_dilation: bool = False,
        use_separate_rgb_encoder_per_camera: bool = False,
        down_dims: tuple[int, ...] = (512, 1024, 2048),
        kernel_size: int = 5,
        n_groups: int = 8,
        diffusion_step_embed_dim: int = 128,
        use_film_scale_modulation: bool = True,
        noise_scheduler_type: str = "DDPM",
        num_train_timesteps: int = 100,
        beta_schedule: str = "squaredcos_cap_v2",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: str = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        num_inference_steps: int | None = None,
        do_mask_loss_for_padding: bool = False,
        optimizer_lr: float = 1e-4,
        optimizer_betas: tuple[float, float] = (0.95, 0.999),
        optimizer_eps: float = 1e-8,
        optimizer_weight_decay: float = 1e-6,
        scheduler_name: str = "cosine",
        scheduler_warmup_steps: int = 500,
    ):
        super().__init__(features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats)
        if n_action_steps > horizon - n_obs_steps + 1:
            raise ValueError(
                f"n_action_steps ({n_action_steps}) must be <= horizon - n_obs_steps + 1 ({horizon - n_obs_steps + 1})"
            )
        self.state_key = self._feature_key(FeatureType.STATE)
        self.env_key = self._feature_key(FeatureType.ENV)
        self.n_obs_steps, self.horizon = n_obs_steps, horizon
        self.optimizer_lr, self.optimizer_betas = optimizer_lr, tuple(optimizer_betas)
        self.optimizer_eps, self.optimizer_weight_decay = optimizer_eps, optimizer_weight_decay
        self.scheduler_name, self.scheduler_warmup_steps = scheduler_name, scheduler_warmup_steps
        self.diffusion = DiffusionModel(
            state_dim=self.features[self.state_key].shape[0] if self.state_key else None,
            env_state_dim=self.features[self.env_key].shape[0] if self.env_key else None,
            image_shapes=[self.features[k].shape for k in self.image_keys],
            action_dim=self.action_dim,
            n_obs_steps=n_obs_steps,
            horizon=horizon,
            vision_backbone=vision_backbone,
            pretrained_backbone_weights=pretrained_backbone_weights,
            use_group_norm=use_group_norm,
            crop_shape=tuple(crop_shape) if crop_shape is not None else None,
            crop_is_random=crop_is_random,
            spatial_softmax_num_keypoints=spatial_softmax_num_keypoints,
            replace_final_stride_with_dilation=replace_final_stride_with_dilation,
            use_separate_rgb_encoder_per_camera=use_separate_rgb_encoder_per_camera,
            down_dims=tuple(down_dims),
            kernel_size=kernel_size,
            n_groups=n_groups,
            diffusion_step_embed_dim=diffusion_step_embed_dim,
            use_film_scale_modulation=use_film_scale_modulation,
            noise_scheduler_type=noise_scheduler_type,
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule,
            beta_start=beta_start,
            beta_end=beta_end,
            prediction_type=prediction_type,
            clip_sample=clip_sample,
            clip_sample_range=clip_sample_range,
            num_inference_steps=num_inference_steps,
            do_mask_loss_for_padding=do_mask_loss_for_padding,
        )
        self._obs_history: dict[str, collections.deque[Tensor]] = {}
        self._save_policy_hparams()

    # ------------------------------------------------------------------ data contract
    @property
    def delta_indices(self) -> dict[str, list[int]]:
        """Observations ``[1-n_obs_steps .. 0]``; actions ``[1-n_obs_steps .. 1-n_obs_steps+horizon-1]``."""
        obs = list(range(1 - self.n_obs_steps, 1))
        out = {k: obs for k in self.input_features}
        out[ACTION] = list(range(1 - self.n_obs_steps, 1 - self.n_obs_steps + self.horizon))
        return out

    def _global_cond(self, batch: Mapping[str, Any]) -> Tensor:
        n = self.n_obs_steps

        def window(x: Tensor, frame_ndim: int) -> Tensor:
            if x.dim() == frame_ndim + 1:  # (B, *frame): a single frame, repeat it
                x = x.unsqueeze(1).expand(-1, n, *x.shape[1:])
            if x.shape[1] < n:
                raise ValueError(f"observation window of length {x.shape[1]} < n_obs_steps={n}")
            return x[:, -n:]

        state = window(batch[self.state_key], 1) if self.state_key else None
        env = window(batch[self.env_key], 1) if self.env_key else None
        images = [window(batch[k], 3) for k in self.image_keys]
        return self.diffusion.global_conditioning(state, env, images)

    # ------------------------------------------------------------------ loss / inference
    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Denoising MSE on a normalized batch: observations ``(B, T_obs, ...)``, ``action`` ``(B, horizon, A)``."""
        actions = batch[ACTION]
        if actions.shape[1] != self.horizon:
            raise ValueError(f"action window has length {actions.shape[1]}, expected horizon={self.horizon}")
        loss = self.diffusion.compute_loss(self._global_cond(batch), actions, batch.get(f"{ACTION}_is_pad"))
        return loss, {}

    def _predict_chunk(self, batch: dict[str, Any], noise: Tensor | None = None) -> Tensor:
        sample = self.diffusion.conditional_sample(self._global_cond(batch), noise=noise)
        start = self.n_obs_steps - 1
        return sample[:, start : start + self.n_action_steps]

    @torch.no_grad()
    def predict_action_chunk(self, observation: dict[str, Tensor], noise: Tensor | None = None) -> Tensor:
        """Raw observation window (states ``(B, n_obs_steps, D)``, cameras ``(B, n_obs_steps, 3, H, W)``; a
        single frame is repeated) -> unnormalized ``(B, n_action_steps, A)``. ``noise`` optionally fixes
        ``x_T`` ``(B, horizon, A)``."""
        obs = self.normalizer.normalize(observation, keys=list(self.input_features))
        return self.normalizer.unnormalize_tensor(ACTION, self._predict_chunk(obs, noise=noise))

    def _prepare_observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Append the frame to the per-key history (a fresh history repeats it) and return the stacked
        window ``(B, n_obs_steps, ...)``; called at every ``select_action``."""
        out = {}
        for key in self.input_features:
            if key not in observation:
                raise KeyError(f"observation lacks '{key}'; the policy needs {sorted(self.input_features)}")
            frame = observation[key]
            hist = self._obs_history.get(key)
            if hist is None:
                hist = collections.deque([frame] * self.n_obs_steps, maxlen=self.n_obs_steps)
                self._obs_history[key] = hist
            else:
                hist.append(frame)
            out[key] = torch.stack(list(hist), dim=1)
        return out

    def reset(self) -> None:
        super().reset()
        self._obs_history.clear()

    # ------------------------------------------------------------------ optimization
    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """Adam(``optimizer_lr``, ``optimizer_betas``, ``optimizer_eps``, ``optimizer_weight_decay``), the paper's
        (torch's fused kernel on CPU: :func:`~robolearn.policies.base.fused_on_cpu`)."""
        params = list(params)
        return torch.optim.Adam(params, lr=self.optimizer_lr, betas=self.optimizer_betas, eps=self.optimizer_eps,
                                weight_decay=self.optimizer_weight_decay, **fused_on_cpu(params))

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """diffusers' ``scheduler_name`` schedule with ``scheduler_warmup_steps`` warm-up over the run's
        optimizer steps (``trainer.estimated_stepping_batches``)."""
        from diffusers.optimization import get_scheduler

        return get_scheduler(
            self.scheduler_name, optimizer=optimizer, num_warmup_steps=self.scheduler_warmup_steps,
            num_training_steps=int(self.trainer.estimated_stepping_batches),
        )
