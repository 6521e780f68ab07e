"""``python -m robolearn.policies.pi0.info [--paligemma-variant V] [--action-expert-variant V]``: parameter counts of
the full-size π0 and π0.5 models, built on the ``meta`` device (no memory allocated, no download).

Prints per part (SigLIP vision tower, projector, PaliGemma language model, action expert, action/state/time
heads) and the total; tied weights (PaliGemma's ``lm_head`` = token embedding) are counted once.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from robolearn.policies.pi0.configs import gemma_config, paligemma_config
from robolearn.policies.pi0.model import Pi0Model


def build_meta_model(pi05: bool, paligemma_variant: str = "gemma_2b", action_expert_variant: str = "gemma_300m",
                     image_size: int = 224, chunk_size: int = 50, max_state_dim: int = 32,
                     max_action_dim: int = 32) -> Pi0Model:
    """A :class:`Pi0Model` whose tensors live on the ``meta`` device (shapes only)."""
    from transformers import PaliGemmaForConditionalGeneration

    with torch.device("meta"):
        paligemma = PaliGemmaForConditionalGeneration(paligemma_config(paligemma_variant, image_size))
        return Pi0Model(paligemma, gemma_config(action_expert_variant), pi05=pi05, chunk_size=chunk_size,
                        max_state_dim=max_state_dim, max_action_dim=max_action_dim)


def count(module: nn.Module) -> int:
    """Number of distinct parameters (shared/tied tensors once)."""
    return sum(p.numel() for p in module.parameters())


def parameter_breakdown(model: Pi0Model) -> dict[str, int]:
    """``{part: parameter count}`` and ``total``."""
    pwe = model.paligemma_with_expert
    parts = {
        "vision_tower (SigLIP)": count(pwe.vision_tower),
        "multi_modal_projector": count(pwe.paligemma.model.multi_modal_projector),
        "language_model (Gemma)": count(pwe.language_model),
        "action_expert (Gemma)": count(pwe.gemma_expert),
    }
    parts["heads (action/state/time)"] = count(model) - sum(parts.values())
    parts["total"] = count(model)
    return parts


def main(argv: list[str] | None = None) -> dict[str, dict[str, int]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paligemma-variant", default="gemma_2b")
    parser.add_argument("--action-expert-variant", default="gemma_300m")
    args = parser.parse_args(argv)
    out = {}
    for name, pi05 in (("pi0", False), ("pi05", True)):
        parts = parameter_breakdown(build_meta_model(pi05, args.paligemma_variant, args.action_expert_variant))
        out[name] = parts
        print(f"{name} (paligemma_variant={args.paligemma_variant}, action_expert_variant={args.action_expert_variant})")
        for part, n in parts.items():
            print(f"  {part:28s} {n:>15,d}  ({n / 1e9:.3f} B)")
    return out


if __name__ == "__main__":
    main()
