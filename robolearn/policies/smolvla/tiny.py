"""Tiny random SmolVLM folders and word-level tokenizers, written locally (no download).

For tests, CPU smoke runs and benchmarks: ``write_tiny_smolvlm(folder)`` saves a random SmolVLM built from a
config (``save_pretrained``) plus a tokenizer, so that ``SmolVLAPolicy(vlm_model_name=folder,
load_vlm_weights=True)`` exercises the real ``from_pretrained`` path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Words of the tiny tokenizer (lower-cased; anything else maps to [UNK]).
DEFAULT_WORDS = ("push", "the", "t", "block", "pick", "place", "cube", "to", "target", "a", "on", "of", "and", "move",
                 "left", "right", "up", "down", "grasp", "open", "close", "red", "blue", "green", "box", "-", ".", ",")


def write_word_tokenizer(folder: str | Path, vocab_size: int, words: tuple[str, ...] = DEFAULT_WORDS) -> Path:
    """Save a word-level ``PreTrainedTokenizerFast`` (``[PAD]`` = 0, ``[UNK]`` = 1, then ``words``) into ``folder``.

    Raises:
        ValueError: ``vocab_size`` too small for the words.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1}
    for w in words:
        vocab.setdefault(w, len(vocab))
    if len(vocab) > vocab_size:
        raise ValueError(f"{len(vocab)} tokens do not fit in vocab_size={vocab_size}")
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(folder)
    return folder


def write_tiny_smolvlm(folder: str | Path, seed: int = 0, **config_kwargs: Any) -> Path:
    """Save a random tiny SmolVLM (``configs.tiny_smolvlm_config(**config_kwargs)``) and a word tokenizer."""
    import torch
    from transformers import SmolVLMForConditionalGeneration

    from robolearn.policies.smolvla.configs import make_smolvlm_config, tiny_smolvlm_config

    values = tiny_smolvlm_config(**config_kwargs)
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(make_smolvlm_config(values))
    folder = Path(folder)
    model.save_pretrained(folder)
    write_word_tokenizer(folder, values["text_config"]["vocab_size"])
    return folder
