"""Reduced-precision inference: bfloat16 weights for any policy, and int8 quantization of the VLA policies
(SmolVLA, π0, π0.5) with ``torchao``.

``quantize_policy(policy, mode)`` changes the policy in place, after the weights are loaded:

- ``"none"``: nothing changes (any policy);
- ``"bf16"`` (any policy): the weights of every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` (:func:`bf16_targets`)
  are stored in bfloat16 and each such layer computes in bfloat16 (its input cast on the way in, its output cast
  back to the input's dtype on the way out); norms, embeddings, buffers (normalization statistics), the noise
  schedulers and everything between the layers stay float32. Weight memory of those layers / 2. On CPUs with
  AVX512-BF16/AMX (oneDNN) the layers run about twice as fast; a batch-1 Diffusion Policy spends nearly all its
  time reading the U-Net's weights 100 times per chunk, so halving them halves the chunk time. Unlike
  ``torch.autocast``, which casts float32 weights to bfloat16 at every call (slower than float32 on CPU for
  weight-bound models), the weights are cast once;
- ``"int8_weight_only"``: weights stored int8, one fp scale per output row (torchao ``Int8WeightOnlyConfig``);
  activations stay float. Weight memory of those layers / 4; on CPU each matmul converts the int8 weight back to
  float, so it is not faster there (it is a memory saving);
- ``"int8_dynamic"``: int8 weights as above and activations quantized per token at run time (symmetric, one scale
  per row; torchao ``Int8DynamicActivationInt8WeightConfig``), the matmul in int8 with int32 accumulation
  (``torch._int_mm``: oneDNN on CPU, cuBLAS on CUDA). No calibration data is needed.

What int8 quantizes (:func:`quantize_targets`): every ``nn.Linear`` inside the towers, i.e. SmolVLA's SigLIP vision
encoder, pixel-shuffle connector, kept SmolLM2 decoder layers and action expert; π0/π0.5's SigLIP vision tower,
multi-modal projector, PaliGemma language model and Gemma action expert. What stays in float: the token and
position embeddings, the patch-embedding convolution, every RMSNorm/LayerNorm (π0.5's adaptive RMSNorm ``dense``
layers included, they compute norm scales), the unused ``lm_head`` and the small state/action/time projections
outside the towers (``state_proj``, ``action_in_proj``, ``action_out_proj``, ``action_time_mlp_*``,
``time_mlp_*``), whose errors would go straight into the actions for a negligible saving. LoRA adapter matrices
(``lora_A``/``lora_B``) stay float; their base layers are quantized.

A quantized (or bf16) policy is for inference only: it cannot be trained, and it is not exported (export the float
policy and quantize when loading it, ``load_policy(path, quantize=...)``, i.e. ``policy.quantize=`` in ``eval.py``
and the policy server).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
from torch import nn

INT8_MODES = ("int8_weight_only", "int8_dynamic")
QUANTIZE_MODES = ("none", "bf16", *INT8_MODES)
# Layers the bf16 mode runs in bfloat16.
BF16_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
# Library recorded with a quantized policy (policy.quantization).
LIBRARY = "torchao"


def check_mode(mode: str | None) -> str:
    """``mode`` normalized (``None`` -> ``"none"``).

    Raises:
        ValueError: ``mode`` is not one of :data:`QUANTIZE_MODES` (the message lists them).
    """
    if mode is None:
        return "none"
    if not isinstance(mode, str) or mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize={mode!r} is not a quantization mode; expected one of {list(QUANTIZE_MODES)}")
    return mode


def tower_paths(policy: nn.Module) -> tuple[str, ...]:
    """Dotted paths (relative to ``policy``) of the transformer towers whose linears are quantized: the policy class's
    ``quantization_towers`` (SmolVLA, π0 and π0.5 declare theirs next to their model).

    Raises:
        ValueError: ``policy`` declares no towers (only the VLAs have towers to quantize).
    """
    towers = tuple(getattr(policy, "quantization_towers", ()) or ())
    if not towers:
        raise ValueError(f"int8 quantization is implemented for the VLA policies (SmolVLAPolicy, Pi0Policy, "
                         f"Pi05Policy: classes with quantization_towers), not {type(policy).__name__}; "
                         "use quantize='none' or 'bf16'")
    return towers


def quantize_targets(policy: nn.Module) -> list[str]:
    """Qualified names (as in ``policy.named_modules()``) of the ``nn.Linear`` layers :func:`quantize_policy`
    quantizes: those inside :func:`tower_paths`, except the adaptive-RMSNorm ``dense`` layers of π0.5's expert and
    LoRA's ``lora_A``/``lora_B`` matrices.

    Raises:
        ValueError: see :func:`tower_paths`.
    """
    from robolearn.policies.pi0.backbone import AdaRMSNorm

    names: list[str] = []
    for path in tower_paths(policy):
        tower = policy.get_submodule(path)
        skip = {id(m.dense) for m in tower.modules() if isinstance(m, AdaRMSNorm)}
        for name, module in tower.named_modules():
            if not isinstance(module, nn.Linear) or id(module) in skip:
                continue
            if ".lora_A." in f".{name}." or ".lora_B." in f".{name}.":
                continue
            names.append(f"{path}.{name}")
    return names


@contextlib.contextmanager
def _quiet_import():
    # torchao registers an Enum with torch's pytree at import, which torch 2.14 logs as a deprecation warning.
    logger = logging.getLogger("torch.utils._pytree")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _torchao_config(mode: str):
    try:
        with _quiet_import():
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
    except ImportError as e:  # pragma: no cover - torchao is a dependency of robolearn
        raise ImportError(f"quantize={mode!r} needs torchao (pip install torchao==0.18.0): {e}") from e
    # set_inductor_config=False: do not change torch.compile's global settings (nothing is compiled here)
    if mode == "int8_weight_only":
        return Int8WeightOnlyConfig(set_inductor_config=False)
    return Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)


def bf16_targets(policy: nn.Module) -> list[str]:
    """Qualified names of the layers the ``"bf16"`` mode casts: every :data:`BF16_LAYERS` module except those inside
    an ``nn.MultiheadAttention`` (it reads its projections' weights directly, not through their ``forward``) and
    those whose weight is shared with another module (tied embeddings), which stay float32."""
    owners: dict[int, int] = {}
    for module in policy.modules():
        for p in module.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    inside_attention = {f"{name}.{sub}" if name else sub for name, m in policy.named_modules()
                        if isinstance(m, nn.MultiheadAttention) for sub, _ in m.named_modules() if sub}
    return [name for name, m in policy.named_modules() if isinstance(m, BF16_LAYERS) and name not in inside_attention
            and owners.get(id(m.weight), 0) == 1]


def _bf16_input(module: nn.Module, args: tuple) -> tuple:
    floats = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
    module._bf16_output_dtype = floats[0].dtype if floats else torch.float32
    return tuple(a.to(torch.bfloat16) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def _bf16_output(module: nn.Module, args: tuple, output: Any) -> Any:
    return output.to(module._bf16_output_dtype) if isinstance(output, torch.Tensor) else output


def _to_bf16(policy: nn.Module) -> dict[str, Any]:
    names = bf16_targets(policy)
    n_params = 0
    for name in names:
        layer = policy.get_submodule(name)
        n_params += layer.weight.numel()
        layer.to(torch.bfloat16)
        layer.register_forward_pre_hook(_bf16_input)
        layer.register_forward_hook(_bf16_output)
    return {"mode": "bf16", "library": f"torch {torch.__version__}", "layers": len(names),
            "linear_params": int(n_params)}


def quantize_policy(policy: nn.Module, mode: str | None) -> nn.Module:
    """Quantize ``policy`` in place for inference (``"bf16"``: the :func:`bf16_targets` layers; int8: the tower
    linears of :func:`quantize_targets`); returns ``policy``.

    Call after the weights are loaded and the policy is on its device (the int8 tensors follow later ``.to()``
    moves). The policy is put in eval mode and its parameters stop requiring gradients. With a mode other than
    ``"none"``, ``policy.quantization`` records ``{"mode", "library", "layers", "linear_params"}`` (the number of
    quantized or bf16 layers and of their weight elements).

    Args:
        policy: a loaded policy; for the int8 modes, a ``SmolVLAPolicy``, ``Pi0Policy`` or ``Pi05Policy`` in float32
            or bfloat16; for ``"bf16"``, any policy in float32.
        mode: one of :data:`QUANTIZE_MODES` (``None`` = ``"none"``); see the module docstring.
    Returns:
        The same object, quantized.
    Raises:
        ValueError: unknown ``mode`` (the valid ones are listed), an int8 mode for a policy without towers to
            quantize, or a policy that is already quantized.
        ImportError: torchao is not installed.
    """
    mode = check_mode(mode)
    if mode == "none":
        return policy
    if getattr(policy, "quantization", None):
        raise ValueError(f"{type(policy).__name__} is already quantized ({policy.quantization['mode']}); "
                         "load the float policy again to change the mode")
    if mode == "bf16":
        policy.eval().requires_grad_(False)
        policy.quantization = _to_bf16(policy)
        return policy
    targets = set(quantize_targets(policy))
    config = _torchao_config(mode)
    from torchao.quantization import quantize_

    policy.eval().requires_grad_(False)
    n_params = sum(policy.get_submodule(n).weight.numel() for n in targets)
    # quantize_ walks the module tree with filter_fn(module, fully qualified name relative to its argument)
    quantize_(policy, config, filter_fn=lambda module, fqn: isinstance(module, nn.Linear) and fqn in targets)
    policy.quantization = {"mode": mode, "library": f"{LIBRARY} {_torchao_version()}", "layers": len(targets),
                           "linear_params": int(n_params)}
    return policy


def _torchao_version() -> str:
    from importlib.metadata import version

    return version("torchao")


def is_quantized(tensor: torch.Tensor) -> bool:
    """True for a torchao quantized tensor (a weight replaced by :func:`quantize_policy`)."""
    return hasattr(tensor, "qdata") and type(tensor).__module__.startswith("torchao")


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes held by ``tensor``: a float tensor's ``numel * element_size``; for a torchao quantized tensor the sum
    over its inner tensors (int8 data, scales, zero points)."""
    if is_quantized(tensor):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, n)) for n in names if isinstance(getattr(tensor, n), torch.Tensor))
    return tensor.numel() * tensor.element_size()


def model_bytes(module: nn.Module) -> dict[str, Any]:
    """Memory of ``module``'s parameters and buffers: ``{"total", "quantized", "float"}`` in bytes (``quantized``:
    the torchao tensors' int8 data plus scales; ``float``: everything else)."""
    quantized = floating = 0
    seen: set[int] = set()
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) in seen:
            continue
        seen.add(id(t))
        if is_quantized(t):
            quantized += tensor_bytes(t)
        else:
            floating += tensor_bytes(t)
    return {"total": quantized + floating, "quantized": quantized, "float": floating}
