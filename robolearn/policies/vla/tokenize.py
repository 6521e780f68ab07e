"""Tokenization of the batch's ``task`` strings (the language instruction of each item)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor


def task_list(task: Any, batch_size: int) -> list[str]:
    """The ``task`` entry of a batch as ``batch_size`` strings (a single string is repeated).

    Raises:
        KeyError: ``task`` is None (the batch has no language instruction).
        ValueError: a list whose length is not ``batch_size``, or a non-string entry.
    """
    if task is None:
        raise KeyError("the batch has no 'task' (the language instruction); datasets provide it per item, and "
                       "select_action needs observation['task'] = str or list[str]")
    tasks = [task] * batch_size if isinstance(task, str) else list(task)
    if len(tasks) != batch_size:
        raise ValueError(f"'task' has {len(tasks)} strings for a batch of {batch_size}")
    bad = [t for t in tasks if not isinstance(t, str)]
    if bad:
        raise ValueError(f"'task' entries must be strings, got {bad[:3]}")
    return tasks


def tokenize_tasks(tokenizer, tasks: Sequence[str], max_length: int, padding: str = "longest",
                   append_newline: bool = True, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Tokenize instructions with a ``transformers`` tokenizer, right-padded and truncated to ``max_length``.

    Args:
        tokenizer: a ``PreTrainedTokenizer(Fast)`` with a pad token.
        tasks: ``B`` strings. With ``append_newline`` a ``"\\n"`` is appended when missing (lerobot's SmolVLA
            prompt format).
        padding: ``"longest"`` (pad to the longest in the batch, at most ``max_length``) or ``"max_length"``.
    Returns:
        ``(tokens (B, L) int64, mask (B, L) bool)``, ``L <= max_length``.
    Raises:
        ValueError: unknown ``padding``, or a tokenizer without a pad token.
    """
    if padding not in ("longest", "max_length"):
        raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
    if tokenizer.pad_token_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no pad token")
    texts = [t if (not append_newline or t.endswith("\n")) else t + "\n" for t in tasks]
    enc = tokenizer(texts, padding=padding, max_length=max_length, truncation=True, return_tensors="pt",
                    padding_side="right")
    return enc["input_ids"].to(device), enc["attention_mask"].bool().to(device)
