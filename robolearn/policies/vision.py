"""Vision building blocks shared by the policies: timm ResNet trunks, frozen batch norm, spatial softmax, crops.

The ResNets come from ``timm``, whose ResNet module names (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ...) are torchvision's, so lerobot state dicts map onto them by name.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

# lerobot/torchvision weight names accepted as aliases of timm pretrained tags.
_TORCHVISION_WEIGHT_ALIASES = {
    "ResNet18_Weights.IMAGENET1K_V1": "resnet18.tv_in1k",
    "ResNet34_Weights.IMAGENET1K_V1": "resnet34.tv_in1k",
    "ResNet50_Weights.IMAGENET1K_V1": "resnet50.tv_in1k",
    "ResNet50_Weights.IMAGENET1K_V2": "resnet50.tv2_in1k",
}


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms, all stored as buffers (DETR/ACT's backbone norm).

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` over ``(B, C, H, W)``. There are no
    trainable parameters and no ``num_batches_tracked`` (a loaded one is ignored), matching torchvision's
    ``FrozenBatchNorm2d`` state-dict layout.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, **_: object):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight.reshape(1, -1, 1, 1) * (self.running_var.reshape(1, -1, 1, 1) + self.eps).rsqrt()
        shift = self.bias.reshape(1, -1, 1, 1) - self.running_mean.reshape(1, -1, 1, 1) * scale
        return x * scale + shift


class ChannelsLastInference:
    """Runs a convolutional module in inference with a cached channels-last copy of its 4-D weights.

    On the CPU, a ResNet with frozen or eval-mode batch norm runs its forward about 2x faster at batch 1 (10-20 % at
    batch 4-16) when weights and input are channels-last (NHWC): PyTorch's small-batch convolution path and oneDNN
    both avoid their NCHW reorders. The training forward/backward is not faster that way, so the module's own
    parameters keep their layout (optimizer state, checkpoints and ``safetensors`` files are unchanged); this object
    holds an NHWC copy, rebuilt whenever a parameter or buffer changed (new storage or in-place update: the key is each
    tensor's ``data_ptr`` and version counter). Outputs equal the plain forward up to float rounding (about 1e-7
    relative). A fused optimizer step on the CPU updates weights without bumping their version counters: the owner
    must call :meth:`clear` when weights may have changed that way (the ACT model does on every ``train()``/``eval()``
    switch, which Lightning makes around validation and at the end of fitting).

    Call ``runner(module, x)`` with ``x`` ``(B, C, H, W)``; it returns ``module(x)`` (channels-last memory format).
    Use it only under ``torch.no_grad``/``inference_mode`` (the copy is detached).
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._tensors: dict[str, Tensor] = {}

    def __call__(self, module: nn.Module, x: Tensor) -> Tensor:
        from torch.func import functional_call

        named = dict(module.named_parameters())
        named.update(module.named_buffers())
        key = tuple((name, t.data_ptr(), t._version, t.dtype, t.device) for name, t in named.items())
        if key != self._key:
            self._tensors = {name: t.detach().contiguous(memory_format=torch.channels_last) if t.dim() == 4
                             else t.detach() for name, t in named.items()}
            self._key = key
        return functional_call(module, self._tensors, (x.contiguous(memory_format=torch.channels_last),))

    def clear(self) -> None:
        """Drop the copy (the next call rebuilds it). Needed after an in-place update that leaves version counters
        alone, e.g. a fused optimizer step on the CPU (``torch.optim.AdamW(fused=True)``)."""
        self._key, self._tensors = None, {}

    def __getstate__(self) -> dict:  # the copy is a cache: deepcopy/pickle start without it
        return {"_key": None, "_tensors": {}}


