"""Print SmolVLA's parameter count and memory estimate: ``python -m robolearn.policies.smolvla.info``.

Builds the full-size policy (SmolVLM2-500M architecture from the config values written in
:mod:`~robolearn.policies.smolvla.configs`, first 16 decoder layers, expert width 0.75x) with random weights and no
download, then prints total/trainable parameters and fp32/bf16 weight plus Adam-state bytes. Options:
``--num-vlm-layers N``, ``--lora-r R`` (count with LoRA adapters), ``--train-full`` (``train_expert_only=False``,
``freeze_vision_encoder=False``), ``--json`` (machine-readable output).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported: never try the network

from robolearn.features import FeatureType, PolicyFeature


def full_size_features(state_dim: int = 6, action_dim: int = 6, cameras: int = 1) -> dict[str, PolicyFeature]:
    """Features of a typical single-arm robot (state/action 6-d, 512x512 cameras) for sizing the policy."""
    feats = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, 512, 512)) for i in range(cameras)}
    feats["observation.state"] = PolicyFeature(FeatureType.STATE, (state_dim,))
    feats["action"] = PolicyFeature(FeatureType.ACTION, (action_dim,))
    return feats


def build_full_size(**kwargs: Any):
    """The full-size ``SmolVLAPolicy`` with random weights (offline: the SmolVLM2-500M config is written in code)."""
    from robolearn.policies.smolvla.module import SmolVLAPolicy

    return SmolVLAPolicy(features=full_size_features(), stats=None,
                         normalization_mapping={"VISUAL": "IDENTITY", "STATE": "IDENTITY", "ACTION": "IDENTITY"},
                         **kwargs)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-vlm-layers", type=int, default=16)
    parser.add_argument("--lora-r", type=int, default=0)
    parser.add_argument("--train-full", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from robolearn.policies.vla.lora import DEFAULT_PEFT, format_report, parameter_report

    kwargs: dict[str, Any] = {"num_vlm_layers": args.num_vlm_layers}
    if args.lora_r:
        kwargs["peft"] = {**DEFAULT_PEFT, "r": args.lora_r}
    if args.train_full:
        kwargs.update(train_expert_only=False, freeze_vision_encoder=False)
    policy = build_full_size(**kwargs)
    report = parameter_report(policy)
    parts = {name: sum(p.numel() for p in mod.parameters()) for name, mod in (
        ("vision_encoder", policy.model.vlm_with_expert.vlm.model.vision_model),
        ("connector", policy.model.vlm_with_expert.vlm.model.connector),
        ("text_decoder", policy.model.vlm_with_expert.vlm.model.text_model),
        ("lm_head", policy.model.vlm_with_expert.vlm.lm_head),
        ("action_expert", policy.model.vlm_with_expert.lm_expert))}
    report["parts"] = parts
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report, "SmolVLA (SmolVLM2-500M, random weights)"))
        for name, n in parts.items():
            print(f"  {name}: {n / 1e6:.1f}M")
    return report


if __name__ == "__main__":
    main()
