"""Seeded image augmentation for training: lerobot's random subset of colour jitters, plus geometric options.

:class:`ImageAugment` is what ``conf/augment/<name>.yaml`` instantiates. Each call draws a plan (which transforms,
with which parameters) from a ``torch.Generator`` and applies it with ``torchvision.transforms.v2.functional``:

- ``brightness``, ``contrast``, ``saturation``, ``sharpness``: a factor uniform in ``range`` (1 = unchanged), as
  ``v2.ColorJitter`` / lerobot's ``SharpnessJitter``;
- ``hue``: a shift uniform in ``range`` (within [-0.5, 0.5]; 0 = unchanged), as ``v2.ColorJitter(hue=...)``;
- ``affine``: rotation uniform in ``degrees``, translation by whole pixels up to ``translate`` (fractions of width,
  height), scale uniform in ``scale``; nearest-neighbour, out-of-image pixels 0 (``v2.RandomAffine``);
- ``shift``: DrQ's / Diffusion Policy's random shift: the frame padded by ``pad`` pixels (edge pixels repeated) and
  cropped back to its size at a random offset, i.e. content moved by whole pixels ``dy, dx`` in ``[-pad, pad]``;
- ``resized_crop``: ``v2.RandomResizedCrop``'s crop (area fraction in ``scale``, aspect ratio in ``ratio``) resized
  back to the frame's size (bilinear, antialiased).

Like lerobot's ``ImageTransforms``, each call applies ``min(max_num_transforms, n)`` of the ``n`` transforms with
``weight > 0``, drawn without replacement with probabilities proportional to their weights, in the order they are
configured (or a random order with ``random_order``). A transform with ``always: true`` is applied on every call and
is not part of the drawn subset (e.g. a shift on every frame plus some colour jitters).

Frames are ``(..., C, H, W)`` tensors, float in [0, 1] or uint8 (kept); every leading index (the ``T`` frames of a
window ``(T, C, H, W)``) gets the same parameters, as lerobot does. Output has the input's shape and dtype; float
values stay in [0, 1].

Reproducibility: :func:`sample_generator` derives a generator from ``(seed, epoch, index, camera)`` only, so the
pixels a sample gets do not depend on the global RNG, the number of DataLoader workers or which worker loads it
(:mod:`robolearn.datamodules.augmented` applies it to training items only).

This module depends on torch and torchvision only; the DataModules and the preview tool
(:mod:`robolearn.tools.augment_preview`) import it.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Mapping, Sequence

import numpy as np
import torch

__all__ = ["ImageAugment", "TRANSFORMS", "augment_item", "sample_generator"]

# kind -> {parameter: default}; ``weight`` (>= 0, default 1) and ``always`` (default false) are common to all.
TRANSFORMS: dict[str, dict[str, Any]] = {
    "brightness": {"range": (0.8, 1.2)},
    "contrast": {"range": (0.8, 1.2)},
    "saturation": {"range": (0.5, 1.5)},
    "hue": {"range": (-0.05, 0.05)},
    "sharpness": {"range": (0.5, 1.5)},
    "affine": {"degrees": (-5.0, 5.0), "translate": (0.05, 0.05), "scale": (1.0, 1.0)},
    "shift": {"pad": 4},
    "resized_crop": {"scale": (0.8, 1.0), "ratio": (3 / 4, 4 / 3)},
}
_COMMON = {"weight": 1.0, "always": False, "type": None}
_FACTOR_KINDS = ("brightness", "contrast", "saturation", "sharpness")
_MASK64 = (1 << 64) - 1


def sample_generator(seed: int, epoch: int, index: int, key: str = "") -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``(seed, epoch, index, key)`` alone (``numpy.random.SeedSequence``
    mixing; ``key``, e.g. the camera name, enters through its CRC-32, which is stable across processes)."""
    entropy = [int(seed) & _MASK64, int(epoch) & _MASK64, int(index) & _MASK64, zlib.crc32(key.encode())]
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


