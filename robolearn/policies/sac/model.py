"""SAC networks (Haarnoja et al. 2018) as plain ``nn.Module`` s: observation encoder, tanh-Gaussian actor, critic
ensemble and the discrete (grasp) critic of HIL-SERL (Luo et al. 2024).

All inputs are **normalized** tensors: states ``(B, D)``, cameras ``(B, 3, H, W)``, actions ``(B, A)`` in [-1, 1].
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU}


class MLP(nn.Module):
    """``Linear -> [LayerNorm] -> activation`` per hidden layer; the last hidden layer is activated only when
    ``activate_final`` (lerobot's ``MLP`` naming).

    Args:
        in_dim: input features.
        hidden_dims: widths of the layers.
        activate_final: apply norm/activation after the last layer too.
        activation: one of ``relu``, ``silu``, ``tanh``, ``gelu``, ``elu``.
        layer_norm: insert ``LayerNorm`` before each activation (RLPD's critic uses it).
        dropout: dropout probability after each activation (0 = none).

    Raises:
        ValueError: unknown ``activation`` or empty ``hidden_dims``.
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], activate_final: bool = True, activation: str = "relu",
                 layer_norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
        if not hidden_dims:
            raise ValueError("MLP hidden_dims must list at least one layer width")
        layers: list[nn.Module] = []
        dims = [int(in_dim), *[int(d) for d in hidden_dims]]
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2 or activate_final:
                if layer_norm:
                    layers.append(nn.LayerNorm(dims[i + 1]))
                layers.append(_ACTIVATIONS[activation]())
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)
        self.out_dim = dims[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SpatialLearnedEmbeddings(nn.Module):
    """Pool a feature map ``(B, C, h, w)`` into ``(B, C * num_features)`` with learned spatial kernels
    (``out[b, c, f] = sum_{y,x} feat[b, c, y, x] * kernel[c, y, x, f]``; SERL's image pooling)."""

    def __init__(self, channels: int, height: int, width: int, num_features: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height, width, num_features))
        nn.init.kaiming_normal_(self.kernel, mode="fan_in", nonlinearity="linear")
        self.out_dim = channels * num_features

    def forward(self, feat: Tensor) -> Tensor:
        return torch.einsum("bchw,chwf->bcf", feat, self.kernel).flatten(1)


class DefaultImageEncoder(nn.Module):
    """Small conv trunk used when no timm backbone is named: four stride-2 convs (7×7, 5×5, 3×3, 3×3, "same"
    padding) with ``hidden_dim`` channels and ReLU; output ``(B, hidden_dim, ceil(H / 16), ceil(W / 16))``."""

    def __init__(self, in_channels: int = 3, hidden_dim: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden_dim, 7, stride=2, padding=3), nn.ReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, 3, stride=2, padding=1), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TimmImageEncoder(nn.Module):
    """A timm backbone's last feature map ``(B, C, h, w)`` (``features_only``); offline by default
    (``pretrained=False``), optionally frozen (no gradients, kept in eval mode)."""

    def __init__(self, name: str, pretrained: bool = False, frozen: bool = True) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=(-1,))
        self.frozen = bool(frozen)
        if self.frozen:
            for p in self.net.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "TimmImageEncoder":
        super().train(mode)
        if self.frozen:
            self.net.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        if self.frozen:
            with torch.no_grad():
                return self.net(x)[-1]
        return self.net(x)[-1]


