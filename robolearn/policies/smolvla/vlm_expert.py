"""SmolVLM backbone + action expert with interleaved cross-/self-attention (Shukor et al. 2025, SmolVLA, Sec. 3).

The VLM is a ``transformers`` SmolVLM (SigLIP-style vision encoder, pixel-shuffle connector, Llama decoder) of
which only the first ``num_vlm_layers`` decoder layers are kept. The action expert is a Llama decoder of the same
depth and head layout but width ``hidden * expert_width_multiplier`` (no token embedding). The prefix (images,
language, state) runs through the VLM layers; the suffix (noisy action tokens) through the expert layers:

- **self-attention layers** (``layer_idx % self_attn_every_n_layers == 0``): the expert's queries attend the
  concatenation of the VLM layer's keys/values (prefix) and the expert's own keys/values (suffix), under the
  block mask (causal among the action tokens);
- **cross-attention layers** (the others): the expert's queries attend only the prefix, whose keys/values are the
  VLM layer's (post-RoPE) keys/values projected by the expert's ``k_proj``/``v_proj`` (input width
  ``num_key_value_heads * head_dim`` of the VLM). The expert queries use positions restarting at 0.

Each decoder layer's ``forward`` is replaced (on the instance) by :func:`vlm_layer_forward` /
:func:`expert_layer_forward`, so the layers are still called as modules: FSDP units and activation checkpointing
wrapped around ``LlamaDecoderLayer`` work. (The ``vlm`` object is therefore not usable for text generation.)

The prefix never attends the suffix, so running all prefix layers first (``forward_prefix``, which also returns the
per-layer keys/values used as a cache at inference) and then the suffix (``forward_suffix``) equals lerobot's joint
layer-by-layer forward. Module and parameter names follow lerobot's ``SmolVLMWithExpertModel``
(``vlm.model.{vision_model,connector,text_model}``, ``vlm.lm_head``, ``lm_expert.{layers,norm}``).
"""

from __future__ import annotations

import copy
import types

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from robolearn.policies.smolvla.attention import apply_rope, masked_attention
from robolearn.policies.smolvla.configs import expert_intermediate_size

KVCache = list[tuple[Tensor, Tensor]]


