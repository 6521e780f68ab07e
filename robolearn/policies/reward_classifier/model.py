"""The success classifier network: a timm image backbone shared by the cameras, optional state encoder, MLP head."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from robolearn.policies.vision import resolve_timm_name


class SuccessClassifierNet(nn.Module):
    """Binary success logit from normalized camera frames and (optionally) state vectors.

    Each camera ``(B, 3, H, W)`` goes through one shared timm backbone with global average pooling
    (``num_classes=0``: ``(B, C)``), then its own ``Linear(C, hidden_dim)``; each state key ``(B, D)`` through
    ``Linear(D, hidden_dim)``. The parts are concatenated and classified by
    ``LayerNorm -> ReLU -> Dropout -> Linear(n * hidden_dim, hidden_dim) -> ReLU -> Dropout -> Linear(hidden_dim, 1)``
    (the shape of lerobot's reward classifier head: per-camera embeddings, concatenation, MLP with dropout).

    Args:
        image_keys: camera keys, in input order.
        state_shapes: ``{state key: D}`` (empty for images only).
        vision_backbone: timm model name (``resnet10t``, ``resnet18``, ``efficientnet_b0``, ...).
        pretrained_backbone_weights: None (random init), a timm pretrained tag or full name (see
            :func:`robolearn.policies.vision.resolve_timm_name`); downloading needs network access or the timm cache.
        freeze_backbone: no gradients into the backbone (kept in eval mode: frozen batch-norm statistics).
        hidden_dim: width of the embeddings and of the head.
        dropout: dropout probability in the head.

    Raises:
        ValueError: neither cameras nor states.
    """

    def __init__(self, image_keys: Sequence[str], state_shapes: Mapping[str, int], vision_backbone: str,
                 pretrained_backbone_weights: str | None, freeze_backbone: bool, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.image_keys = list(image_keys)
        self.state_keys = list(state_shapes)
        if not self.image_keys and not self.state_keys:
            raise ValueError("the success classifier needs at least one camera or state input")
        self.freeze_backbone = bool(freeze_backbone)
        self.backbone: nn.Module | None = None
        if self.image_keys:
            import timm

            name, pretrained = resolve_timm_name(vision_backbone, pretrained_backbone_weights)
            self.backbone = timm.create_model(name, pretrained=pretrained, num_classes=0)
            if self.freeze_backbone:
                self.backbone.requires_grad_(False)
            width = int(self.backbone.num_features)
            self.image_proj = nn.ModuleDict({_safe(k): nn.Linear(width, hidden_dim) for k in self.image_keys})
        self.state_proj = nn.ModuleDict({_safe(k): nn.Linear(int(d), hidden_dim) for k, d in state_shapes.items()})
        n_parts = len(self.image_keys) + len(self.state_keys)
        self.head = nn.Sequential(
            nn.LayerNorm(n_parts * hidden_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(n_parts * hidden_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, 1),
        )

    def train(self, mode: bool = True) -> "SuccessClassifierNet":
        super().train(mode)
        if self.backbone is not None and self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        """Logits ``(B,)`` from normalized inputs ``{camera: (B, 3, H, W), state: (B, D)}``."""
        parts = []
        if self.image_keys:
            images = [obs[k] for k in self.image_keys]
            if len({tuple(x.shape) for x in images}) == 1:  # one backbone call for every camera
                feats = self.backbone(torch.cat(images, 0)).chunk(len(images), 0)
            else:
                feats = [self.backbone(x) for x in images]
            parts += [self.image_proj[_safe(k)](f) for k, f in zip(self.image_keys, feats)]
        parts += [self.state_proj[_safe(k)](obs[k]) for k in self.state_keys]
        return self.head(torch.cat(parts, -1)).squeeze(-1)


def _safe(key: str) -> str:
    """``nn.ModuleDict`` names cannot contain dots."""
    return key.replace(".", "_")
