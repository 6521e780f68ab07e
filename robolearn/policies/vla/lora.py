"""LoRA fine-tuning through ``peft`` (Hu et al. 2021) and parameter / memory accounting.

``apply_lora`` injects adapters in place with ``peft.inject_adapter_in_model``: our parameter names stay, with
``.base_layer`` / ``.lora_A.default`` / ``.lora_B.default`` inserted in the targeted linears. Every parameter is then
frozen except the adapters and the fully trained ``modules_to_save`` (e.g. state/action projections).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from torch import Tensor, nn

PEFT_KEYS = ("r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save")
DEFAULT_PEFT = {"r": 0, "lora_alpha": None, "lora_dropout": 0.0, "target_modules": None, "modules_to_save": None}


def lora_enabled(peft_cfg: Mapping[str, Any] | None) -> bool:
    """LoRA is on when ``peft_cfg["r"] > 0`` (``r = 0``, the default, disables it)."""
    return bool(peft_cfg) and int(peft_cfg.get("r") or 0) > 0


def apply_lora(model: nn.Module, peft_cfg: Mapping[str, Any], default_targets: str | Iterable[str],
               default_modules_to_save: Iterable[str]) -> int:
    """Inject LoRA adapters into ``model`` and freeze everything else.

    Args:
        peft_cfg: ``{r, lora_alpha (None = peft's default 8), lora_dropout, target_modules (a regex over full
            module names, or a list of name suffixes; None = default_targets), modules_to_save (module-name
            prefixes trained fully; None = default_modules_to_save)}``.
    Returns:
        The number of trainable parameters after injection.
    Raises:
        ValueError: an unknown key in ``peft_cfg``, ``r <= 0``, or ``target_modules`` matching no module.
    """
    from peft import LoraConfig, inject_adapter_in_model

    unknown = sorted(set(peft_cfg) - set(PEFT_KEYS))
    if unknown:
        raise ValueError(f"policy.peft: unknown key(s) {unknown}; expected {list(PEFT_KEYS)}")
    r = int(peft_cfg.get("r") or 0)
    if r <= 0:
        raise ValueError(f"policy.peft.r must be > 0 to apply LoRA, got {r}")
    targets = peft_cfg.get("target_modules") or default_targets
    targets = targets if isinstance(targets, str) else list(targets)
    alpha = peft_cfg.get("lora_alpha")
    config = LoraConfig(r=r, lora_alpha=8 if alpha is None else alpha,
                        lora_dropout=float(peft_cfg.get("lora_dropout") or 0.0), target_modules=targets, bias="none")
    try:
        inject_adapter_in_model(config, model)
    except ValueError as e:
        raise ValueError(f"policy.peft.target_modules={targets!r} matched no module: {e}") from None
    keep = tuple(peft_cfg.get("modules_to_save") or default_modules_to_save)
    trainable = 0
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name or any(name == k or name.startswith(k + ".") for k in keep)
        trainable += p.numel() if p.requires_grad else 0
    return trainable


def merge_lora(model: nn.Module) -> None:
    """Fold every LoRA adapter into its base weight (``W <- W + scale * B A``) and remove the adapters in place.

    After merging, parameter names are the original ones again (no ``base_layer``), so the state dict matches a
    model built without LoRA.
    """
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())


def merged_lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state dict ``model`` would have after :func:`merge_lora`, computed without changing ``model``.

    For every peft ``LoraLayer`` ``<m>``: ``<m>.base_layer.<p>`` becomes ``<m>.<p>``, its ``weight`` gains the active
    adapters' ``scale * B @ A`` (peft's ``get_delta_weight``; nothing is added to a layer peft already merged), and the
    adapter tensors (``<m>.lora_*``) are dropped. Other entries are ``model.state_dict()``'s, in the same order. The
    keys are those of the same model built without LoRA, so it loads strictly into it. Nothing is copied but the
    merged weights (memory: one extra tensor per adapted layer).

    Returns:
        ``{name: tensor}`` (merged weights keep the base weight's dtype and device).
    """
    import torch
    from peft.tuners.lora import LoraLayer

    state = model.state_dict()
    layers = {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}
    if not layers:
        return dict(state)
    renamed: dict[str, str | None] = {}  # state key -> merged key, None = adapter tensor (dropped)
    for name, layer in layers.items():
        prefix = f"{name}." if name else ""
        for key in state:
            if key.startswith(prefix):
                rest = key[len(prefix):]
                renamed[key] = prefix + rest[len("base_layer."):] if rest.startswith("base_layer.") else None
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = renamed.get(key, key)
        if new is not None:
            out[new] = value
    with torch.no_grad():
        for name, layer in layers.items():
            if getattr(layer, "merged", False):
                continue
            adapters = [a for a in layer.active_adapters if a in layer.lora_A or a in layer.lora_embedding_A]
            if not adapters:
                continue
            key = f"{name}.weight" if name else "weight"
            delta = sum(layer.get_delta_weight(a) for a in adapters)
            out[key] = out[key] + delta.to(device=out[key].device, dtype=out[key].dtype)
    return out


def parameter_report(model: nn.Module) -> dict[str, float]:
    """Parameter counts and memory estimates of ``model``.

    Returns ``{total, trainable}`` (counts) and, in bytes: ``weights_fp32`` (4 B/param), ``weights_bf16``
    (2 B/param), ``adam_fp32`` (Adam's two fp32 moments, 8 B per *trainable* param), ``grads_fp32``
    (4 B per trainable param). Activations are not included.
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "weights_fp32": 4 * total, "weights_bf16": 2 * total,
            "adam_fp32": 8 * trainable, "grads_fp32": 4 * trainable}


def format_report(report: Mapping[str, float], name: str = "model") -> str:
    """One human-readable line per quantity of :func:`parameter_report`."""
    gib = 1024 ** 3
    return (f"{name}: {report['total'] / 1e6:.1f}M parameters ({report['trainable'] / 1e6:.2f}M trainable); "
            f"weights {report['weights_fp32'] / gib:.2f} GiB fp32 / {report['weights_bf16'] / gib:.2f} GiB bf16; "
            f"Adam state {report['adam_fp32'] / gib:.2f} GiB + grads {report['grads_fp32'] / gib:.2f} GiB (fp32)")
