"""PaliGemma + Gemma action expert with joint, blockwise-causal attention (π0, Black et al. 2024, Sec. 3).

Two transformers of equal depth and head layout run side by side: PaliGemma's language model on the prefix
tokens (images + language) and a smaller Gemma (the "action expert") on the suffix tokens (state + noisy
actions). In every layer each stream computes its own Q/K/V, the keys and values of both streams are
concatenated along the sequence and attention runs once over the joint sequence under a 2-D mask; then each
stream applies its own output projection, MLP and norms. π0.5's expert replaces its RMSNorms by adaptive
RMSNorms conditioned on the flow-matching time (``AdaRMSNorm``) with gated residuals.

The layers are ``transformers`` ``GemmaDecoderLayer`` objects (their weights and names), driven by the joint
forward written here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from robolearn.policies.pi0.configs import check_compatible


class AdaRMSNorm(nn.Module):
    """RMSNorm whose scale, shift and residual gate come from a conditioning vector (π0.5's action expert).

    ``(scale, shift, gate) = dense(cond)``; ``y = x / rms(x) * (1 + scale) + shift``; the caller adds the branch
    output as ``x + gate * branch``. ``dense`` is zero-initialised (as openpi), so an untrained expert layer
    passes its input through unchanged.

    Args:
        dim: feature width ``D``; cond_dim: conditioning width ``C``.
    Shapes: ``x (B, L, D)``, ``cond (B, C)`` -> ``(y (B, L, D), gate (B, 1, D))``.
    """

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.dense = nn.Linear(cond_dim, 3 * dim)
        nn.init.zeros_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)

    def forward(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        scale, shift, gate = self.dense(cond.to(self.dense.weight.dtype)).float()[:, None, :].chunk(3, dim=-1)
        return (normed * (1 + scale) + shift).to(x.dtype), gate.to(x.dtype)


class GemmaExpert(nn.Module):
    """The action expert: a ``transformers`` ``GemmaModel`` without token embedding (inputs are embeddings).

    With ``use_adarms`` its layer norms and final norm are :class:`AdaRMSNorm` conditioned on a ``cond_dim`` vector.
    """

    def __init__(self, config, use_adarms: bool = False, cond_dim: int | None = None):
        super().__init__()
        from transformers import GemmaModel

        self.model = GemmaModel(config)
        self.model.embed_tokens = None
        self.use_adarms = use_adarms
        if use_adarms:
            cond_dim = cond_dim or config.hidden_size
            for layer in self.model.layers:
                layer.input_layernorm = AdaRMSNorm(config.hidden_size, cond_dim, config.rms_norm_eps)
                layer.post_attention_layernorm = AdaRMSNorm(config.hidden_size, cond_dim, config.rms_norm_eps)
            self.model.norm = AdaRMSNorm(config.hidden_size, cond_dim, config.rms_norm_eps)


def _norm(module: nn.Module, x: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor | None]:
    if isinstance(module, AdaRMSNorm):
        if cond is None:
            raise ValueError("the π0.5 action expert needs a time conditioning vector (adarms_cond)")
        return module(x, cond)
    return module(x), None


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class PaliGemmaWithExpert(nn.Module):
    """Joint PaliGemma + action-expert transformer.

    Args:
        paligemma: a ``transformers`` ``PaliGemmaForConditionalGeneration`` (built from a config or loaded with
            ``from_pretrained``).
        expert_config: ``GemmaConfig`` of the action expert (same depth/heads/head width as PaliGemma's LM).
        use_adarms: π0.5 (time-conditioned expert norms).
        gradient_checkpointing: recompute each layer in the backward pass (training only).

    Raises:
        ValueError: the two towers cannot attend jointly (see :func:`check_compatible`).
    """

    def __init__(self, paligemma: nn.Module, expert_config, use_adarms: bool = False,
                 gradient_checkpointing: bool = False):
        super().__init__()
        text_config = paligemma.config.text_config
        check_compatible(text_config, expert_config)
        self.paligemma = paligemma
        self.gemma_expert = GemmaExpert(expert_config, use_adarms=use_adarms)
        self.gradient_checkpointing = gradient_checkpointing
        self.num_heads = text_config.num_attention_heads
        self.num_kv_heads = text_config.num_key_value_heads
        self.head_dim = text_config.head_dim
        rope = getattr(text_config, "rope_parameters", None) or {}
        theta = float(rope.get("rope_theta", getattr(text_config, "rope_theta", 10000.0)))
        inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    # ------------------------------------------------------------------ embeddings
    @property
    def language_model(self) -> nn.Module:
        return self.paligemma.model.language_model

    @property
    def vision_tower(self) -> nn.Module:
        return self.paligemma.model.vision_tower

    def embed_image(self, pixel_values: Tensor) -> Tensor:
        """SigLIP features projected to the LM width: ``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, N_patches, D)``
        (not rescaled: openpi feeds image tokens unscaled and scales only the text embeddings)."""
        dtype = self.paligemma.model.multi_modal_projector.linear.weight.dtype
        feats = self.vision_tower(pixel_values=pixel_values.to(dtype)).last_hidden_state
        return self.paligemma.model.multi_modal_projector(feats)

    def embed_language(self, tokens: Tensor) -> Tensor:
        """Token embeddings times ``sqrt(D)`` (Gemma's input scaling): ``(B, T)`` int -> ``(B, T, D)``."""
        weight = self.language_model.embed_tokens.weight
        return F.embedding(tokens, weight) * math.sqrt(weight.shape[1])

    # ------------------------------------------------------------------ joint forward
    def _rope(self, x: Tensor, position_ids: Tensor) -> Tensor:
        freqs = position_ids.float()[..., None] * self.inv_freq[None, None, :]
        emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, L, hd)
        xf = x.float()
        return (xf * emb.cos() + _rotate_half(xf) * emb.sin()).to(x.dtype)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """``q (B, H, Lq, hd)``, ``k, v (B, Hkv, Lk, hd)``, ``mask (B, Lq, Lk)`` -> ``(B, Lq, H*hd)``.

        A large negative fill (not ``-inf``) keeps fully masked rows (padding queries) finite, as openpi does."""
        rep = self.num_heads // self.num_kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        # scores and softmax in float32 even under bf16/fp16 autocast (the fill value must fit the dtype)
        with torch.autocast(device_type=q.device.type, enabled=False):
            scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * self.head_dim ** -0.5
            scores = scores.masked_fill(~mask[:, None], torch.finfo(scores.dtype).min)
            probs = scores.softmax(dim=-1).to(v.dtype)
        out = torch.matmul(probs, v)  # (B, H, Lq, hd)
        return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)

    def _layer(self, idx: int, hidden: list[Tensor | None], mask: Tensor, position_ids: Tensor,
               past: tuple[Tensor, Tensor] | None, cond: Tensor | None):
        layers = [self.language_model.layers[idx], self.gemma_expert.model.layers[idx]]
        conds = [None, cond]
        qs, ks, vs, lengths, gates = [], [], [], [], []
        for layer, h, c in zip(layers, hidden, conds):
            if h is None:
                lengths.append(0)
                gates.append(None)
                continue
            normed, gate = _norm(layer.input_layernorm, h, c)
            b, n, _ = h.shape
            attn = layer.self_attn
            qs.append(attn.q_proj(normed).view(b, n, self.num_heads, self.head_dim).transpose(1, 2))
            ks.append(attn.k_proj(normed).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2))
            vs.append(attn.v_proj(normed).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2))
            lengths.append(n)
            gates.append(gate)
        dtype = qs[0].dtype
        q = self._rope(torch.cat([t.to(dtype) for t in qs], dim=2), position_ids)
        k = self._rope(torch.cat([t.to(dtype) for t in ks], dim=2), position_ids)
        v = torch.cat([t.to(dtype) for t in vs], dim=2)
        new_kv = (k, v)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        att = self._attend(q, k, v, mask)
        out: list[Tensor | None] = []
        start = 0
        for layer, h, c, n, gate in zip(layers, hidden, conds, lengths, gates):
            if h is None:
                out.append(None)
                continue
            a = layer.self_attn.o_proj(att[:, start:start + n].to(layer.self_attn.o_proj.weight.dtype))
            start += n
            h = h + (a if gate is None else a * gate)
            normed, gate2 = _norm(layer.post_attention_layernorm, h, c)
            m = layer.mlp(normed)
            out.append(h + (m if gate2 is None else m * gate2))
        return out, new_kv

    def forward(self, embeds: list[Tensor | None], attention_mask: Tensor, position_ids: Tensor,
                past_key_values: list[tuple[Tensor, Tensor]] | None = None, adarms_cond: Tensor | None = None,
                use_cache: bool = False) -> tuple[list[Tensor | None], list[tuple[Tensor, Tensor]] | None]:
        """Run both towers jointly.

        Args:
            embeds: ``[prefix (B, Lp, Dp) or None, suffix (B, Ls, De) or None]``.
            attention_mask: ``(B, Lq, Lk)`` bool with ``Lq = Lp + Ls`` (present streams) and ``Lk = Lq`` plus the
                cached length.
            position_ids: ``(B, Lq)`` RoPE positions of the query tokens.
            past_key_values: per layer ``(k, v)`` of earlier tokens (the cached prefix), each ``(B, Hkv, Lc, hd)``.
            adarms_cond: ``(B, De)`` conditioning of the π0.5 expert norms.
            use_cache: also return this call's per-layer ``(k, v)`` (RoPE applied).
        Returns:
            ``([prefix_out or None, suffix_out or None], kv or None)``; outputs are final-normed hidden states.
        """
        if all(e is None for e in embeds):
            raise ValueError("PaliGemmaWithExpert.forward needs a prefix and/or a suffix")
        hidden = list(embeds)
        cache = [] if use_cache else None
        for idx in range(len(self.language_model.layers)):
            past = past_key_values[idx] if past_key_values is not None else None
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden, kv = checkpoint(self._layer, idx, hidden, attention_mask, position_ids, past, adarms_cond,
                                        use_reentrant=False)
            else:
                hidden, kv = self._layer(idx, hidden, attention_mask, position_ids, past, adarms_cond)
            if cache is not None:
                cache.append(kv)
        norms = [self.language_model.norm, self.gemma_expert.model.norm]
        outs = [None if h is None else _norm(norm, h, c)[0] for norm, h, c in zip(norms, hidden, [None, adarms_cond])]
        return outs, cache
