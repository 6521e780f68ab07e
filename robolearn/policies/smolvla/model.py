"""SmolVLA's flow-matching model (Shukor et al. 2025, "SmolVLA: A Vision-Language-Action Model for Affordable and
Efficient Robotics", https://arxiv.org/abs/2506.01844), a plain ``nn.Module``.

Prefix tokens: for each camera the image tokens (scaled by ``sqrt(hidden)``), the language tokens (scaled by
``sqrt(hidden)``), then one state token ``state_proj(state)``. Image and language tokens form one fully
bidirectional block; the state token starts a new block (it sees the images and language, they do not see it).
Suffix tokens: one per action step, ``mlp_out(silu(mlp_in([action_in_proj(x_t), time_embedding(t)])))``, each
starting its own block (causal among actions; all see the prefix). The expert's output goes through
``action_out_proj`` to the velocity ``v_t``. Training regresses ``v_t`` on ``u_t = noise - actions``
(:mod:`robolearn.policies.vla.flow`); inference integrates from noise with ``num_steps`` Euler steps, computing the
prefix keys/values once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robolearn.policies.smolvla.vlm_expert import KVCache, SmolVLMWithExpert
from robolearn.policies.vla.flow import noisy_actions, sample_beta_time, sinusoidal_time_embedding
from robolearn.policies.vla.masks import make_att_2d_masks
from robolearn.policies.vla.rtc import rtc_euler_integrate


class SmolVLAFlowModel(nn.Module):
    """VLM + action expert + state/action/time projections (lerobot's ``VLAFlowMatching`` names).

    Args:
        vlm_with_expert: the two towers.
        chunk_size: action steps predicted per chunk ``T``.
        max_state_dim, max_action_dim: padded widths of state and action.
        num_steps: Euler steps at inference.
        min_period, max_period: sinusoidal time-embedding periods.
        prefix_length: pad the prefix to this many tokens (``<= 0``: no padding).
    """

    def __init__(self, vlm_with_expert: SmolVLMWithExpert, chunk_size: int, max_state_dim: int, max_action_dim: int,
                 num_steps: int = 10, min_period: float = 4e-3, max_period: float = 4.0, prefix_length: int = -1):
        super().__init__()
        self.vlm_with_expert = vlm_with_expert
        width, expert = vlm_with_expert.hidden_size, vlm_with_expert.expert_hidden_size
        self.state_proj = nn.Linear(max_state_dim, width)
        self.action_in_proj = nn.Linear(max_action_dim, expert)
        self.action_out_proj = nn.Linear(expert, max_action_dim)
        self.action_time_mlp_in = nn.Linear(2 * expert, expert)
        self.action_time_mlp_out = nn.Linear(expert, expert)
        self.chunk_size, self.max_action_dim, self.num_steps = chunk_size, max_action_dim, num_steps
        self.min_period, self.max_period, self.prefix_length = min_period, max_period, prefix_length

    # ------------------------------------------------------------------ token sequences
    def embed_prefix(self, images: list[Tensor], img_masks: list[Tensor], lang_tokens: Tensor, lang_masks: Tensor,
                     state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Prefix embeddings ``(B, Lp, hidden)``, pad mask bool ``(B, Lp)`` and block flags ``(B, Lp)``.

        Args:
            images: per camera ``(B, 3, H, W)`` in [-1, 1]; img_masks: per camera bool ``(B,)`` (False = missing).
            lang_tokens, lang_masks: ``(B, L)``; state: ``(B, max_state_dim)``.
        """
        vwe = self.vlm_with_expert
        embs, pads, atts = [], [], []
        for img, img_mask in zip(images, img_masks):
            emb = vwe.embed_image(img)
            emb = emb * torch.tensor(emb.shape[-1] ** 0.5, dtype=emb.dtype, device=emb.device)
            embs.append(emb)
            pads.append(img_mask[:, None].expand(emb.shape[0], emb.shape[1]))
            atts += [0] * emb.shape[1]
        lang = vwe.embed_language(lang_tokens)
        embs.append(lang * math.sqrt(lang.shape[-1]))
        pads.append(lang_masks)
        atts += [0] * lang.shape[1]
        state_emb = self.state_proj(state)
        state_emb = state_emb[:, None] if state_emb.dim() == 2 else state_emb
        embs.append(state_emb.to(embs[0].dtype))
        pads.append(torch.ones(state_emb.shape[:2], dtype=torch.bool, device=state_emb.device))
        atts += [1] * state_emb.shape[1]
        emb, pad = torch.cat(embs, dim=1), torch.cat(pads, dim=1)
        att = torch.tensor(atts, dtype=torch.bool, device=emb.device)[None].expand(emb.shape[0], -1)
        if self.prefix_length > 0 and emb.shape[1] < self.prefix_length:
            extra = self.prefix_length - emb.shape[1]
            emb = F.pad(emb, (0, 0, 0, extra))
            pad = F.pad(pad, (0, extra), value=False)
            att = F.pad(att, (0, extra), value=False)
        return emb, pad, att

    def embed_suffix(self, x_t: Tensor, time: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Suffix embeddings ``(B, T, expert_hidden)``, pad mask and block flags (all ones: causal) from noisy
        actions ``(B, T, max_action_dim)`` and times ``(B,)``."""
        action_emb = self.action_in_proj(x_t)
        time_emb = sinusoidal_time_embedding(time, action_emb.shape[-1], self.min_period, self.max_period)
        time_emb = time_emb.to(action_emb.dtype)[:, None, :].expand_as(action_emb)
        h = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(torch.cat([action_emb, time_emb], dim=2))))
        b, t = h.shape[:2]
        pad = torch.ones(b, t, dtype=torch.bool, device=h.device)
        return h, pad, torch.ones(b, t, dtype=torch.bool, device=h.device)

    # ------------------------------------------------------------------ passes
    def _prefix(self, images, img_masks, lang_tokens, lang_masks, state) -> tuple[KVCache, Tensor]:
        emb, pad, att = self.embed_prefix(images, img_masks, lang_tokens, lang_masks, state)
        mask = make_att_2d_masks(pad, att)
        positions = torch.cumsum(pad.long(), dim=1) - 1
        return self.vlm_with_expert.forward_prefix(emb, mask, positions), pad

    def _velocity(self, cache: KVCache, prefix_pad: Tensor, x_t: Tensor, time: Tensor) -> Tensor:
        emb, pad, att = self.embed_suffix(x_t, time)
        b, ls = pad.shape
        mask_sp = prefix_pad[:, None, :].expand(b, ls, prefix_pad.shape[1])
        mask_ss = make_att_2d_masks(pad, att)
        positions = prefix_pad.long().sum(dim=1, keepdim=True) + torch.cumsum(pad.long(), dim=1) - 1
        out = self.vlm_with_expert.forward_suffix(emb, cache, mask_sp, mask_ss, positions)
        return self.action_out_proj(out[:, -self.chunk_size:].to(self.action_out_proj.weight.dtype))

    def forward(self, images: list[Tensor], img_masks: list[Tensor], lang_tokens: Tensor, lang_masks: Tensor,
                state: Tensor, actions: Tensor, noise: Tensor | None = None, time: Tensor | None = None) -> Tensor:
        """Per-element flow-matching loss ``(v_t - u_t)^2``, shape ``(B, T, max_action_dim)``.

        ``actions`` ``(B, T, max_action_dim)`` (normalized, padded); ``noise`` (standard normal) and ``time``
        (``Beta(1.5, 1) * 0.999 + 0.001``) are sampled when None.
        """
        if noise is None:
            noise = torch.randn_like(actions)
        if time is None:
            time = sample_beta_time(actions.shape[0], device=actions.device)
        x_t, u_t = noisy_actions(actions, noise, time)
        cache, prefix_pad = self._prefix(images, img_masks, lang_tokens, lang_masks, state)
        v_t = self._velocity(cache, prefix_pad, x_t, time)
        return F.mse_loss(v_t.float(), u_t.float(), reduction="none")

    @torch.no_grad()
    def sample_actions(self, images: list[Tensor], img_masks: list[Tensor], lang_tokens: Tensor, lang_masks: Tensor,
                       state: Tensor, noise: Tensor | None = None, prev_chunk: Tensor | None = None,
                       inference_delay: int = 0, execution_horizon: int = 10, schedule: str = "exp",
                       max_guidance_weight: float = 5.0) -> Tensor:
        """Denoise ``noise`` (``(B, T, max_action_dim)``, standard normal when None) into actions with
        ``num_steps`` Euler steps; the prefix is encoded once. Returns ``(B, T, max_action_dim)`` float32.

        With ``prev_chunk`` (``(B, L, A)`` normalized, ``L <= T``) the steps are guided toward it by real-time
        chunking (:func:`robolearn.policies.vla.rtc.rtc_euler_integrate`, which documents ``inference_delay``,
        ``execution_horizon``, ``schedule``, ``max_guidance_weight`` and its errors); None: plain sampling."""
        b = state.shape[0]
        if noise is None:
            noise = torch.randn(b, self.chunk_size, self.max_action_dim, device=state.device)
        cache, prefix_pad = self._prefix(images, img_masks, lang_tokens, lang_masks, state)
        return rtc_euler_integrate(lambda x, t: self._velocity(cache, prefix_pad, x, t).float(), noise.float(),
                                   self.num_steps, prev_chunk, inference_delay, execution_horizon, schedule,
                                   max_guidance_weight)