def vlm_layer_forward(layer: nn.Module, h: Tensor, mask: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Forward of a VLM decoder layer (bound as the layer's ``forward``) on the prefix.

    ``h (B, L, hidden)``, ``mask`` bool ``(B, L, L)``, ``positions (B, L)`` -> ``(h', keys, values)`` with keys (after
    RoPE) and values ``(B, L, Hkv, head_dim)``. Pre-norm residual attention + MLP, as the Llama layer.
    """
    attn = layer.self_attn
    b, length, _ = h.shape
    d = attn.head_dim
    x = layer.input_layernorm(h)
    q = apply_rope(attn.q_proj(x).view(b, length, -1, d), positions)
    k = apply_rope(attn.k_proj(x).view(b, length, -1, d), positions)
    v = attn.v_proj(x).view(b, length, -1, d)
    h = h + attn.o_proj(masked_attention(q, k, v, mask))
    h = h + layer.mlp(layer.post_attention_layernorm(h))
    return h, k, v


def expert_layer_forward(layer: nn.Module, h: Tensor, k_p: Tensor, v_p: Tensor, mask_sp: Tensor, mask_ss: Tensor,
                         positions: Tensor) -> Tensor:
    """Forward of an expert decoder layer (bound as the layer's ``forward``) on the suffix.

    ``h (B, Ls, expert_hidden)``; ``k_p, v_p (B, Lp, Hkv, head_dim)`` the paired VLM layer's keys/values;
    ``mask_sp (B, Ls, Lp)``, ``mask_ss (B, Ls, Ls)`` bool; ``positions (B, Ls)`` absolute. A cross-attention layer
    (``layer.is_cross_attention``) attends only the projected prefix keys/values with queries at positions
    restarting from 0; a self-attention layer attends the prefix and the suffix's own keys/values.
    """
    attn = layer.self_attn
    b, length, _ = h.shape
    d = attn.head_dim
    x = layer.input_layernorm(h)
    q = attn.q_proj(x).view(b, length, -1, d)
    if layer.is_cross_attention:
        k = attn.k_proj(k_p.flatten(2).to(x.dtype)).view(b, k_p.shape[1], -1, d)
        v = attn.v_proj(v_p.flatten(2).to(x.dtype)).view(b, v_p.shape[1], -1, d)
        q = apply_rope(q, positions - positions.min(dim=1, keepdim=True).values)
        mask = mask_sp
    else:
        q = apply_rope(q, positions)
        k_s = apply_rope(attn.k_proj(x).view(b, length, -1, d), positions)
        v_s = attn.v_proj(x).view(b, length, -1, d)
        k, v = torch.cat([k_p.to(k_s.dtype), k_s], dim=1), torch.cat([v_p.to(v_s.dtype), v_s], dim=1)
        mask = torch.cat([mask_sp, mask_ss], dim=2)
    h = h + attn.o_proj(masked_attention(q, k, v, mask))
    return h + layer.mlp(layer.post_attention_layernorm(h))


class SmolVLMWithExpert(nn.Module):
    """The two towers and their layer-wise interaction.

    Args:
        vlm_config: a ``transformers.SmolVLMConfig``.
        vlm_model_name: Hub id or folder passed to ``from_pretrained`` when ``load_vlm_weights``.
        load_vlm_weights: load the pretrained VLM weights (else random init from ``vlm_config``).
        num_vlm_layers: decoder layers of the VLM kept (the first ones).
        num_expert_layers: expert depth; ``<= 0`` means ``num_vlm_layers`` (the only other supported value).
        self_attn_every_n_layers: every n-th layer is a self-attention layer, the rest cross-attention
            (``attention_mode="cross_attn"``); with ``attention_mode="self_attn"`` all layers are self-attention.
        expert_width_multiplier: expert width = ``int(vlm hidden * multiplier)``.
        gradient_checkpointing: recompute each layer in the backward pass (less activation memory).
    Raises:
        ValueError: unsupported ``attention_mode`` or ``num_expert_layers``, ``num_vlm_layers`` out of range.
    """

    def __init__(self, vlm_config, vlm_model_name: str, load_vlm_weights: bool, num_vlm_layers: int,
                 num_expert_layers: int, self_attn_every_n_layers: int, expert_width_multiplier: float,
                 attention_mode: str = "cross_attn", gradient_checkpointing: bool = False):
        super().__init__()
        from transformers import AutoModel, AutoModelForImageTextToText

        if attention_mode not in ("cross_attn", "self_attn"):
            raise ValueError(f"attention_mode must be 'cross_attn' or 'self_attn', got {attention_mode!r}")
        text_cfg = vlm_config.text_config
        if not 0 < num_vlm_layers <= text_cfg.num_hidden_layers:
            raise ValueError(f"num_vlm_layers={num_vlm_layers} must be in [1, {text_cfg.num_hidden_layers}] "
                             f"(the VLM's decoder depth)")
        n_expert = num_vlm_layers if num_expert_layers <= 0 else num_expert_layers
        if n_expert != num_vlm_layers:
            raise ValueError(f"num_expert_layers={num_expert_layers}: robolearn's SmolVLA supports only an expert as "
                             f"deep as the kept VLM (-1 or {num_vlm_layers})")
        if load_vlm_weights:
            self.vlm = AutoModelForImageTextToText.from_pretrained(vlm_model_name, dtype=torch.float32)
        else:
            self.vlm = AutoModelForImageTextToText.from_config(vlm_config)
        text = self.vlm.model.text_model
        text.layers = nn.ModuleList(list(text.layers)[:num_vlm_layers])
        text.config.num_hidden_layers = num_vlm_layers

        expert_cfg = copy.deepcopy(text.config)
        expert_cfg.hidden_size = int(text_cfg.hidden_size * expert_width_multiplier)
        expert_cfg.intermediate_size = expert_intermediate_size(expert_cfg.hidden_size)
        expert_cfg.num_hidden_layers = n_expert
        self.lm_expert = AutoModel.from_config(expert_cfg)
        self.lm_expert.embed_tokens = None
        self.expert_hidden_size = expert_cfg.hidden_size
        self.hidden_size = text_cfg.hidden_size
        self.head_dim = text.layers[0].self_attn.head_dim
        self.num_vlm_layers = num_vlm_layers
        self.self_attn_every_n_layers = self_attn_every_n_layers
        self.attention_mode = attention_mode
        self.gradient_checkpointing = gradient_checkpointing
        kv_in = text_cfg.num_key_value_heads * self.head_dim
        kv_out = expert_cfg.num_key_value_heads * self.head_dim
        for i, layer in enumerate(self.lm_expert.layers):
            layer.is_cross_attention = self.is_cross_layer(i)
            if layer.is_cross_attention:
                bias = layer.self_attn.k_proj.bias is not None
                layer.self_attn.k_proj = nn.Linear(kv_in, kv_out, bias=bias)
                layer.self_attn.v_proj = nn.Linear(kv_in, kv_out, bias=bias)
            layer.forward = types.MethodType(expert_layer_forward, layer)
        for layer in text.layers:
            layer.forward = types.MethodType(vlm_layer_forward, layer)

    def is_cross_layer(self, layer_idx: int) -> bool:
        """True when layer ``layer_idx`` is a cross-attention layer of the expert."""
        if self.attention_mode != "cross_attn":
            return False
        n = self.self_attn_every_n_layers
        return not (n > 0 and layer_idx % n == 0)

    # ------------------------------------------------------------------ embeddings
    def embed_image(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> ``(B, N, hidden)`` image tokens (vision encoder + connector)."""
        vm = self.vlm.model.vision_model
        dtype = next(vm.parameters()).dtype
        hidden = vm(pixel_values=images.to(dtype), patch_attention_mask=None).last_hidden_state
        return self.vlm.model.connector(hidden)

    def embed_language(self, tokens: Tensor) -> Tensor:
        """``(B, L)`` token ids -> ``(B, L, hidden)`` (the VLM's input embedding)."""
        return self.vlm.model.text_model.get_input_embeddings()(tokens)

    # ------------------------------------------------------------------ layers
    def _run(self, fn: nn.Module, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward_prefix(self, embs: Tensor, mask: Tensor, positions: Tensor) -> KVCache:
        """Run the kept VLM layers on the prefix.

        Args:
            embs: ``(B, Lp, hidden)``; mask: bool ``(B, Lp, Lp)``; positions: int ``(B, Lp)``.
        Returns:
            Per layer ``(keys, values)``, each ``(B, Lp, Hkv, head_dim)`` (keys after RoPE): what the expert
            attends to. (The prefix's own output is not needed by SmolVLA.)
        """
        cache: KVCache = []
        h = embs
        for layer in self.vlm.model.text_model.layers:
            h, k, v = self._run(layer, h, mask, positions)
            cache.append((k, v))
        return cache

    def forward_suffix(self, embs: Tensor, cache: KVCache, mask_sp: Tensor, mask_ss: Tensor,
                       positions: Tensor) -> Tensor:
        """Run the expert layers on the suffix against the prefix ``cache``.

        Args:
            embs: ``(B, Ls, expert_hidden)``; mask_sp: bool ``(B, Ls, Lp)`` (suffix -> prefix);
            mask_ss: bool ``(B, Ls, Ls)`` (suffix -> suffix, used in self-attention layers);
            positions: int ``(B, Ls)`` absolute positions (continuing after the prefix).
        Returns:
            ``(B, Ls, expert_hidden)`` after the expert's final RMSNorm.
        """
        h = embs
        for layer, (k_p, v_p) in zip(self.lm_expert.layers, cache):
            h = self._run(layer, h, k_p, v_p, mask_sp, mask_ss, positions)
        return self.lm_expert.norm(h)
