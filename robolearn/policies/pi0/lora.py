"""LoRA fine-tuning of π0 / π0.5 through ``peft`` (Hu et al. 2021).

``apply_lora`` injects LoRA adapters in place (``peft.inject_adapter_in_model``), so parameter names stay ours
plus ``.base_layer`` / ``.lora_A.default`` / ``.lora_B.default``; every other parameter is frozen except the
small action/state/time projections (``modules_to_save``), which are trained fully.

Default targets: the attention (``q/k/v/o_proj``) and MLP (``gate/up/down_proj``) linears of both Gemma towers
(PaliGemma's language model and the action expert); the SigLIP vision tower is left frozen.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

DEFAULT_TARGET_MODULES = (r".*(language_model|gemma_expert\.model)\.layers\.\d+\."
                          r"(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)")
DEFAULT_MODULES_TO_SAVE = ("state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in",
                           "action_time_mlp_out", "time_mlp_in", "time_mlp_out")
PEFT_KEYS = {"r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save"}


def lora_enabled(peft_cfg: Mapping[str, Any] | None) -> bool:
    """LoRA is on when ``peft_cfg["r"] > 0``."""
    return bool(peft_cfg) and int(peft_cfg.get("r") or 0) > 0


def apply_lora(model: nn.Module, peft_cfg: Mapping[str, Any]) -> int:
    """Inject LoRA adapters into ``model`` (a :class:`~robolearn.policies.pi0.model.Pi0Model`) and freeze the rest.

    Args:
        peft_cfg: ``{r, lora_alpha, lora_dropout, target_modules (regex or list of names; None = default),
            modules_to_save (top-level submodule names trained fully; None = default)}``.
    Returns:
        The number of trainable parameters.
    Raises:
        ValueError: unknown key in ``peft_cfg``, or no module matched ``target_modules``.
    """
    from peft import LoraConfig, inject_adapter_in_model

    unknown = set(peft_cfg) - PEFT_KEYS
    if unknown:
        raise ValueError(f"policy.peft: unknown key(s) {sorted(unknown)}; expected {sorted(PEFT_KEYS)}")
    targets = peft_cfg.get("target_modules") or DEFAULT_TARGET_MODULES
    if not isinstance(targets, str):
        targets = list(targets)
    config = LoraConfig(r=int(peft_cfg["r"]), lora_alpha=int(peft_cfg.get("lora_alpha") or peft_cfg["r"]),
                        lora_dropout=float(peft_cfg.get("lora_dropout") or 0.0), target_modules=targets,
                        bias="none")
    try:
        inject_adapter_in_model(config, model)
    except ValueError as e:
        raise ValueError(f"policy.peft.target_modules={targets!r} matched no module of the π0 model: {e}") from None
    keep = tuple(peft_cfg.get("modules_to_save") or DEFAULT_MODULES_TO_SAVE)
    trainable = 0
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name or name.split(".")[0] in keep
        trainable += p.numel() if p.requires_grad else 0
    return trainable
