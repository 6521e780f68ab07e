"""Diffusion Policy network (Chi et al. 2023, "Diffusion Policy: Visuomotor Policy Learning via Action
Diffusion", https://arxiv.org/abs/2303.04137): CNN-based variant.

A 1-D temporal U-Net with FiLM conditioning (Perez et al. 2018) denoises an action trajectory
``(B, horizon, A)`` conditioned on the diffusion step and on a global observation vector built from
``n_obs_steps`` frames of [state, image keypoint features, environment state]. Images go through a ResNet
trunk (GroupNorm instead of BatchNorm by default) and a spatial softmax. Noise schedules come from
``diffusers`` (DDPM or DDIM).

Module names follow lerobot's ``DiffusionModel`` (``rgb_encoder``, ``unet.diffusion_step_encoder``,
``unet.down_modules``, ``unet.mid_modules``, ``unet.up_modules``, ``unet.final_conv``) so lerobot state dicts
(prefix ``diffusion.``) load by name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robolearn.policies.vision import RgbEncoder


class SinusoidalPosEmb(nn.Module):
    """Diffusion-step embedding ``(B,) -> (B, dim)``: ``[sin(t * f_i), cos(t * f_i)]`` with
    ``f_i = exp(-log(10000) * i / (dim/2 - 1))`` (Ho et al. 2020)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freq = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        arg = t.float()[:, None] * freq[None, :]
        return torch.cat((arg.sin(), arg.cos()), dim=-1)


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` (same parameters and state-dict names) that runs as one matrix product on the CPU.

    On the CPU, ``(B, C, T) -> (B, O, T')`` is computed as ``unfold`` (the ``(B, T', C * k)`` windows of the
    zero-padded input) times the ``(O, C * k)`` weight, with autograd through both. At the U-Net's sizes (short time
    axis, batch 1 in inference, 8 in training) PyTorch's CPU convolution takes its slow path (im2col + a GEMM in a
    poor layout); measured on one thread of a busy 2-core CPU: 2048 -> 2048 channels, kernel 5, T = 4, batch 1:
    140 ms -> 45 ms; the whole default U-Net, batch 1 forward 1.45 s -> 0.79 s, batch 8 forward + backward
    7.4-8.0 s -> 2.7-3.7 s. Outputs and gradients equal ``F.conv1d``'s up to float rounding (a different summation
    order, ~2e-6 relative). Other devices, and grouped, dilated or non-``zeros``-padded convolutions use
    ``nn.Conv1d.forward``.

    The matrix product only pays for wide layers: below :attr:`unfold_min_columns` input columns
    (``in_channels * kernel_size``) PyTorch's convolution is as fast or faster (one thread, kernel 5, forward +
    backward at batch 64: 64 channels 1.7x slower with the unfold, 256 channels 1.2x, 1024 channels 0.6x, 2048
    channels 0.37x; the CPU-sized ``diffusion_cpu`` U-Net of the main job, 64-256 channels, trained 10-20 % slower
    with it), so narrow layers keep it, except at batch 1 (inference) from 128 input channels up, where the unfold
    measured 0.24-1.03x.
    """

    #: ``in_channels * kernel_size`` from which the unfold form is used at any batch size.
    unfold_min_columns: int = 4096
    #: at batch 1, ``in_channels`` from which the unfold form is used.
    unfold_min_channels_batch1: int = 128

    def forward(self, x: Tensor) -> Tensor:
        if (x.device.type != "cpu" or self.groups != 1 or self.dilation != (1,) or self.padding_mode != "zeros"
                or isinstance(self.padding, str)):
            return super().forward(x)
        wide = self.in_channels * self.kernel_size[0] >= self.unfold_min_columns
        if not (wide or (x.shape[0] == 1 and self.in_channels >= self.unfold_min_channels_batch1)):
            return super().forward(x)
        (k,), (stride,), (pad,) = self.kernel_size, self.stride, self.padding
        windows = F.pad(x, (pad, pad)).unfold(2, k, stride)  # (B, C, T', k)
        cols = windows.permute(0, 2, 1, 3).reshape(x.shape[0], windows.shape[2], -1)  # (B, T', C * k)
        return F.linear(cols, self.weight.reshape(self.out_channels, -1), self.bias).transpose(1, 2)


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish on ``(B, C, T)``; padding keeps ``T``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(
            Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class ConditionalResidualBlock1D(nn.Module):
    """Two :class:`Conv1dBlock` with FiLM between them and a residual connection.

    ``cond_encoder`` maps the condition ``(B, cond_dim)`` to a per-channel bias, or to scale and bias
    (``use_film_scale_modulation``): ``h = scale * h + bias``. ``(B, in, T) -> (B, out, T)``.
    """

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, n_groups: int, use_film_scale_modulation: bool):
        super().__init__()
        self.out_channels = out_channels
        self.use_film_scale_modulation = use_film_scale_modulation
        self.conv1 = Conv1dBlock(in_channels, out_channels, kernel_size, n_groups)
        cond_channels = out_channels * 2 if use_film_scale_modulation else out_channels
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, cond_channels))
        self.conv2 = Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)
        self.residual_conv = Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.conv1(x)
        film = self.cond_encoder(cond).unsqueeze(-1)
        if self.use_film_scale_modulation:
            h = film[:, : self.out_channels] * h + film[:, self.out_channels :]
        else:
            h = h + film
        h = self.conv2(h)
        return h + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    """1-D U-Net over the trajectory's time axis, conditioned by FiLM on ``[step embedding, global_cond]``.

    Args:
        action_dim: channels of the trajectory ``A``.
        global_cond_dim: size of the observation conditioning vector.
        down_dims: channels per level; the time axis halves at each level but the last
            (``horizon`` must be divisible by ``2 ** (len(down_dims) - 1)``).
        kernel_size, n_groups, diffusion_step_embed_dim, use_film_scale_modulation: see the policy.

    ``forward(x (B, T, A), timestep (B,), global_cond (B, G)) -> (B, T, A)``.
    """

    def __init__(
        self,
        action_dim: int,
        global_cond_dim: int,
        down_dims: tuple[int, ...] = (512, 1024, 2048),
        kernel_size: int = 5,
        n_groups: int = 8,
        diffusion_step_embed_dim: int = 128,
        use_film_scale_modulation: bool = True,
    ):
        super().__init__()
        dsed = diffusion_step_embed_dim
        self.diffusion_step_encoder = nn.Sequential(
            SinusoidalPosEmb(dsed), nn.Linear(dsed, dsed * 4), nn.Mish(), nn.Linear(dsed * 4, dsed)
        )
        cond_dim = dsed + global_cond_dim
        block = lambda i, o: ConditionalResidualBlock1D(i, o, cond_dim, kernel_size, n_groups, use_film_scale_modulation)  # noqa: E731
        dims = [action_dim, *down_dims]
        in_out = list(zip(dims[:-1], dims[1:]))
        self.down_modules = nn.ModuleList()
        for i, (cin, cout) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.down_modules.append(nn.ModuleList([
                block(cin, cout), block(cout, cout),
                Conv1d(cout, cout, 3, stride=2, padding=1) if not last else nn.Identity(),
            ]))
        mid = down_dims[-1]
        self.mid_modules = nn.ModuleList([block(mid, mid), block(mid, mid)])
        self.up_modules = nn.ModuleList()
        for cin, cout in reversed(in_out[1:]):
            self.up_modules.append(nn.ModuleList([
                block(cout * 2, cin), block(cin, cin),
                nn.ConvTranspose1d(cin, cin, 4, stride=2, padding=1),
            ]))
        self.final_conv = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups), Conv1d(down_dims[0], action_dim, 1)
        )

    def forward(self, x: Tensor, timestep: Tensor, global_cond: Tensor | None = None) -> Tensor:
        x = x.transpose(1, 2)  # (B, A, T)
        if timestep.dim() == 0:
            timestep = timestep.expand(x.shape[0])
        cond = self.diffusion_step_encoder(timestep)
        if global_cond is not None:
            cond = torch.cat([cond, global_cond], dim=-1)
        skips = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = down(x)
        for res in self.mid_modules:
            x = res(x, cond)
        for res1, res2, up in self.up_modules:
            x = torch.cat([x, skips.pop()], dim=1)
            x = res2(res1(x, cond), cond)
            x = up(x)
        return self.final_conv(x).transpose(1, 2)


def make_noise_scheduler(
    noise_scheduler_type: str,
    num_train_timesteps: int,
    beta_start: float,
    beta_end: float,
    beta_schedule: str,
    clip_sample: bool,
    clip_sample_range: float,
    prediction_type: str,
):
    """A ``diffusers`` ``DDPMScheduler`` or ``DDIMScheduler`` with the given schedule.

    Raises:
        ValueError: unknown ``noise_scheduler_type`` or ``prediction_type``.
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    if prediction_type not in ("epsilon", "sample"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'sample', got {prediction_type!r}")
    kwargs = dict(
        num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end, beta_schedule=beta_schedule,
        clip_sample=clip_sample, clip_sample_range=clip_sample_range, prediction_type=prediction_type,
    )
    kind = noise_scheduler_type.upper()
    if kind == "DDPM":
        return DDPMScheduler(**kwargs)
    if kind == "DDIM":
        return DDIMScheduler(**kwargs)
    raise ValueError(f"noise_scheduler_type must be 'DDPM' or 'DDIM', got {noise_scheduler_type!r}")


class DiffusionModel(nn.Module):
    """Observation encoder + conditional U-Net + noise scheduler, on normalized tensors.

    All sizes are required keyword arguments: their defaults live once, in :class:`DiffusionPolicy`.

    Args:
        state_dim / env_state_dim: sizes or ``None``.
        image_shapes: ``(C, H, W)`` per camera, in input order.
        action_dim, n_obs_steps, horizon, and the rest: see
            :class:`~robolearn.policies.diffusion.DiffusionPolicy`.

    Raises:
        ValueError: no camera and no environment state; ``horizon`` not divisible by the U-Net's downsampling;
            a crop larger than an image; shared encoder with cameras of different shapes.
    """

    def __init__(
        self,
        *,
        state_dim: int | None,
        env_state_dim: int | None,
        image_shapes: list[tuple[int, int, int]],
        action_dim: int,
        n_obs_steps: int,
        horizon: int,
        vision_backbone: str,
        pretrained_backbone_weights: str | None,
        use_group_norm: bool,
        crop_shape: tuple[int, int] | None,
        crop_is_random: bool,
        spatial_softmax_num_keypoints: int,
        replace_final_stride_with_dilation: bool,
        use_separate_rgb_encoder_per_camera: bool,
        down_dims: tuple[int, ...],
        kernel_size: int,
        n_groups: int,
        diffusion_step_embed_dim: int,
        use_film_scale_modulation: bool,
        noise_scheduler_type: str,
        num_train_timesteps: int,
        beta_schedule: str,
        beta_start: float,
        beta_end: float,
        prediction_type: str,
        clip_sample: bool,
        clip_sample_range: float,
        num_inference_steps: int | None,
        do_mask_loss_for_padding: bool,
    ):
        super().__init__()
        if not image_shapes and env_state_dim is None:
            raise ValueError("Diffusion Policy needs at least one camera or 'observation.environment_state'")
        factor = 2 ** (len(down_dims) - 1)
        if horizon % factor != 0:
            raise ValueError(f"horizon ({horizon}) must be a multiple of 2**(len(down_dims)-1) = {factor}")
        self.state_dim, self.env_state_dim = state_dim, env_state_dim
        self.num_cameras = len(image_shapes)
        self.action_dim, self.n_obs_steps, self.horizon = action_dim, n_obs_steps, horizon
        self.prediction_type, self.do_mask_loss_for_padding = prediction_type, do_mask_loss_for_padding
        self.separate_encoders = use_separate_rgb_encoder_per_camera

        cond_per_step = (state_dim or 0) + (env_state_dim or 0)
        if image_shapes:
            enc_args = (crop_shape, crop_is_random, vision_backbone, pretrained_backbone_weights, use_group_norm,
                        spatial_softmax_num_keypoints, replace_final_stride_with_dilation)
            if use_separate_rgb_encoder_per_camera:
                self.rgb_encoder = nn.ModuleList([RgbEncoder(tuple(s), *enc_args) for s in image_shapes])
                cond_per_step += sum(e.feature_dim for e in self.rgb_encoder)
            else:
                if len({tuple(s) for s in image_shapes}) > 1:
                    raise ValueError(f"a shared rgb encoder needs cameras of one shape, got {image_shapes}; "
                                     "set use_separate_rgb_encoder_per_camera=True")
                self.rgb_encoder = RgbEncoder(tuple(image_shapes[0]), *enc_args)
                cond_per_step += self.rgb_encoder.feature_dim * len(image_shapes)
        self.global_cond_dim = cond_per_step * n_obs_steps
        self.unet = ConditionalUnet1D(
            action_dim, self.global_cond_dim, tuple(down_dims), kernel_size, n_groups, diffusion_step_embed_dim,
            use_film_scale_modulation,
        )
        self.noise_scheduler = make_noise_scheduler(
            noise_scheduler_type, num_train_timesteps, beta_start, beta_end, beta_schedule, clip_sample,
            clip_sample_range, prediction_type,
        )
        self.num_train_timesteps = num_train_timesteps
        self.num_inference_steps = num_inference_steps or num_train_timesteps

    def global_conditioning(self, state: Tensor | None, env_state: Tensor | None, images: list[Tensor]) -> Tensor:
        """Observation vector ``(B, n_obs_steps * per_step)``: per step ``[state, camera features..., env]``.

        ``state`` ``(B, T, D_s)``, ``env_state`` ``(B, T, D_e)``, each image ``(B, T, 3, H, W)``, with
        ``T = n_obs_steps``, all normalized.
        """
        parts = []
        if state is not None:
            parts.append(state)
        if images:
            b, t = images[0].shape[:2]
            if self.separate_encoders:
                feats = [enc(img.flatten(0, 1)) for enc, img in zip(self.rgb_encoder, images)]
            else:
                feats = [self.rgb_encoder(img.flatten(0, 1)) for img in images]
            parts.extend(f.reshape(b, t, -1) for f in feats)
        if env_state is not None:
            parts.append(env_state)
        return torch.cat(parts, dim=-1).flatten(1)

    def conditional_sample(self, global_cond: Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Run the reverse diffusion from ``x_T`` (``noise`` or ``N(0, I)``) -> ``(B, horizon, A)`` normalized."""
        b = global_cond.shape[0]
        sample = noise if noise is not None else torch.randn(
            b, self.horizon, self.action_dim, dtype=global_cond.dtype, device=global_cond.device, generator=generator
        )
        self.noise_scheduler.set_timesteps(self.num_inference_steps)
        for t in self.noise_scheduler.timesteps:
            step = torch.full((b,), int(t), dtype=torch.long, device=sample.device)
            model_out = self.unet(sample, step, global_cond=global_cond)
            sample = self.noise_scheduler.step(model_out, t, sample, generator=generator).prev_sample
        return sample

    def compute_loss(self, global_cond: Tensor, actions: Tensor, action_is_pad: Tensor | None = None) -> Tensor:
        """Denoising loss: MSE between the U-Net output and ``eps`` (or the clean trajectory for
        ``prediction_type="sample"``). ``actions`` ``(B, horizon, A)``; padded steps are excluded only when
        ``do_mask_loss_for_padding``. Draws ``eps`` then the timesteps (lerobot's order)."""
        eps = torch.randn(actions.shape, dtype=actions.dtype, device=actions.device)
        t = torch.randint(0, self.num_train_timesteps, (actions.shape[0],), device=actions.device).long()
        noisy = self.noise_scheduler.add_noise(actions, eps, t)
        pred = self.unet(noisy, t, global_cond=global_cond)
        target = eps if self.prediction_type == "epsilon" else actions
        loss = F.mse_loss(pred, target, reduction="none")
        if self.do_mask_loss_for_padding and action_is_pad is not None:
            valid = (~action_is_pad.bool()).unsqueeze(-1).to(loss.dtype)
            return (loss * valid).sum() / (valid.sum() * loss.shape[-1]).clamp_min(1)
        return loss.mean()
