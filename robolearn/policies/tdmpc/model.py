"""TD-MPC's Task-Oriented Latent Dynamics (TOLD) model as plain ``nn.Module`` s.

Hansen, Wang & Su 2022, "Temporal Difference Learning for Model Predictive Control"
(https://arxiv.org/abs/2203.04955), with the FOWM additions lerobot uses (Feng et al. 2023, "Finetuning
Offline World Models in the Real World": a state-value head ``V`` trained by expectile regression and
advantage-weighted regression for ``pi``).

Sub-module and parameter names equal lerobot 0.6.1's ``TDMPCTOLD`` (``_encoder.image_enc_layers``,
``_encoder.state_enc_layers``, ``_encoder.env_state_enc_layers``, ``_dynamics``, ``_reward``, ``_pi``, ``_Qs``,
``_V``), so its checkpoints load with an identity key map.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (kernel size, stride) of the four convolutions of the image encoder (TD-MPC's DMControl encoder).
IMAGE_CONVS = ((7, 2), (5, 2), (3, 2), (3, 2))


def conv_output_hw(height: int, width: int) -> tuple[int, int]:
    """Spatial size after :data:`IMAGE_CONVS` (no padding). Raises ``ValueError`` if an image is too small."""
    h, w = height, width
    for k, s in IMAGE_CONVS:
        h, w = (h - k) // s + 1, (w - k) // s + 1
    if h < 1 or w < 1:
        raise ValueError(f"image of size {height}x{width} is too small for TD-MPC's encoder (needs >= 61 px)")
    return h, w


def _state_branch(in_dim: int, hidden_dim: int, latent_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.ELU(), nn.Linear(hidden_dim, latent_dim), nn.LayerNorm(latent_dim), nn.Sigmoid()
    )


def _apply_flat(fn: nn.Module, x: Tensor, frame_ndim: int) -> Tensor:
    """Apply ``fn`` to ``x`` of shape ``(*lead, *frame)`` by flattening the leading dims (one batch dim)."""
    lead = x.shape[: x.dim() - frame_ndim]
    y = fn(x.reshape(-1, *x.shape[x.dim() - frame_ndim :]))
    return y.reshape(*lead, *y.shape[1:])


class TDMPCObservationEncoder(nn.Module):
    """Encodes an image, an environment state and/or a robot state into one latent ``(*, latent_dim)``.

    Each present modality goes through its own branch ending in LayerNorm + Sigmoid; the latent is the
    uniform mean of the branch outputs (order image, environment state, robot state, as lerobot).

    Args:
        image_shape: ``(C, H, W)`` of the camera or ``None``.
        state_dim: size of ``observation.state`` or ``None``.
        env_state_dim: size of ``observation.environment_state`` or ``None``.
        image_encoder_hidden_dim: channels of the four convolutions.
        state_encoder_hidden_dim: hidden width of the state MLPs.
        latent_dim: size of the latent.

    Raises:
        ValueError: no modality given, or an image smaller than the encoder's receptive field.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] | None,
        state_dim: int | None,
        env_state_dim: int | None,
        image_encoder_hidden_dim: int,
        state_encoder_hidden_dim: int,
        latent_dim: int,
    ):
        super().__init__()
        if image_shape is None and state_dim is None and env_state_dim is None:
            raise ValueError("TD-MPC needs at least one of an image, observation.state or observation.environment_state")
        self.has_image, self.has_state, self.has_env = image_shape is not None, state_dim is not None, env_state_dim is not None
        if image_shape is not None:
            c, h, w = image_shape
            oh, ow = conv_output_hw(h, w)
            layers: list[nn.Module] = []
            in_ch = c
            for k, s in IMAGE_CONVS:
                layers += [nn.Conv2d(in_ch, image_encoder_hidden_dim, k, stride=s), nn.ReLU()]
                in_ch = image_encoder_hidden_dim
            layers += [
                nn.Flatten(),
                nn.Linear(image_encoder_hidden_dim * oh * ow, latent_dim),
                nn.LayerNorm(latent_dim),
                nn.Sigmoid(),
            ]
            self.image_enc_layers = nn.Sequential(*layers)
        if state_dim is not None:
            self.state_enc_layers = _state_branch(state_dim, state_encoder_hidden_dim, latent_dim)
        if env_state_dim is not None:
            self.env_state_enc_layers = _state_branch(env_state_dim, state_encoder_hidden_dim, latent_dim)

    def forward(self, image: Tensor | None = None, state: Tensor | None = None, env_state: Tensor | None = None) -> Tensor:
        """Latent ``(*, latent_dim)`` from ``image`` ``(*, C, H, W)``, ``state`` ``(*, D_s)``, ``env_state``
        ``(*, D_e)`` (the modalities this encoder was built with, all with the same leading dims ``*``)."""
        feats = []
        if self.has_image:
            feats.append(_apply_flat(self.image_enc_layers, image, 3))
        if self.has_env:
            feats.append(self.env_state_enc_layers(env_state))
        if self.has_state:
            feats.append(self.state_enc_layers(state))
        return torch.stack(feats, dim=0).mean(0)


