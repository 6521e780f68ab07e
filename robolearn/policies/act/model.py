"""Action Chunking Transformer network (Zhao et al. 2023, "Learning Fine-Grained Bimanual Manipulation with
Low-Cost Hardware", https://arxiv.org/abs/2304.13705).

A plain ``nn.Module`` working on normalized tensors. Submodule names follow lerobot's ``ACT`` so that a
lerobot state dict (prefix ``model.``) loads by name: ``backbone``, ``encoder.layers.N``, ``decoder.layers.N``,
``decoder.norm``, ``vae_encoder*``, ``encoder_*_input_proj``, ``encoder_1d_feature_pos_embed``,
``decoder_pos_embed``, ``action_head``. Transformer tensors are sequence-first ``(S, B, D)`` as in DETR.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robolearn.policies.vision import ChannelsLastInference, make_resnet


def sinusoidal_table(num_positions: int, dim: int) -> Tensor:
    """1-D sinusoidal position table ``(num_positions, dim)`` (Vaswani et al. 2017):
    ``angle[p, j] = p / 10000^(2 * (j // 2) / dim)``; even ``j`` take ``sin``, odd ``j`` take ``cos``."""
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class SinusoidalPositionEmbedding2d(nn.Module):
    """DETR's 2-D sine position embedding for a ``(B, C, H, W)`` feature map -> ``(1, dim, H, W)``.

    Half of ``dim`` encodes the row, half the column; coordinates are the 1-based cell index normalized to
    ``(0, 2*pi]``; frequencies ``10000^(2 * (i // 2) / (dim / 2))``, interleaved sin/cos. No parameters.
    """

    def __init__(self, dim: int, temperature: float = 10000.0):
        super().__init__()
        self.half = dim // 2
        self.temperature = temperature
        self.two_pi = 2 * math.pi
        self.eps = 1e-6

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ones = torch.ones(1, h, w, dtype=x.dtype, device=x.device)
        y = ones.cumsum(1)
        xx = ones.cumsum(2)
        y = y / (y[:, -1:, :] + self.eps) * self.two_pi
        xx = xx / (xx[:, :, -1:] + self.eps) * self.two_pi
        i = torch.arange(self.half, dtype=x.dtype, device=x.device)
        freq = self.temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / self.half)
        px = xx[..., None] / freq
        py = y[..., None] / freq
        px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=-1).flatten(3)
        py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=-1).flatten(3)
        return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


def _activation(name: str):
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    if name == "glu":
        return F.glu
    raise ValueError(f"feedforward_activation must be relu, gelu or glu, got {name!r}")


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


class ACTEncoderLayer(nn.Module):
    """Transformer encoder layer with the position embedding added to queries and keys (DETR).

    ``pre_norm`` selects LayerNorm before (True) or after (False, ACT's default) each residual block.
    """

    def __init__(self, dim_model: int, n_heads: int, dim_feedforward: int, dropout: float, activation: str, pre_norm: bool):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim_model, n_heads, dropout=dropout)
        self.linear1 = nn.Linear(dim_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, dim_model)
        self.norm1 = nn.LayerNorm(dim_model)
        self.norm2 = nn.LayerNorm(dim_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = _activation(activation)
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None,
                n_queries: int | None = None) -> Tensor:
        """``x`` ``(S, B, D)`` -> ``(S, B, D)``, or only the first ``n_queries`` output positions ``(n_queries, B, D)``:
        every position still attends to all ``S`` keys, and the rest of the layer is per position, so those rows are
        what the full layer computes for them (up to float rounding)."""
        skip = x if n_queries is None else x[:n_queries]
        if self.pre_norm:
            x = self.norm1(x)
        k = _with_pos(x, pos_embed)
        q = k if n_queries is None else k[:n_queries]
        x = self.self_attn(q, k, value=x, key_padding_mask=key_padding_mask, need_weights=False)[0]
        x = skip + self.dropout1(x)
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        x = skip + self.dropout2(x)
        if not self.pre_norm:
            x = self.norm2(x)
        return x