def _pair(spec: Mapping[str, Any], name: str, param: str, lo: float | None = None, hi: float | None = None,
          ordered: bool = True, positive: bool = False) -> tuple[float, float]:
    value = spec[param]
    where = f"augment.transforms.{name}.{param}"
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a pair of numbers [low, high], got {value!r}") from None
    if any(math.isnan(v) or math.isinf(v) for v in (a, b)):
        raise ValueError(f"{where} must be finite, got {value!r}")
    if ordered and a > b:
        raise ValueError(f"{where} must have low <= high, got {value!r}")
    if positive and min(a, b) <= 0:
        raise ValueError(f"{where} must be > 0, got {value!r}")
    for bound, ok in ((lo, lambda v: v >= lo), (hi, lambda v: v <= hi)):
        if bound is not None and not (ok(a) and ok(b)):
            raise ValueError(f"{where} must lie in [{lo if lo is not None else '-inf'}, "
                             f"{hi if hi is not None else 'inf'}], got {value!r}")
    return a, b


def _check_transform(name: str, spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate one ``transforms`` entry; returns it complete (defaults filled in, pairs as float tuples)."""
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"augment.transforms.{name} must be a mapping of parameters, got {spec!r}")
    kind = spec.get("type") or name
    if kind not in TRANSFORMS:
        raise ValueError(f"augment.transforms.{name}: unknown transform {kind!r} (set `type` to one of "
                         f"{sorted(TRANSFORMS)})")
    allowed = {**_COMMON, **TRANSFORMS[kind]}
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"augment.transforms.{name}: unknown parameter(s) {unknown} for {kind!r}; "
                         f"it takes {sorted(allowed)}")
    out = {**allowed, **dict(spec), "type": kind}
    weight = out["weight"]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 or math.isinf(weight):
        raise ValueError(f"augment.transforms.{name}.weight must be a finite number >= 0, got {weight!r}")
    out["weight"] = float(weight)
    if not isinstance(out["always"], bool):
        raise ValueError(f"augment.transforms.{name}.always must be true or false, got {out['always']!r}")
    if kind in _FACTOR_KINDS:
        out["range"] = _pair(out, name, "range", lo=0.0)
    elif kind == "hue":
        out["range"] = _pair(out, name, "range", lo=-0.5, hi=0.5)
    elif kind == "affine":
        out["degrees"] = _pair(out, name, "degrees", lo=-180.0, hi=180.0)
        out["translate"] = _pair(out, name, "translate", lo=0.0, hi=1.0, ordered=False)
        out["scale"] = _pair(out, name, "scale", positive=True)
    elif kind == "shift":
        pad = out["pad"]
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f"augment.transforms.{name}.pad must be an integer >= 0 (pixels), got {pad!r}")
    elif kind == "resized_crop":
        out["scale"] = _pair(out, name, "scale", lo=0.0, hi=1.0, positive=True)
        out["ratio"] = _pair(out, name, "ratio", positive=True)
    return out


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in ``[lo, hi]`` (inclusive)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


class ImageAugment:
    """Random image augmentation with lerobot's subset semantics (module docstring), reproducible from a generator.

    Args:
        transforms: ``{name: {weight, always, <parameters>}}``; ``name`` is the transform kind (a key of
            :data:`TRANSFORMS`) unless the entry sets ``type``. Missing parameters take the defaults of
            :data:`TRANSFORMS`; ``weight: 0`` turns a transform off. None = lerobot's defaults (every kind except
            ``shift`` and ``resized_crop``, weight 1).
        max_num_transforms: how many of the weighted transforms each call applies (>= 1; fewer when fewer are on).
        random_order: apply the chosen transforms in a random order instead of the configured one.

    Raises:
        ValueError: a bad value, naming its key and the value: ``max_num_transforms`` < 1, an unknown transform
            or parameter, a negative or non-finite ``weight``, a range with low > high or outside its bounds
            (factors >= 0, hue within [-0.5, 0.5], degrees within [-180, 180], translate within [0, 1], scales
            > 0, crop area fraction within (0, 1]), a ``pad`` that is not an integer >= 0.
    """

    def __init__(self, transforms: Mapping[str, Mapping[str, Any] | None] | None = None, max_num_transforms: int = 3,
                 random_order: bool = False) -> None:
        if isinstance(max_num_transforms, bool) or not isinstance(max_num_transforms, int) or max_num_transforms < 1:
            raise ValueError(f"augment.max_num_transforms must be an integer >= 1, got {max_num_transforms!r}")
        if transforms is None:
            transforms = {k: {"weight": 0.0 if k in ("shift", "resized_crop") else 1.0} for k in TRANSFORMS}
        if not isinstance(transforms, Mapping):
            raise ValueError(f"augment.transforms must be a mapping {{name: parameters}}, got {transforms!r}")
        self.transforms = {str(k): _check_transform(str(k), v) for k, v in transforms.items()}
        self.max_num_transforms = int(max_num_transforms)
        self.random_order = bool(random_order)
        names = list(self.transforms)
        self._always = [i for i, n in enumerate(names) if self.transforms[n]["always"]
                        and self.transforms[n]["weight"] > 0]
        self._pool = [i for i, n in enumerate(names) if not self.transforms[n]["always"]
                      and self.transforms[n]["weight"] > 0]
        self._weights = torch.tensor([self.transforms[names[i]]["weight"] for i in self._pool], dtype=torch.float64)
        self._names = names

    @property
    def active(self) -> bool:
        """False when no transform can ever be applied (every weight 0)."""
        return bool(self._always or self._pool)

    def __repr__(self) -> str:
        on = {n: {k: v for k, v in t.items() if k != "type" or v != n} for n, t in self.transforms.items()
              if t["weight"] > 0}
        return (f"ImageAugment(max_num_transforms={self.max_num_transforms}, random_order={self.random_order}, "
                f"transforms={on})")

    # ------------------------------------------------------------------ plan
    def sample(self, generator: torch.Generator | None, size: tuple[int, int]) -> list[tuple[str, dict[str, Any]]]:
        """Draw one plan: ``[(name, params), ...]`` in application order, for frames of ``size = (H, W)``.

        ``params`` per kind: ``{"factor"}`` (brightness, contrast, saturation, sharpness), ``{"hue"}``,
        ``{"angle", "translate": [tx, ty], "scale"}`` (affine), ``{"dy", "dx"}`` (shift: content moves by
        ``(-dy, -dx)``), ``{"top", "left", "height", "width"}`` (resized_crop). None uses torch's global RNG.
        """
        g = generator if generator is not None else torch.default_generator
        chosen = list(self._always)
        n = min(self.max_num_transforms, len(self._pool))
        if n:
            picks = torch.multinomial(self._weights, n, replacement=False, generator=g).tolist()
            chosen += [self._pool[i] for i in picks]
        chosen.sort()
        if self.random_order and len(chosen) > 1:
            chosen = [chosen[i] for i in torch.randperm(len(chosen), generator=g).tolist()]
        return [(self._names[i], self._params(self._names[i], g, size)) for i in chosen]

    def _params(self, name: str, g: torch.Generator, size: tuple[int, int]) -> dict[str, Any]:
        spec = self.transforms[name]
        kind = spec["type"]
        h, w = size
        if kind in _FACTOR_KINDS:
            return {"factor": _uniform(g, *spec["range"])}
        if kind == "hue":
            return {"hue": _uniform(g, *spec["range"])}
        if kind == "affine":
            angle = _uniform(g, *spec["degrees"])
            max_dx, max_dy = spec["translate"][0] * w, spec["translate"][1] * h
            tx, ty = round(_uniform(g, -max_dx, max_dx)), round(_uniform(g, -max_dy, max_dy))
            return {"angle": angle, "translate": [int(tx), int(ty)], "scale": _uniform(g, *spec["scale"])}
        if kind == "shift":
            pad = spec["pad"]
            return {"dy": _randint(g, -pad, pad), "dx": _randint(g, -pad, pad)}
        return self._crop_params(spec, g, h, w)

    @staticmethod
    def _crop_params(spec: Mapping[str, Any], g: torch.Generator, h: int, w: int) -> dict[str, int]:
        """``v2.RandomResizedCrop``'s sampling (10 tries, then the central crop of the closest allowed ratio)."""
        area = h * w
        log_ratio = (math.log(spec["ratio"][0]), math.log(spec["ratio"][1]))
        for _ in range(10):
            target = area * _uniform(g, *spec["scale"])
            ratio = math.exp(_uniform(g, *log_ratio))
            cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return {"top": _randint(g, 0, h - ch), "left": _randint(g, 0, w - cw), "height": ch, "width": cw}
        in_ratio = w / h
        if in_ratio < min(spec["ratio"]):
            cw, ch = w, int(round(w / min(spec["ratio"])))
        elif in_ratio > max(spec["ratio"]):
            ch, cw = h, int(round(h * max(spec["ratio"])))
        else:
            cw, ch = w, h
        return {"top": (h - ch) // 2, "left": (w - cw) // 2, "height": ch, "width": cw}

    # ------------------------------------------------------------------ apply
    def apply(self, frames: torch.Tensor, plan: Sequence[tuple[str, Mapping[str, Any]]]) -> torch.Tensor:
        """Apply a plan from :meth:`sample` to ``frames`` ``(..., C, H, W)`` (same parameters for every leading index).

        Raises:
            ValueError: ``frames`` is not a tensor with at least 3 dims, or not float / uint8.
        """
        from torchvision.transforms.v2 import functional as F

        _check_frames(frames)
        x = frames
        h, w = x.shape[-2:]
        for name, p in plan:
            kind = self.transforms[name]["type"]
            if kind == "brightness":
                x = F.adjust_brightness(x, p["factor"])
            elif kind == "contrast":
                x = F.adjust_contrast(x, p["factor"])
            elif kind == "saturation":
                x = F.adjust_saturation(x, p["factor"])
            elif kind == "sharpness":
                x = F.adjust_sharpness(x, p["factor"])
            elif kind == "hue":
                x = F.adjust_hue(x, p["hue"])
            elif kind == "affine":
                x = F.affine(x, angle=p["angle"], translate=list(p["translate"]), scale=p["scale"], shear=[0.0, 0.0],
                             interpolation=F.InterpolationMode.NEAREST, fill=0)
            elif kind == "shift":
                # pad by `pad` with edge pixels, crop at (pad + dy, pad + dx): an edge-clamped gather
                rows = (torch.arange(h) + p["dy"]).clamp_(0, h - 1)
                cols = (torch.arange(w) + p["dx"]).clamp_(0, w - 1)
                x = x.index_select(-2, rows).index_select(-1, cols)
            else:  # resized_crop
                x = F.resized_crop(x, p["top"], p["left"], p["height"], p["width"], size=[h, w],
                                   interpolation=F.InterpolationMode.BILINEAR, antialias=True)
                if x.is_floating_point():
                    x = x.clamp_(0.0, 1.0)
        return x

    def __call__(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment ``frames`` ``(..., C, H, W)`` with a plan drawn from ``generator`` (None: torch's global RNG, so
        an instance also works as lerobot's ``image_transforms`` callable). Shape and dtype are kept.

        Raises:
            ValueError: as :meth:`apply`.
        """
        _check_frames(frames)
        return self.apply(frames, self.sample(generator, tuple(frames.shape[-2:])))


def _check_frames(frames: Any) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim < 3:
        raise ValueError(f"ImageAugment expects a (..., C, H, W) tensor, got "
                         f"{tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__}")
    if not (frames.is_floating_point() or frames.dtype == torch.uint8):
        raise ValueError(f"ImageAugment expects float (values in [0, 1]) or uint8 frames, got {frames.dtype}")


def augment_item(augment: ImageAugment, item: dict, camera_keys: Sequence[str], seed: int, epoch: int,
                 index: int) -> dict:
    """A shallow copy of one dataset item with its cameras ``camera_keys`` augmented, each camera with its own
    generator :func:`sample_generator` ``(seed, epoch, index, camera)``. Keys the item lacks are skipped; the item
    and its tensors are not modified."""
    item = dict(item)
    for key in camera_keys:
        if key in item:
            item[key] = augment(item[key], sample_generator(seed, epoch, index, key))
    return item