class ObservationEncoder(nn.Module):
    """Encode a normalized observation dict into one feature vector ``(B, out_dim)``.

    Each state-like key: ``Linear(D, state_encoder_hidden_dim) -> LayerNorm -> Tanh``. Each camera: image trunk
    (shared across cameras) -> :class:`SpatialLearnedEmbeddings` (``image_embedding_pooling_dim`` kernels) ->
    ``Linear(-, latent_dim) -> LayerNorm -> Tanh``. The parts are concatenated and projected by
    ``Linear(-, latent_dim) -> LayerNorm -> Tanh``.

    Args:
        state_shapes: ``{key: D}`` of the state/environment-state inputs.
        image_shapes: ``{key: (C, H, W)}`` of the cameras (all the same shape).
        latent_dim, state_encoder_hidden_dim, image_encoder_hidden_dim, image_embedding_pooling_dim: widths.
        vision_encoder_name: timm model name, or None for :class:`DefaultImageEncoder`.
        freeze_vision_encoder: freeze the timm backbone.
        pretrained_vision_encoder: load the timm pretrained weights (needs the weights locally or network).

    Raises:
        ValueError: no inputs, or cameras of different shapes.
    """

    def __init__(self, state_shapes: Mapping[str, int], image_shapes: Mapping[str, Sequence[int]], latent_dim: int,
                 state_encoder_hidden_dim: int, image_encoder_hidden_dim: int = 32, image_embedding_pooling_dim: int = 8,
                 vision_encoder_name: str | None = None, freeze_vision_encoder: bool = True,
                 pretrained_vision_encoder: bool = False) -> None:
        super().__init__()
        if not state_shapes and not image_shapes:
            raise ValueError("the SAC observation encoder needs at least one state or camera input")
        self.state_keys = list(state_shapes)
        self.image_keys = list(image_shapes)
        self.state_encoders = nn.ModuleDict({
            k.replace(".", "_"): nn.Sequential(nn.Linear(int(d), state_encoder_hidden_dim),
                                               nn.LayerNorm(state_encoder_hidden_dim), nn.Tanh())
            for k, d in state_shapes.items()})
        total = state_encoder_hidden_dim * len(self.state_keys)
        self.image_trunk: nn.Module | None = None
        if self.image_keys:
            shapes = {tuple(int(s) for s in v) for v in image_shapes.values()}
            if len(shapes) > 1:
                raise ValueError(f"SAC cameras must share one shape, got {dict(image_shapes)}")
            c, h, w = shapes.pop()
            if vision_encoder_name:
                self.image_trunk = TimmImageEncoder(vision_encoder_name, pretrained_vision_encoder, freeze_vision_encoder)
            else:
                self.image_trunk = DefaultImageEncoder(c, image_encoder_hidden_dim)
            with torch.no_grad():
                fc, fh, fw = self.image_trunk(torch.zeros(1, c, h, w)).shape[1:]
            self.image_heads = nn.ModuleDict({
                k.replace(".", "_"): nn.Sequential(
                    SpatialLearnedEmbeddings(fc, fh, fw, image_embedding_pooling_dim), nn.Flatten(),
                    nn.Linear(fc * image_embedding_pooling_dim, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())
                for k in self.image_keys})
            total += latent_dim * len(self.image_keys)
        self.project = nn.Sequential(nn.Linear(total, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())
        self.out_dim = latent_dim

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        parts = [self.state_encoders[k.replace(".", "_")](obs[k]) for k in self.state_keys]
        if self.image_keys:
            imgs = torch.cat([obs[k] for k in self.image_keys], 0)
            feats = self.image_trunk(imgs).chunk(len(self.image_keys), 0)
            parts += [self.image_heads[k.replace(".", "_")](f) for k, f in zip(self.image_keys, feats)]
        return self.project(torch.cat(parts, -1))


class TanhGaussianActor(nn.Module):
    """Tanh-squashed diagonal Gaussian policy (SAC appendix C): ``a = tanh(u)``, ``u ~ N(mu(s), std(s))``.

    ``log std`` is the raw head output clamped to ``[log std_min, log std_max]`` (so a near-zero initial head gives
    std ≈ 1, a broad initial exploration). The log-probability includes the tanh
    change of variables, ``log pi(a|s) = log N(u) - sum_i log(1 - tanh(u_i)^2)`` computed stably as
    ``2 (log 2 - u - softplus(-2u))``. The output layers are initialised uniformly in ``[-init_final, init_final]``.
    """

    def __init__(self, in_dim: int, action_dim: int, network_kwargs: Mapping[str, Any], std_min: float = 1e-5,
                 std_max: float = 10.0, init_final: float | None = 0.05) -> None:
        super().__init__()
        self.trunk = MLP(in_dim, **dict(network_kwargs))
        self.mean = nn.Linear(self.trunk.out_dim, action_dim)
        self.log_std = nn.Linear(self.trunk.out_dim, action_dim)
        if init_final is not None:
            for layer in (self.mean, self.log_std):
                nn.init.uniform_(layer.weight, -init_final, init_final)
                nn.init.uniform_(layer.bias, -init_final, init_final)
        self.log_std_min, self.log_std_max = math.log(std_min), math.log(std_max)

    def forward(self, feat: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(action (B, A) in [-1, 1], log_prob (B,), tanh(mean) (B, A))``; with ``deterministic`` the
        action is ``tanh(mean)``."""
        h = self.trunk(feat)
        mu = self.mean(h)
        log_std = self.log_std(h).clamp(self.log_std_min, self.log_std_max)
        std = log_std.exp()
        u = mu if deterministic else mu + std * torch.randn_like(mu)
        log_prob = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2.0) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob, torch.tanh(mu)


class CriticEnsemble(nn.Module):
    """``num_critics`` independent Q-networks ``Q_i(s, a) = head_i(MLP_i([feat, a]))``; output ``(N, B)``."""

    def __init__(self, in_dim: int, action_dim: int, num_critics: int, network_kwargs: Mapping[str, Any],
                 init_final: float | None = None) -> None:
        super().__init__()
        if num_critics < 1:
            raise ValueError(f"num_critics must be >= 1, got {num_critics}")
        self.trunks = nn.ModuleList(MLP(in_dim + action_dim, **dict(network_kwargs)) for _ in range(num_critics))
        self.heads = nn.ModuleList(nn.Linear(t.out_dim, 1) for t in self.trunks)
        if init_final is not None:
            for head in self.heads:
                nn.init.uniform_(head.weight, -init_final, init_final)
                nn.init.uniform_(head.bias, -init_final, init_final)

    def forward(self, feat: Tensor, action: Tensor) -> Tensor:
        x = torch.cat([feat, action], -1)
        return torch.stack([h(t(x)).squeeze(-1) for t, h in zip(self.trunks, self.heads)], 0)


class DiscreteCritic(nn.Module):
    """Q-values of a discrete action (HIL-SERL's grasp critic, lerobot's ``DiscreteCritic``):
    ``Q(s, .) = head(MLP(feat))``, one output per discrete action.

    Args:
        in_dim: width of the encoded observation ``feat``.
        num_discrete_actions: number of discrete actions (e.g. 3: close / stay / open).
        network_kwargs: :class:`MLP` arguments (``hidden_dims``, ``activate_final``, ``layer_norm``, ...).
        init_final: output layer initialised uniformly in ``[-init_final, init_final]``; None = PyTorch's default.

    Raises:
        ValueError: ``num_discrete_actions < 2``.
    """

    def __init__(self, in_dim: int, num_discrete_actions: int, network_kwargs: Mapping[str, Any],
                 init_final: float | None = None) -> None:
        super().__init__()
        if int(num_discrete_actions) < 2:
            raise ValueError(f"num_discrete_actions must be >= 2, got {num_discrete_actions}")
        self.num_discrete_actions = int(num_discrete_actions)
        self.trunk = MLP(in_dim, **dict(network_kwargs))
        self.head = nn.Linear(self.trunk.out_dim, self.num_discrete_actions)
        if init_final is not None:
            nn.init.uniform_(self.head.weight, -init_final, init_final)
            nn.init.uniform_(self.head.bias, -init_final, init_final)

    def forward(self, feat: Tensor) -> Tensor:
        """``(B, in_dim)`` encoded observations -> ``(B, num_discrete_actions)`` Q-values."""
        return self.head(self.trunk(feat))


def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target`` for every parameter (in place, no grad); buffers copied."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.mul_(1.0 - tau).add_(s, alpha=tau)
        for t, s in zip(target.buffers(), source.buffers()):
            t.copy_(s)