class ACTEncoder(nn.Module):
    """Stack of :class:`ACTEncoderLayer`; a final LayerNorm only with ``pre_norm``. ``(S, B, D) -> (S, B, D)``."""

    def __init__(self, n_layers: int, dim_model: int, n_heads: int, dim_feedforward: int, dropout: float, activation: str, pre_norm: bool):
        super().__init__()
        self.layers = nn.ModuleList(
            [ACTEncoderLayer(dim_model, n_heads, dim_feedforward, dropout, activation, pre_norm) for _ in range(n_layers)]
        )
        self.norm = nn.LayerNorm(dim_model) if pre_norm else nn.Identity()

    def forward(self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None,
                n_outputs: int | None = None) -> Tensor:
        """``(S, B, D) -> (S, B, D)``; with ``n_outputs`` only the first ``n_outputs`` positions ``(n_outputs, B, D)``,
        the last layer computing just those queries (the VAE encoder needs the class token alone: it skips the last
        layer's queries, feed-forward and norms for the other ``S - 1`` positions)."""
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            x = layer(x, pos_embed=pos_embed, key_padding_mask=key_padding_mask, n_queries=n_outputs if last else None)
        if n_outputs is not None and not self.layers:
            x = x[:n_outputs]
        return self.norm(x)


class ACTDecoderLayer(nn.Module):
    """Transformer decoder layer: self-attention over the action queries, cross-attention to the encoder
    output (keys carry the encoder position embedding), feed-forward."""

    def __init__(self, dim_model: int, n_heads: int, dim_feedforward: int, dropout: float, activation: str, pre_norm: bool):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim_model, n_heads, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(dim_model, n_heads, dropout=dropout)
        self.linear1 = nn.Linear(dim_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, dim_model)
        self.norm1 = nn.LayerNorm(dim_model)
        self.norm2 = nn.LayerNorm(dim_model)
        self.norm3 = nn.LayerNorm(dim_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = _activation(activation)
        self.pre_norm = pre_norm

    def self_attention_block(self, x: Tensor, decoder_pos: Tensor | None) -> Tensor:
        """The residual stream after the self-attention block (normalized by ``norm1`` when post-norm), ``(K, B, D)``.

        It depends on ``x`` and ``decoder_pos`` only, so for a constant ``x`` (ACT's zero decoder input) in eval mode it
        is a constant (see :meth:`ACT.decoder_first_self_attention`)."""
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = _with_pos(x, decoder_pos)
        x = self.self_attn(q, k, value=x, need_weights=False)[0]
        x = skip + self.dropout1(x)
        return x if self.pre_norm else self.norm1(x)

    def forward(self, x: Tensor, memory: Tensor, decoder_pos: Tensor | None, memory_pos: Tensor | None,
                after_self_attention: Tensor | None = None) -> Tensor:
        """``x`` ``(K, B, D)`` -> ``(K, B, D)``; ``after_self_attention`` replaces
        :meth:`self_attention_block` ``(x, decoder_pos)`` (then ``x`` is not used)."""
        x = self.self_attention_block(x, decoder_pos) if after_self_attention is None else after_self_attention
        skip = x
        if self.pre_norm:
            x = self.norm2(x)
        x = self.multihead_attn(_with_pos(x, decoder_pos), _with_pos(memory, memory_pos), value=memory, need_weights=False)[0]
        x = skip + self.dropout2(x)
        if self.pre_norm:
            skip = x
            x = self.norm3(x)
        else:
            x = self.norm2(x)
            skip = x
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        x = skip + self.dropout3(x)
        if not self.pre_norm:
            x = self.norm3(x)
        return x


class ACTDecoder(nn.Module):
    """Stack of :class:`ACTDecoderLayer` followed by a LayerNorm (``norm``)."""

    def __init__(self, n_layers: int, dim_model: int, n_heads: int, dim_feedforward: int, dropout: float, activation: str, pre_norm: bool):
        super().__init__()
        self.layers = nn.ModuleList(
            [ACTDecoderLayer(dim_model, n_heads, dim_feedforward, dropout, activation, pre_norm) for _ in range(n_layers)]
        )
        self.norm = nn.LayerNorm(dim_model)

    def forward(self, x: Tensor, memory: Tensor, decoder_pos: Tensor | None = None, memory_pos: Tensor | None = None,
                first_after_self_attention: Tensor | None = None) -> Tensor:
        """``x`` ``(K, B, D)``, ``memory`` ``(S, B, D)`` -> ``(K, B, D)``; ``first_after_self_attention`` is the first
        layer's precomputed :meth:`ACTDecoderLayer.self_attention_block` output."""
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, decoder_pos, memory_pos, first_after_self_attention if i == 0 else None)
        return self.norm(x)