def _group_norm(num_channels: int, **_: object) -> nn.GroupNorm:
    """GroupNorm with 16 channels per group, the Diffusion Policy replacement for BatchNorm."""
    return nn.GroupNorm(num_groups=max(1, num_channels // 16), num_channels=num_channels)


def _frozen_bn(num_channels: int, **_: object) -> FrozenBatchNorm2d:
    return FrozenBatchNorm2d(num_channels)


def resolve_timm_name(vision_backbone: str, pretrained_backbone_weights: str | None) -> tuple[str, bool]:
    """Return ``(timm model name, pretrained)``.

    ``pretrained_backbone_weights`` may be ``None`` (random init), a timm pretrained tag (``"tv_in1k"``), a
    full timm name (``"resnet18.a1_in1k"``) or a torchvision/lerobot name (``"ResNet18_Weights.IMAGENET1K_V1"``).
    Downloading weights needs network access (or the timm cache).
    """
    if pretrained_backbone_weights is None:
        return vision_backbone, False
    name = _TORCHVISION_WEIGHT_ALIASES.get(pretrained_backbone_weights, pretrained_backbone_weights)
    if "." not in name:
        name = f"{vision_backbone}.{name}"
    return name, True


def make_resnet(
    vision_backbone: str = "resnet18",
    pretrained_backbone_weights: str | None = None,
    norm: str = "batch",
    replace_final_stride_with_dilation: bool = False,
) -> nn.Module:
    """A timm ResNet without pooling and classifier: ``(B, 3, H, W) -> (B, C_out, H/32, W/32)``.

    Args:
        vision_backbone: a timm ResNet name (``resnet18``, ``resnet34``, ``resnet50``, ...).
        pretrained_backbone_weights: see :func:`resolve_timm_name`.
        norm: ``"batch"`` (``nn.BatchNorm2d``), ``"frozen"`` (:class:`FrozenBatchNorm2d`) or ``"group"``
            (``GroupNorm(C // 16, C)``).
        replace_final_stride_with_dilation: dilate ``layer4`` instead of striding (output stride 16).

    Raises:
        ValueError: unknown ``norm``, or ``norm="group"`` with pretrained weights (the BatchNorm statistics
            of the weights would be thrown away).
    """
    import timm

    name, pretrained = resolve_timm_name(vision_backbone, pretrained_backbone_weights)
    norm_layers: dict[str, Callable | type] = {"batch": nn.BatchNorm2d, "frozen": _frozen_bn, "group": _group_norm}
    if norm not in norm_layers:
        raise ValueError(f"norm must be one of {sorted(norm_layers)}, got {norm!r}")
    if norm == "group" and pretrained:
        raise ValueError("GroupNorm cannot replace BatchNorm in a pretrained backbone; set use_group_norm=False")
    kwargs: dict = {"num_classes": 0, "global_pool": ""}
    if norm != "batch":
        kwargs["norm_layer"] = norm_layers[norm]
    if replace_final_stride_with_dilation:
        kwargs["output_stride"] = 16
    return timm.create_model(name, pretrained=pretrained, **kwargs)


def resnet_trunk(model: nn.Module) -> nn.Sequential:
    """``nn.Sequential(conv1, bn1, act1, maxpool, layer1..layer4)`` of a timm ResNet (lerobot's
    ``children()[:-2]`` layout: indices 0, 1, 4, 5, 6, 7 hold weights)."""
    names = ["conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.Sequential(*[getattr(model, n) for n in names])


class SpatialSoftmax(nn.Module):
    """Spatial soft-argmax keypoints (Levine et al. 2016, "End-to-End Training of Deep Visuomotor Policies").

    A 1x1 conv (``nets``) maps ``(B, C, H, W)`` features to ``K`` heat maps; a softmax over the ``H*W`` cells
    of each gives an expected ``(x, y)`` position in ``[-1, 1]^2``. Output ``(B, K, 2)``.

    Args:
        input_shape: ``(C, H, W)`` of the feature map.
        num_kp: number of keypoints ``K``; ``None`` keeps ``C`` maps and has no conv.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_kp: int | None = None):
        super().__init__()
        c, h, w = input_shape
        if num_kp is not None:
            self.nets = nn.Conv2d(c, num_kp, kernel_size=1)
            self.out_channels = num_kp
        else:
            self.nets = None
            self.out_channels = c
        ys = torch.linspace(-1.0, 1.0, h)
        xs = torch.linspace(-1.0, 1.0, w)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        # (H*W, 2) with columns (x, y), row-major over (h, w)
        self.register_buffer("pos_grid", torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))

    def forward(self, features: Tensor) -> Tensor:
        if self.nets is not None:
            features = self.nets(features)
        b, k = features.shape[:2]
        attention = torch.softmax(features.reshape(b * k, -1), dim=-1)
        return (attention @ self.pos_grid).reshape(b, k, 2)


def center_crop(images: Tensor, crop_shape: tuple[int, int]) -> Tensor:
    """Center crop ``(..., H, W) -> (..., h, w)`` (torchvision's rounding: top = round((H - h) / 2))."""
    h, w = crop_shape
    H, W = images.shape[-2:]
    top = int(round((H - h) / 2.0))
    left = int(round((W - w) / 2.0))
    return images[..., top : top + h, left : left + w]


def random_crop(images: Tensor, crop_shape: tuple[int, int]) -> Tensor:
    """Independent random crop per image: ``(N, C, H, W) -> (N, C, h, w)``."""
    h, w = crop_shape
    n, _, H, W = images.shape
    tops = torch.randint(0, H - h + 1, (n,)).tolist()
    lefts = torch.randint(0, W - w + 1, (n,)).tolist()
    return torch.stack([img[:, t : t + h, l : l + w] for img, t, l in zip(images, tops, lefts)])


class RgbEncoder(nn.Module):
    """Image -> feature vector: optional crop, ResNet trunk, spatial softmax keypoints, Linear + ReLU (Diffusion
    Policy's observation encoder, Chi et al. 2023; VQ-BeT uses the same one).

    ``(N, 3, H, W) -> (N, 2 * num_keypoints)``. In training mode the crop is random (per image) when
    ``crop_is_random``; in eval mode it is a center crop. ``replace_final_stride_with_dilation`` dilates the
    backbone's last stage (output stride 16 instead of 32: twice the feature cells per side for the keypoints).

    Raises:
        ValueError: ``crop_shape`` larger than the image.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        crop_shape: tuple[int, int] | None,
        crop_is_random: bool,
        vision_backbone: str,
        pretrained_backbone_weights: str | None,
        use_group_norm: bool,
        num_keypoints: int,
        replace_final_stride_with_dilation: bool = False,
    ):
        super().__init__()
        c, h, w = image_shape
        if crop_shape is not None:
            crop_shape = (int(crop_shape[0]), int(crop_shape[1]))
            if crop_shape[0] > h or crop_shape[1] > w:
                raise ValueError(f"crop_shape {crop_shape} is larger than the image (H, W) = {(h, w)}; "
                                 "lower crop_shape or set it to None")
        self.crop_shape, self.crop_is_random = crop_shape, crop_is_random
        resnet = make_resnet(vision_backbone, pretrained_backbone_weights, norm="group" if use_group_norm else "batch",
                             replace_final_stride_with_dilation=replace_final_stride_with_dilation)
        self.backbone = resnet_trunk(resnet)
        in_hw = crop_shape or (h, w)
        with torch.no_grad():
            fmap = self.backbone(torch.zeros(1, c, *in_hw))
        self.feature_map_shape = tuple(fmap.shape[1:])
        self.pool = SpatialSoftmax(self.feature_map_shape, num_kp=num_keypoints)
        self.feature_dim = num_keypoints * 2
        self.out = nn.Linear(self.feature_dim, self.feature_dim)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        if self.crop_shape is not None:
            x = random_crop(x, self.crop_shape) if (self.training and self.crop_is_random) else center_crop(x, self.crop_shape)
        x = self.pool(self.backbone(x)).flatten(1)
        return self.relu(self.out(x))
