"""Input preparation of π0 / π0.5: image resizing with padding, vector padding, π0.5 state prompts, tokenization.

Facts followed (openpi / lerobot ``pi0``/``pi05`` processors):

- images are resized to ``image_resolution`` keeping their aspect ratio, centred and padded with black, then
  mapped from ``[0, 1]`` to ``[-1, 1]`` (SigLIP's input range);
- π0's prompt is the task with a trailing newline; π0.5's is ``"Task: {task}, State: {bins};\\nAction: "`` where
  ``task`` is stripped with ``_`` and newlines replaced by spaces, and ``bins`` are the normalized state (padded
  to ``max_state_dim``) discretized into 256 bins over ``[-1, 1]`` (``np.digitize(x, linspace(-1, 1, 257)[:-1]) - 1``,
  so values below -1 give -1 and values >= 1 - 2/256 give 255, as lerobot);
- prompts are tokenized padded on the right to ``tokenizer_max_length`` and truncated.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

STATE_BINS = 256


def resize_with_pad(images: Tensor, height: int, width: int, pad_value: float = 0.0) -> Tensor:
    """Resize ``(B, C, H, W)`` images to fit ``height x width`` keeping the aspect ratio (bilinear), then pad
    symmetrically (extra pixel at the bottom/right) with ``pad_value``. Returns ``(B, C, height, width)``."""
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if (h, w) == (height, width):
        return images
    ratio = max(h / height, w / width)
    new_h, new_w = max(1, round(h / ratio)), max(1, round(w / ratio))
    resized = F.interpolate(images.float(), size=(new_h, new_w), mode="bilinear", align_corners=False)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return F.pad(resized, (left, width - new_w - left, top, height - new_h - top), value=pad_value)


def pad_vector(x: Tensor, dim: int, name: str = "vector") -> Tensor:
    """Zero-pad the last axis of ``x`` to ``dim``. Raises ``ValueError`` if it is already wider."""
    if x.shape[-1] > dim:
        raise ValueError(f"{name} has {x.shape[-1]} dims, more than the model's maximum {dim}")
    return F.pad(x, (0, dim - x.shape[-1]))


def discretize_state(state: Tensor, bins: int = STATE_BINS) -> Tensor:
    """Bin indices of a normalized state: ``digitize(x, linspace(-1, 1, bins + 1)[:-1]) - 1``.

    ``(..., D)`` float -> ``(..., D)`` long, in ``[-1, bins - 1]`` (-1 only for values below -1).
    """
    edges = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64)[:-1]
    return torch.bucketize(state.detach().double().cpu(), edges, right=True) - 1


def clean_task(task: str) -> str:
    """Task text as π0.5 writes it in the prompt (stripped, ``_`` and newlines to spaces)."""
    return task.strip().replace("_", " ").replace("\n", " ")


def pi05_prompt(task: str, state_bins: Sequence[int]) -> str:
    """``"Task: {clean task}, State: {b0 b1 ...};\\nAction: "``."""
    return f"Task: {clean_task(task)}, State: {' '.join(str(int(b)) for b in state_bins)};\nAction: "


def pi0_prompt(task: str) -> str:
    """π0's prompt: the task with a trailing newline (added only if missing)."""
    return task if task.endswith("\n") else task + "\n"


def task_list(batch: dict[str, Any], batch_size: int) -> list[str]:
    """``batch["task"]`` as a list of ``batch_size`` strings (a single string is repeated).

    Raises:
        KeyError: no ``task`` in the batch (π0 needs a language instruction).
        ValueError: a list of the wrong length.
    """
    if "task" not in batch:
        raise KeyError("π0/π0.5 need the language instruction under 'task' (str or list of str) in the batch")
    task = batch["task"]
    if isinstance(task, str):
        return [task] * batch_size
    task = [str(t) for t in task]
    if len(task) != batch_size:
        raise ValueError(f"'task' has {len(task)} entries for a batch of {batch_size}")
    return task


def tokenize(tokenizer, prompts: list[str], max_length: int, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Tokenize ``prompts`` right-padded/truncated to ``max_length``.

    Returns:
        ``(tokens (B, max_length) long, mask (B, max_length) bool)``.
    """
    enc = tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt",
                    padding_side="right")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device).bool()