class ACT(nn.Module):
    """ACT: a CVAE whose decoder is a transformer over [latent, state, env state, image-patch] tokens that
    outputs a chunk of ``chunk_size`` actions.

    All sizes are required keyword arguments: their defaults live once, in :class:`ACTPolicy`.

    Args:
        state_dim: robot state size (``observation.state``), or ``None``.
        env_state_dim: environment state size (``observation.environment_state``), or ``None``.
        num_cameras: number of camera inputs (all share the backbone and the same size).
        action_dim: action size ``A``.
        Others: see :class:`robolearn.policies.act.ACTPolicy`.

    Raises:
        ValueError: neither a camera nor an environment state is given.
    """

    def __init__(
        self,
        *,
        state_dim: int | None,
        env_state_dim: int | None,
        num_cameras: int,
        action_dim: int,
        chunk_size: int,
        vision_backbone: str,
        pretrained_backbone_weights: str | None,
        replace_final_stride_with_dilation: bool,
        pre_norm: bool,
        dim_model: int,
        n_heads: int,
        dim_feedforward: int,
        feedforward_activation: str,
        n_encoder_layers: int,
        n_decoder_layers: int,
        use_vae: bool,
        latent_dim: int,
        n_vae_encoder_layers: int,
        dropout: float,
    ):
        super().__init__()
        if num_cameras == 0 and env_state_dim is None:
            raise ValueError("ACT needs at least one camera or 'observation.environment_state' among its inputs")
        self.state_dim, self.env_state_dim, self.num_cameras = state_dim, env_state_dim, num_cameras
        self.chunk_size, self.use_vae, self.latent_dim = chunk_size, use_vae, latent_dim
        layer_args = (dim_model, n_heads, dim_feedforward, dropout, feedforward_activation, pre_norm)

        if use_vae:
            self.vae_encoder = ACTEncoder(n_vae_encoder_layers, *layer_args)
            self.vae_encoder_cls_embed = nn.Embedding(1, dim_model)
            if state_dim is not None:
                self.vae_encoder_robot_state_input_proj = nn.Linear(state_dim, dim_model)
            self.vae_encoder_action_input_proj = nn.Linear(action_dim, dim_model)
            self.vae_encoder_latent_output_proj = nn.Linear(dim_model, 2 * latent_dim)
            n_vae_tokens = 1 + (state_dim is not None) + chunk_size
            self.register_buffer("vae_encoder_pos_enc", sinusoidal_table(n_vae_tokens, dim_model).unsqueeze(0))

        if num_cameras > 0:
            self.backbone = make_resnet(
                vision_backbone, pretrained_backbone_weights, norm="frozen",
                replace_final_stride_with_dilation=replace_final_stride_with_dilation,
            )
            self._backbone_nhwc = ChannelsLastInference()
        self.encoder = ACTEncoder(n_encoder_layers, *layer_args)
        self.decoder = ACTDecoder(n_decoder_layers, *layer_args)

        if state_dim is not None:
            self.encoder_robot_state_input_proj = nn.Linear(state_dim, dim_model)
        if env_state_dim is not None:
            self.encoder_env_state_input_proj = nn.Linear(env_state_dim, dim_model)
        self.encoder_latent_input_proj = nn.Linear(latent_dim, dim_model)
        if num_cameras > 0:
            self.encoder_img_feat_input_proj = nn.Conv2d(self.backbone.num_features, dim_model, kernel_size=1)
        n_1d_tokens = 1 + (state_dim is not None) + (env_state_dim is not None)
        self.encoder_1d_feature_pos_embed = nn.Embedding(n_1d_tokens, dim_model)
        if num_cameras > 0:
            self.encoder_cam_feat_pos_embed = SinusoidalPositionEmbedding2d(dim_model)
        self.decoder_pos_embed = nn.Embedding(chunk_size, dim_model)
        self.action_head = nn.Linear(dim_model, action_dim)

        for module in (self.encoder, self.decoder):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def decoder_first_self_attention(self, batch_size: int, like: Tensor) -> Tensor:
        """The first decoder layer's self-attention block on the zero decoder input, ``(chunk_size, batch_size, D)``.

        In eval mode (no dropout) it is the same for every observation: a function of that block's weights and
        ``decoder_pos_embed`` only. It is computed at batch 1, cached (outside the state dict), expanded to
        ``batch_size``, and recomputed when one of those tensors changed (new storage or in-place update, by data pointer
        and version counter) or ``like``'s dtype/device differs. Call it only in eval mode without autograd.
        """
        layer = self.decoder.layers[0]
        pos = self.decoder_pos_embed.weight
        tensors = [pos, *layer.self_attn.parameters(), *layer.norm1.parameters()]
        key = (like.dtype, like.device, *((t.data_ptr(), t._version) for t in tensors))
        cache = getattr(self, "_first_self_attention_cache", None)
        if cache is None or cache[0] != key:
            zeros = torch.zeros(self.chunk_size, 1, pos.shape[-1], dtype=like.dtype, device=like.device)
            cache = (key, layer.self_attention_block(zeros, pos.unsqueeze(1).to(like.dtype)))
            self._first_self_attention_cache = cache
        return cache[1].expand(-1, batch_size, -1)

    def train(self, mode: bool = True) -> "ACT":
        """Set train/eval mode and drop the inference caches (the backbone's channels-last copy and the first decoder
        self-attention): a fused optimizer step on the CPU changes weights without bumping the version counters the
        caches are keyed by, so every mode switch (Lightning makes one around validation and at the end of fitting,
        ``policy.eval()`` before deployment) starts from the current weights."""
        self.__dict__.pop("_first_self_attention_cache", None)
        if getattr(self, "_backbone_nhwc", None) is not None:
            self._backbone_nhwc.clear()
        return super().train(mode)

    def __getstate__(self) -> dict:  # the decoder cache is not part of the module's state (deepcopy, pickle)
        state = super().__getstate__()
        state.pop("_first_self_attention_cache", None)
        return state

    def encode_latent(self, state: Tensor | None, actions: Tensor, action_is_pad: Tensor | None) -> tuple[Tensor, Tensor]:
        """CVAE posterior ``q(z | state, actions)``: returns ``(mu, log_sigma_x2)``, each ``(B, latent_dim)``.

        ``actions`` ``(B, chunk_size, A)``; ``action_is_pad`` ``(B, chunk_size)`` masks padded actions out of
        the attention.
        """
        b = actions.shape[0]
        tokens = [self.vae_encoder_cls_embed.weight.unsqueeze(0).expand(b, -1, -1)]
        if self.state_dim is not None:
            tokens.append(self.vae_encoder_robot_state_input_proj(state).unsqueeze(1))
        tokens.append(self.vae_encoder_action_input_proj(actions))
        x = torch.cat(tokens, dim=1)  # (B, S, D)
        n_prefix = x.shape[1] - actions.shape[1]
        pad = torch.zeros(b, n_prefix, dtype=torch.bool, device=x.device)
        if action_is_pad is None:
            action_is_pad = torch.zeros(b, actions.shape[1], dtype=torch.bool, device=x.device)
        mask = torch.cat([pad, action_is_pad.bool()], dim=1)
        pos = self.vae_encoder_pos_enc.clone().detach().permute(1, 0, 2)  # (S, 1, D)
        out = self.vae_encoder(x.permute(1, 0, 2), pos_embed=pos, key_padding_mask=mask, n_outputs=1)[0]  # cls (B, D)
        params = self.vae_encoder_latent_output_proj(out)
        return params[:, : self.latent_dim], params[:, self.latent_dim :]

    def forward(
        self,
        state: Tensor | None,
        env_state: Tensor | None,
        images: list[Tensor],
        actions: Tensor | None = None,
        action_is_pad: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | tuple[None, None]]:
        """Predict an action chunk.

        Args:
            state: ``(B, state_dim)`` normalized, or ``None``.
            env_state: ``(B, env_state_dim)`` normalized, or ``None``.
            images: one ``(B, 3, H, W)`` normalized tensor per camera.
            actions / action_is_pad: ``(B, chunk_size, A)`` / ``(B, chunk_size)``; used by the VAE encoder
                only in training mode with ``use_vae``; otherwise the latent is zeros.
        Returns:
            ``(actions_hat (B, chunk_size, A), (mu, log_sigma_x2))``; the pair is ``(None, None)`` when the
            VAE encoder did not run.
        """
        ref = state if state is not None else env_state if env_state is not None else images[0]
        b = ref.shape[0]
        if self.use_vae and self.training and actions is not None:
            mu, log_sigma_x2 = self.encode_latent(state, actions, action_is_pad)
            latent = mu + (log_sigma_x2 / 2).exp() * torch.randn_like(mu)
        else:
            mu = log_sigma_x2 = None
            latent = torch.zeros(b, self.latent_dim, dtype=ref.dtype, device=ref.device)

        tokens = [self.encoder_latent_input_proj(latent)]
        pos = list(self.encoder_1d_feature_pos_embed.weight.unsqueeze(1))  # each (1, D)
        if self.state_dim is not None:
            tokens.append(self.encoder_robot_state_input_proj(state))
        if self.env_state_dim is not None:
            tokens.append(self.encoder_env_state_input_proj(env_state))
        tokens_1d = torch.stack(tokens, dim=0)  # (n_1d, B, D)
        pos_1d = torch.stack(pos, dim=0)  # (n_1d, 1, D)
        all_tokens, all_pos = [tokens_1d], [pos_1d]
        for img in images:
            if not torch.is_grad_enabled() and img.device.type == "cpu":  # faster CPU inference, same numerics
                fmap = self._backbone_nhwc(self.backbone, img)
            else:
                fmap = self.backbone(img)
            cam_pos = self.encoder_cam_feat_pos_embed(fmap).to(dtype=fmap.dtype)  # (1, D, h, w)
            feat = self.encoder_img_feat_input_proj(fmap)  # (B, D, h, w)
            all_tokens.append(feat.flatten(2).permute(2, 0, 1))  # (h*w, B, D)
            all_pos.append(cam_pos.flatten(2).permute(2, 0, 1))  # (h*w, 1, D)
        enc_in = torch.cat(all_tokens, dim=0)
        enc_pos = torch.cat(all_pos, dim=0)
        memory = self.encoder(enc_in, pos_embed=enc_pos)
        dec_in = torch.zeros(self.chunk_size, b, memory.shape[-1], dtype=memory.dtype, device=memory.device)
        first = self.decoder_first_self_attention(b, memory) if not (self.training or torch.is_grad_enabled()) else None
        dec_out = self.decoder(dec_in, memory, decoder_pos=self.decoder_pos_embed.weight.unsqueeze(1), memory_pos=enc_pos,
                               first_after_self_attention=first)
        actions_hat = self.action_head(dec_out.transpose(0, 1))
        return actions_hat, (mu, log_sigma_x2)