def _mlp(in_dim: int, mlp_dim: int, out_dim: int, out_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Linear(in_dim, mlp_dim), nn.LayerNorm(mlp_dim), nn.Mish(),
        nn.Linear(mlp_dim, mlp_dim), nn.LayerNorm(mlp_dim), nn.Mish(),
        nn.Linear(mlp_dim, out_dim),
    ]
    if out_norm:
        layers += [nn.LayerNorm(out_dim), nn.Sigmoid()]
    return nn.Sequential(*layers)


def _value_mlp(in_dim: int, mlp_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, mlp_dim), nn.LayerNorm(mlp_dim), nn.Tanh(), nn.Linear(mlp_dim, mlp_dim), nn.ELU(),
        nn.Linear(mlp_dim, 1),
    )


class TOLD(nn.Module):
    """Task-Oriented Latent Dynamics: encoder, latent dynamics ``d``, reward ``R``, policy ``pi``, Q ensemble
    and state value ``V`` (TD-MPC Sec. 3-4; ``V`` from FOWM).

    Initialization (as TD-MPC / lerobot): orthogonal weights for every Linear and Conv2d (ReLU gain for
    convolutions), zero biases, and zero weights in the last layers of the reward head and of every Q head.

    Args:
        action_dim: size of the action ``A``.
        latent_dim, mlp_dim, q_ensemble_size: sizes.
        image_shape, state_dim, env_state_dim, image_encoder_hidden_dim, state_encoder_hidden_dim: see
            :class:`TDMPCObservationEncoder`.
    """

    def __init__(
        self,
        action_dim: int,
        image_shape: tuple[int, int, int] | None = None,
        state_dim: int | None = None,
        env_state_dim: int | None = None,
        image_encoder_hidden_dim: int = 32,
        state_encoder_hidden_dim: int = 256,
        latent_dim: int = 50,
        mlp_dim: int = 512,
        q_ensemble_size: int = 5,
    ):
        super().__init__()
        self._encoder = TDMPCObservationEncoder(
            image_shape, state_dim, env_state_dim, image_encoder_hidden_dim, state_encoder_hidden_dim, latent_dim
        )
        za = latent_dim + action_dim
        self._dynamics = _mlp(za, mlp_dim, latent_dim, out_norm=True)
        self._reward = _mlp(za, mlp_dim, 1)
        self._pi = _mlp(latent_dim, mlp_dim, action_dim)
        self._Qs = nn.ModuleList([_value_mlp(za, mlp_dim) for _ in range(q_ensemble_size)])
        self._V = _value_mlp(latent_dim, mlp_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TD-MPC's initialization (see the class docstring)."""
        relu_gain = nn.init.calculate_gain("relu")
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.orthogonal_(m.weight, relu_gain if isinstance(m, nn.Conv2d) else 1.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for head in (self._reward, *self._Qs):
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def encode(self, image: Tensor | None = None, state: Tensor | None = None, env_state: Tensor | None = None) -> Tensor:
        """Observation -> latent ``z`` ``(*, latent_dim)``; see :meth:`TDMPCObservationEncoder.forward`."""
        return self._encoder(image=image, state=state, env_state=env_state)

    def latent_dynamics_and_reward(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """``(z_next (*, latent_dim), reward (*,))`` from ``z`` ``(*, latent_dim)`` and ``a`` ``(*, A)``."""
        x = torch.cat([z, a], dim=-1)
        return self._dynamics(x), self._reward(x).squeeze(-1)

    def latent_dynamics(self, z: Tensor, a: Tensor) -> Tensor:
        """Next latent ``(*, latent_dim)`` from ``z`` ``(*, latent_dim)`` and ``a`` ``(*, A)``."""
        return self._dynamics(torch.cat([z, a], dim=-1))

    def pi(self, z: Tensor, std: float = 0.0) -> Tensor:
        """Policy action ``tanh(pi(z))`` ``(*, A)`` (normalized action space), plus ``N(0, std^2)`` noise
        (drawn with ``torch.randn_like``, not clipped) when ``std > 0``."""
        action = torch.tanh(self._pi(z))
        if std > 0:
            action = action + torch.randn_like(action) * std
        return action

    def V(self, z: Tensor) -> Tensor:  # noqa: N802 (the paper's name)
        """State value ``(*,)`` of ``z`` ``(*, latent_dim)``."""
        return self._V(z).squeeze(-1)

    def Qs(self, z: Tensor, a: Tensor, return_min: bool = False) -> Tensor:  # noqa: N802
        """State-action values of every Q head, ``(q_ensemble_size, *)``.

        With ``return_min`` (FOWM App. C): the element-wise minimum of two heads ``(*,)`` drawn with
        ``numpy.random.choice(q_ensemble_size, size=2)`` (numpy's global RNG, with replacement, as lerobot,
        so a seeded run reproduces lerobot's losses); with at most 2 heads, the minimum over all of them.
        """
        x = torch.cat([z, a], dim=-1)
        if not return_min:
            return torch.stack([q(x).squeeze(-1) for q in self._Qs], dim=0)
        if len(self._Qs) > 2:
            idx = np.random.choice(len(self._Qs), size=2)
            heads = [self._Qs[int(i)] for i in idx]
        else:
            heads = list(self._Qs)
        return torch.stack([q(x).squeeze(-1) for q in heads], dim=0).min(0).values


def random_shifts_aug(x: Tensor, max_random_shift_ratio: float) -> Tensor:
    """Random image shift (DrQ-v2, Yarats et al. 2021), as TD-MPC uses for pixel inputs.

    Each image of ``x`` ``(N, C, H, H)`` is padded by ``pad = round(ratio * H)`` pixels (edge replicated)
    and cropped back to ``H x H`` at an integer offset in ``[0, 2 * pad]`` per axis, drawn with
    ``torch.randint(..., size=(N, 1, 1, 2), dtype=float32)``; the crop is done by bilinear ``grid_sample``.

    Raises:
        ValueError: non-square images.
    """
    n, _, h, w = x.shape
    if h != w:
        raise ValueError(f"random_shifts_aug needs square images, got {h}x{w}")
    pad = int(round(max_random_shift_ratio * h))
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    size = h + 2 * pad
    eps = 1.0 / size
    coords = torch.linspace(-1.0 + eps, 1.0 - eps, size, device=x.device, dtype=torch.float32)[:h]
    gx = coords.view(1, h).expand(h, h)  # x varies along the width
    base = torch.stack([gx, gx.t()], dim=-1).unsqueeze(0).expand(n, h, h, 2)
    shift = torch.randint(0, 2 * pad + 1, size=(n, 1, 1, 2), device=x.device, dtype=torch.float32)
    shift = shift * (2.0 / size)
    return F.grid_sample(padded, base + shift, padding_mode="zeros", align_corners=False)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * online`` for every parameter (same structure)."""
    for (name_t, p_t), (name_o, p_o) in zip(target.named_parameters(), online.named_parameters(), strict=True):
        if name_t != name_o:
            raise ValueError(f"target and online parameters differ: '{name_t}' vs '{name_o}'")
        p_t.mul_(momentum).add_(p_o.detach(), alpha=1.0 - momentum)
