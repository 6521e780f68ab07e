"""Causal GPT over observation/action-query tokens (minGPT-style, as used by BeT and VQ-BeT).

Module names follow lerobot's VQ-BeT ``GPT`` (``transformer.{wte, wpe, h.N.{ln_1, attn.c_attn, attn.c_proj,
ln_2, mlp.0, mlp.2}, ln_f}``, ``lm_head``); ``h.N.attn.bias`` is the causal mask buffer
``(1, 1, block_size, block_size)``, kept for checkpoint compatibility.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention ``(B, T, C) -> (B, T, C)``."""

    def __init__(self, hidden_dim: int, n_head: int, block_size: int, dropout: float):
        super().__init__()
        if hidden_dim % n_head:
            raise ValueError(f"gpt_hidden_dim ({hidden_dim}) must be divisible by gpt_n_head ({n_head})")
        self.n_head, self.hidden_dim = n_head, hidden_dim
        self.c_attn = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.c_proj = nn.Linear(hidden_dim, hidden_dim)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        mask = torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size)
        self.register_buffer("bias", mask)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.hidden_dim, dim=2)
        heads = lambda z: z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))`` (GELU, 4x width)."""

    def __init__(self, hidden_dim: int, n_head: int, block_size: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim)
        self.attn = CausalSelfAttention(hidden_dim, n_head, block_size, dropout)
        self.ln_2 = nn.LayerNorm(hidden_dim)
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, 4 * hidden_dim), nn.GELU(), nn.Linear(4 * hidden_dim, hidden_dim),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Token embeddings ``(B, T, input_dim) -> (B, T, output_dim)`` through a causal transformer.

    ``T <= block_size``. Linear/Embedding weights are initialised N(0, 0.02^2) and the residual projections
    ``c_proj`` N(0, (0.02 / sqrt(2 * n_layer))^2) (GPT-2).

    Raises:
        ValueError: the sequence is longer than ``block_size``.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden_dim: int, n_layer: int, n_head: int, block_size: int,
                 dropout: float):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Linear(input_dim, hidden_dim),
            wpe=nn.Embedding(block_size, hidden_dim),
            drop=nn.Dropout(dropout),
            h=nn.ModuleList([Block(hidden_dim, n_head, block_size, dropout) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(hidden_dim),
        ))
        self.lm_head = nn.Linear(hidden_dim, output_dim, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        t = tokens.shape[1]
        if t > self.block_size:
            raise ValueError(f"GPT input has {t} tokens, more than gpt_block_size={self.block_size}")
        pos = torch.arange(t, device=tokens.device).unsqueeze(0)
        x = self.transformer.drop(self.transformer.wte(tokens) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """``(decay, no_decay)``: Linear weights decay; biases, LayerNorm and Embedding weights do not."""
        decay, no_decay = [], []
        for module in self.modules():
            for name, p in module.named_parameters(recurse=False):
                (decay if name == "weight" and isinstance(module, nn.Linear) else no_decay).append(p)
        return decay, no_decay
