"""π0 / π0.5 flow-matching model (Black et al. 2024; Physical Intelligence 2025), a plain ``nn.Module``.

Token layout (openpi): prefix = ``[image tokens of each camera, language tokens]``, one block, bidirectional;
π0 suffix = ``[state token | H action tokens]`` (two blocks: the state token sees the prefix and itself, the
action tokens see everything and each other); π0.5 suffix = ``[H action tokens]`` (its state is in the prompt).
Prefix tokens never attend to the suffix, so the prefix keys/values are computed once per inference and cached
across the Euler steps.

Action tokens: π0 embeds ``x_t`` with ``action_in_proj`` and mixes in the time embedding through
``action_time_mlp_in`` (on ``[action, time]``) -> swish -> ``action_time_mlp_out``; π0.5 embeds ``x_t`` alone and
conditions the expert's adaptive RMSNorms on ``swish(time_mlp_out(swish(time_mlp_in(time))))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robolearn.policies.pi0.backbone import PaliGemmaWithExpert
from robolearn.policies.vla.flow import noisy_actions, sample_beta_time, sinusoidal_time_embedding
from robolearn.policies.vla.masks import make_att_2d_masks
from robolearn.policies.vla.rtc import rtc_euler_integrate


class Pi0Model(nn.Module):
    """π0 (``pi05=False``) or π0.5 (``pi05=True``) flow-matching action model.

    Args:
        paligemma: ``PaliGemmaForConditionalGeneration`` (random or pretrained).
        expert_config: ``GemmaConfig`` of the action expert.
        pi05: π0.5 variant (time through adaRMS, no state token).
        chunk_size: ``H`` actions per chunk.
        max_state_dim, max_action_dim: widths states/actions are zero-padded to (32 in π0).
        num_inference_steps: Euler steps at inference.
        time_beta: ``(alpha, beta, scale, offset)`` of the training-time distribution.
        min_period, max_period: sinusoidal time-embedding periods.
        gradient_checkpointing: recompute transformer layers in backward.
    """

    def __init__(self, paligemma: nn.Module, expert_config, pi05: bool, chunk_size: int, max_state_dim: int,
                 max_action_dim: int, num_inference_steps: int = 10,
                 time_beta: tuple[float, float, float, float] = (1.5, 1.0, 0.999, 0.001),
                 min_period: float = 4e-3, max_period: float = 4.0, gradient_checkpointing: bool = False):
        super().__init__()
        self.pi05 = pi05
        self.chunk_size, self.max_state_dim, self.max_action_dim = chunk_size, max_state_dim, max_action_dim
        self.num_inference_steps = num_inference_steps
        self.time_beta = tuple(float(x) for x in time_beta)
        self.min_period, self.max_period = min_period, max_period
        self.paligemma_with_expert = PaliGemmaWithExpert(paligemma, expert_config, use_adarms=pi05,
                                                         gradient_checkpointing=gradient_checkpointing)
        width = expert_config.hidden_size
        self.expert_width = width
        self.action_in_proj = nn.Linear(max_action_dim, width)
        self.action_out_proj = nn.Linear(width, max_action_dim)
        if pi05:
            self.time_mlp_in = nn.Linear(width, width)
            self.time_mlp_out = nn.Linear(width, width)
        else:
            self.state_proj = nn.Linear(max_state_dim, width)
            self.action_time_mlp_in = nn.Linear(2 * width, width)
            self.action_time_mlp_out = nn.Linear(width, width)

    # ------------------------------------------------------------------ embeddings
    def embed_prefix(self, images: list[Tensor], image_masks: list[Tensor], lang_tokens: Tensor,
                     lang_masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Image and language tokens.

        Args:
            images: per camera ``(B, 3, R, R)`` in ``[-1, 1]``.
            image_masks: per camera ``(B,)`` bool (False for an empty/missing camera).
            lang_tokens, lang_masks: ``(B, T)`` token ids and their validity.
        Returns:
            ``(embeds (B, N, Dp), pad_masks (B, N) bool, block_starts (B, N) long = 0)``.
        """
        pwe = self.paligemma_with_expert
        embs, pads = [], []
        for img, m in zip(images, image_masks):
            e = pwe.embed_image(img)
            embs.append(e)
            pads.append(m[:, None].expand(e.shape[0], e.shape[1]))
        lang = pwe.embed_language(lang_tokens)
        embs.append(lang.to(embs[0].dtype) if embs else lang)
        pads.append(lang_masks.bool())
        emb = torch.cat(embs, dim=1)
        pad = torch.cat(pads, dim=1)
        return emb, pad, torch.zeros_like(pad, dtype=torch.long)

    def embed_suffix(self, state: Tensor | None, x_t: Tensor, time: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """State (π0) and noisy-action tokens.

        Args:
            state: ``(B, max_state_dim)`` normalized, padded (π0; ignored by π0.5).
            x_t: noisy actions ``(B, H, max_action_dim)``; time: ``(B,)``.
        Returns:
            ``(embeds (B, Ls, De), pad_masks (B, Ls), block_starts (B, Ls), adarms_cond (B, De) or None)``.
        """
        b, h, _ = x_t.shape
        dtype = self.action_in_proj.weight.dtype
        t_emb = sinusoidal_time_embedding(time, self.expert_width, self.min_period, self.max_period).to(dtype)
        act = self.action_in_proj(x_t.to(dtype))
        starts = [1] + [0] * (h - 1)
        if self.pi05:
            cond = F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(t_emb))))
            emb = act
        else:
            if state is None:
                raise ValueError("π0 needs observation.state (the state token)")
            cond = None
            st = self.state_proj(state.to(dtype))[:, None]
            at = torch.cat([act, t_emb[:, None].expand(b, h, -1)], dim=-1)
            at = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(at)))
            emb = torch.cat([st, at], dim=1)
            starts = [1] + starts
        pad = torch.ones(b, emb.shape[1], dtype=torch.bool, device=emb.device)
        block = torch.tensor(starts, dtype=torch.long, device=emb.device)[None].expand(b, -1)
        return emb, pad, block, cond

    # ------------------------------------------------------------------ training
    def forward(self, images: list[Tensor], image_masks: list[Tensor], lang_tokens: Tensor, lang_masks: Tensor,
                state: Tensor | None, actions: Tensor, noise: Tensor | None = None,
                time: Tensor | None = None) -> Tensor:
        """Per-element flow-matching loss ``(v(x_t, t) - (noise - actions))^2``, shape ``(B, H, max_action_dim)``.

        ``x_t = t * noise + (1 - t) * actions`` with ``t ~ Beta``
        (:func:`~robolearn.policies.vla.flow.sample_beta_time`) and Gaussian ``noise`` unless given. ``actions`` are
        normalized and padded, ``(B, H, max_action_dim)``.
        """
        b = actions.shape[0]
        if noise is None:
            noise = torch.randn_like(actions)
        if time is None:
            time = sample_beta_time(b, *self.time_beta, device=actions.device)
        x_t, u_t = noisy_actions(actions, noise, time)
        p_emb, p_pad, p_blk = self.embed_prefix(images, image_masks, lang_tokens, lang_masks)
        s_emb, s_pad, s_blk, cond = self.embed_suffix(state, x_t, time)
        pad = torch.cat([p_pad, s_pad], dim=1)
        mask = make_att_2d_masks(pad, torch.cat([p_blk, s_blk], dim=1))
        pos = torch.cumsum(pad.long(), dim=1) - 1
        (_, s_out), _ = self.paligemma_with_expert([p_emb, s_emb.to(p_emb.dtype)], mask, pos, adarms_cond=cond)
        v_t = self.action_out_proj(s_out[:, -self.chunk_size:].to(self.action_out_proj.weight.dtype))
        return F.mse_loss(v_t.float(), u_t.float(), reduction="none")

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def sample_actions(self, images: list[Tensor], image_masks: list[Tensor], lang_tokens: Tensor,
                       lang_masks: Tensor, state: Tensor | None, noise: Tensor | None = None,
                       prev_chunk: Tensor | None = None, inference_delay: int = 0, execution_horizon: int = 10,
                       schedule: str = "exp", max_guidance_weight: float = 5.0) -> Tensor:
        """Denoise a chunk with ``num_inference_steps`` Euler steps from ``t = 1``, reusing the prefix KV cache.

        With ``prev_chunk`` (``(B, L, A)`` normalized, ``L <= H``) the steps are guided toward it by real-time
        chunking (:func:`robolearn.policies.vla.rtc.rtc_euler_integrate`, which documents ``inference_delay``,
        ``execution_horizon``, ``schedule``, ``max_guidance_weight`` and its errors); None: plain sampling.

        Returns:
            ``(B, H, max_action_dim)`` normalized actions.
        """
        b = lang_tokens.shape[0]
        if noise is None:
            noise = torch.randn(b, self.chunk_size, self.max_action_dim, device=lang_tokens.device)
        p_emb, p_pad, p_blk = self.embed_prefix(images, image_masks, lang_tokens, lang_masks)
        p_mask = make_att_2d_masks(p_pad, p_blk)
        p_pos = torch.cumsum(p_pad.long(), dim=1) - 1
        _, cache = self.paligemma_with_expert([p_emb, None], p_mask, p_pos, use_cache=True)
        n_prefix_valid = p_pad.long().sum(dim=1, keepdim=True)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            s_emb, s_pad, s_blk, cond = self.embed_suffix(state, x, t)
            # suffix queries see every valid prefix token, and the suffix blockwise-causally
            full_pad = torch.cat([p_pad, s_pad], dim=1)
            full_blk = torch.cat([p_blk, s_blk], dim=1)
            mask = make_att_2d_masks(full_pad, full_blk)[:, p_pad.shape[1]:]
            pos = n_prefix_valid + torch.cumsum(s_pad.long(), dim=1) - 1
            (_, s_out), _ = self.paligemma_with_expert([None, s_emb.to(p_emb.dtype)], mask, pos,
                                                       past_key_values=cache, adarms_cond=cond)
            return self.action_out_proj(s_out[:, -self.chunk_size:].to(self.action_out_proj.weight.dtype)).float()

        return rtc_euler_integrate(velocity, noise.float(), self.num_inference_steps, prev_chunk, inference_delay,
                                   execution_horizon, schedule, max_guidance_weight)
