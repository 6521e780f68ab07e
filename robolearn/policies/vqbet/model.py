"""VQ-BeT networks (Lee et al. 2024, "Behavior Generation with Latent Actions", https://arxiv.org/abs/2403.03181).

``VQBeTModel`` turns an observation window into GPT tokens (per step: one token per camera, one state token,
one action-query token; then ``n_action_pred_token - 1`` extra query tokens), runs the causal GPT and feeds the
outputs at the query positions to ``VQBeTHead``, which predicts the residual-VQ codes (primary and secondary)
and per-code offsets. Module names are lerobot's ``VQBeTModel`` (``vqbet.*`` in the policy's state dict).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robolearn.policies.vision import RgbEncoder
from robolearn.policies.vqbet.gpt import GPT
from robolearn.policies.vqbet.vqvae import VqVae, mlp


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """Mean focal loss (Lin et al. 2017) of ``logits`` (N, K) for class indices ``target`` (N,)."""
    logpt = F.log_softmax(logits, dim=-1).gather(-1, target.view(-1, 1)).view(-1)
    return (-((1 - logpt.exp()) ** gamma) * logpt).mean()


class VQBeTHead(nn.Module):
    """Code and offset heads on top of the GPT, plus the action VQ-VAE.

    ``forward(x (N, T, gpt_output_dim))`` returns ``cbet_logits`` (N*T, L, K), ``sampled_centers`` (N*T, L),
    ``decoded_action`` (N*T, chunk, A) and ``predicted_action`` (N, T, chunk*A): codes are drawn with
    ``torch.multinomial(softmax(logits / bet_softmax_temperature))`` (one call over all (N*T, L) rows unless
    ``sequentially_select``), the chosen codes are decoded by the VQ-VAE and the chosen offsets (summed over
    layers) added.
    """

    def __init__(self, gpt_output_dim: int, action_dim: int, action_chunk_size: int, vqvae_n_embed: int,
                 vqvae_embedding_dim: int, vqvae_enc_hidden_dim: int, bet_softmax_temperature: float,
                 sequentially_select: bool, offset_loss_weight: float, primary_code_loss_weight: float,
                 secondary_code_loss_weight: float):
        super().__init__()
        self.chunk, self.action_dim, self.n_embed = action_chunk_size, action_dim, vqvae_n_embed
        self.temperature, self.sequentially_select = bet_softmax_temperature, sequentially_select
        self.offset_loss_weight = offset_loss_weight
        self.primary_code_loss_weight, self.secondary_code_loss_weight = primary_code_loss_weight, secondary_code_loss_weight
        self.vqvae_model = VqVae(action_dim, action_chunk_size, vqvae_n_embed, vqvae_embedding_dim, vqvae_enc_hidden_dim)
        n_layers = self.vqvae_model.num_layers
        if sequentially_select:
            self.map_to_cbet_preds_primary_bin = mlp(gpt_output_dim, [vqvae_n_embed])
            self.map_to_cbet_preds_secondary_bin = mlp(gpt_output_dim + vqvae_n_embed, [vqvae_n_embed])
        else:
            self.map_to_cbet_preds_bin = mlp(gpt_output_dim, [n_layers * vqvae_n_embed])
        self.map_to_cbet_preds_offset = mlp(gpt_output_dim, [n_layers * vqvae_n_embed * action_chunk_size * action_dim])

    def _sample(self, logits: Tensor) -> Tensor:
        probs = torch.softmax(logits / self.temperature, dim=-1)
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), num_samples=1).reshape(probs.shape[:-1])

    def forward(self, x: Tensor, sampled_centers: Tensor | None = None) -> dict[str, Tensor]:
        """See the class docstring; ``sampled_centers`` (N*T, L) replaces the random draw when given."""
        n, t, _ = x.shape
        x = x.reshape(n * t, -1)
        n_layers = self.vqvae_model.num_layers
        offsets = self.map_to_cbet_preds_offset(x).reshape(n * t, n_layers, self.n_embed, self.chunk * self.action_dim)
        if self.sequentially_select:
            primary = self.map_to_cbet_preds_primary_bin(x)
            first = self._sample(primary) if sampled_centers is None else sampled_centers[:, 0]
            secondary = self.map_to_cbet_preds_secondary_bin(torch.cat([x, F.one_hot(first, self.n_embed).to(x.dtype)], dim=1))
            second = self._sample(secondary) if sampled_centers is None else sampled_centers[:, 1]
            logits = torch.stack([primary, secondary], dim=1)
            centers = torch.stack([first, second], dim=1)
        else:
            logits = self.map_to_cbet_preds_bin(x).reshape(n * t, n_layers, self.n_embed)
            centers = self._sample(logits) if sampled_centers is None else sampled_centers
        rows = torch.arange(n * t, device=x.device).unsqueeze(1)
        layers = torch.arange(n_layers, device=x.device).unsqueeze(0)
        chosen_offsets = offsets[rows, layers, centers].sum(dim=1).reshape(n * t, self.chunk, self.action_dim)
        with torch.no_grad():
            latent = self.vqvae_model.get_embeddings_from_code(centers)
            decoded = self.vqvae_model.get_action_from_latent(latent).detach()
        predicted = (decoded + chosen_offsets).reshape(n, t, self.chunk * self.action_dim)
        return {"cbet_logits": logits, "predicted_action": predicted, "sampled_centers": centers,
                "decoded_action": decoded}

    def loss(self, pred: dict[str, Tensor], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Phase-2 loss against target chunks ``(N, T, chunk, A)``.

        ``loss = 5 * focal(primary) + 0.5 * focal(secondary) + offset_loss_weight * L1(target, predicted)``
        (default weights), the codes' labels being the frozen VQ-VAE's codes of the targets. The info dict holds
        lerobot's metrics (``classification_loss``, ``offset_loss``, ``equal_primary_code_rate``, ...).
        """
        target = target.reshape(-1, self.chunk, self.action_dim)
        predicted = pred["predicted_action"].reshape(-1, self.chunk, self.action_dim)
        centers, logits = pred["sampled_centers"], pred["cbet_logits"]
        nt = predicted.shape[0]
        _, bins = self.vqvae_model.get_code(target)
        offset_loss = F.l1_loss(target, predicted)
        cbet_loss = (focal_loss(logits[:, 0], bins[:, 0]) * self.primary_code_loss_weight
                     + focal_loss(logits[:, 1], bins[:, 1]) * self.secondary_code_loss_weight)
        loss = cbet_loss + self.offset_loss_weight * offset_loss
        err = (target - predicted).abs()
        info = {
            "classification_loss": cbet_loss.detach(),
            "offset_loss": offset_loss.detach(),
            "equal_primary_code_rate": (bins[:, 0] == centers[:, 0]).int().sum() / nt,
            "equal_secondary_code_rate": (bins[:, 1] == centers[:, 1]).int().sum() / nt,
            "vq_action_error": (target - pred["decoded_action"]).abs().mean().detach(),
            "offset_action_error": err.mean().detach(),
            "action_error_max": err.max().detach(),
            "action_mse_error": ((target - predicted) ** 2).mean().detach(),
        }
        return loss, info


class VQBeTModel(nn.Module):
    """Observation window -> GPT -> action head.

    Args:
        state_dim: ``observation.state`` size.
        image_shape: ``(C, H, W)`` of the cameras (all share one encoder and shape); None without cameras.
        num_cameras: number of cameras (0: state-only, with ``env_state_dim``).
        action_dim: ``A``.
        n_obs_steps, n_action_pred_token, action_chunk_size: token layout (see module docstring).
        Others: the encoder's (see :class:`~robolearn.policies.vision.RgbEncoder`), the GPT's and the
            head's.
        env_state_dim: ``observation.environment_state`` size, read instead of cameras (one more token per
            step, projected like the state), or None. This state-only variant is robolearn's (for the Diffusion
            Policy paper's PushT keypoint comparison); lerobot's VQ-BeT reads cameras only.

    Raises:
        ValueError: no cameras and no ``env_state_dim``, or more GPT tokens than ``gpt_block_size``.
    """

    def __init__(self, state_dim: int, image_shape: tuple[int, int, int] | None, num_cameras: int, action_dim: int,
                 n_obs_steps: int, n_action_pred_token: int, action_chunk_size: int, vision_backbone: str,
                 pretrained_backbone_weights: str | None, use_group_norm: bool, crop_shape: tuple[int, int] | None,
                 crop_is_random: bool, spatial_softmax_num_keypoints: int, vqvae_n_embed: int,
                 vqvae_embedding_dim: int, vqvae_enc_hidden_dim: int, gpt_block_size: int, gpt_input_dim: int,
                 gpt_output_dim: int, gpt_n_layer: int, gpt_n_head: int, gpt_hidden_dim: int, dropout: float,
                 offset_loss_weight: float, primary_code_loss_weight: float, secondary_code_loss_weight: float,
                 bet_softmax_temperature: float, sequentially_select: bool, env_state_dim: int | None = None):
        super().__init__()
        if num_cameras == 0 and not env_state_dim:
            raise ValueError("VQ-BeT needs cameras or an environment state (env_state_dim)")
        self.n_obs_steps, self.n_action_pred_token, self.num_cameras = n_obs_steps, n_action_pred_token, num_cameras
        self.action_chunk_size = action_chunk_size
        self.per_step = num_cameras + (1 if env_state_dim else 0) + 2  # observation tokens + state + action query
        tokens = n_obs_steps * self.per_step + n_action_pred_token - 1
        if tokens > gpt_block_size:
            raise ValueError(f"VQ-BeT needs {tokens} GPT tokens (n_obs_steps * (cameras + env state + 2) + "
                             f"n_action_pred_token - 1) but gpt_block_size={gpt_block_size}")
        if num_cameras:
            self.rgb_encoder = RgbEncoder(tuple(image_shape), crop_shape, crop_is_random, vision_backbone,
                                          pretrained_backbone_weights, use_group_norm, spatial_softmax_num_keypoints)
        self.action_token = nn.Parameter(torch.randn(1, 1, gpt_input_dim))
        self.state_projector = mlp(state_dim, [gpt_input_dim])
        if num_cameras:
            self.rgb_feature_projector = mlp(self.rgb_encoder.feature_dim, [gpt_input_dim])
        if env_state_dim:
            self.env_state_projector = mlp(env_state_dim, [gpt_input_dim])
        self.policy = GPT(gpt_input_dim, gpt_output_dim, gpt_hidden_dim, gpt_n_layer, gpt_n_head, gpt_block_size, dropout)
        self.action_head = VQBeTHead(gpt_output_dim, action_dim, action_chunk_size, vqvae_n_embed, vqvae_embedding_dim,
                                     vqvae_enc_hidden_dim, bet_softmax_temperature, sequentially_select,
                                     offset_loss_weight, primary_code_loss_weight, secondary_code_loss_weight)
        n_targets = n_action_pred_token + n_obs_steps - 1
        self.register_buffer("select_target_actions_indices",
                             torch.stack([torch.arange(i, i + action_chunk_size) for i in range(n_targets)]))

    def tokens(self, state: Tensor, images: Tensor | None, env_state: Tensor | None = None) -> Tensor:
        """GPT input ``(B, n_obs_steps * per_step + n_action_pred_token - 1, gpt_input_dim)`` from ``state``
        ``(B, S, D)``, ``images`` ``(B, S, cams, C, H, W)`` (None without cameras) and ``env_state`` ``(B, S, E)``
        (None without it). Each step's tokens: cameras, environment state, state, action query."""
        b, s = state.shape[:2]
        if s != self.n_obs_steps:
            raise ValueError(f"observation window has {s} steps, expected n_obs_steps={self.n_obs_steps}")
        parts = []
        if self.num_cameras:
            feats = self.rgb_encoder(images.flatten(0, 2)).reshape(b, s, self.num_cameras, -1)
            rgb = self.rgb_feature_projector(feats)
            parts = [rgb[:, :, i] for i in range(self.num_cameras)]
        if hasattr(self, "env_state_projector"):
            parts.append(self.env_state_projector(env_state))
        parts.append(self.state_projector(state))
        parts.append(self.action_token.expand(b, s, -1))
        tokens = torch.stack(parts, dim=2).flatten(1, 2)
        extra = self.action_token.expand(b, self.n_action_pred_token - 1, -1)
        return torch.cat([tokens, extra], dim=1)

    def query_features(self, gpt_out: Tensor) -> Tensor:
        """GPT outputs at the action-query positions ``(B, n_obs_steps + n_action_pred_token - 1, D)``."""
        per_step = self.per_step
        idx = [i * per_step + per_step - 1 for i in range(self.n_obs_steps)]
        extra = self.n_action_pred_token - 1
        feats = gpt_out[:, idx]
        return torch.cat([feats, gpt_out[:, gpt_out.shape[1] - extra:]], dim=1) if extra > 0 else feats

    def forward(self, state: Tensor, images: Tensor | None, env_state: Tensor | None = None,
                sampled_centers: Tensor | None = None) -> dict[str, Tensor]:
        """Head outputs (see :class:`VQBeTHead`) for an observation window."""
        tokens = self.tokens(state, images, env_state)
        return self.action_head(self.query_features(self.policy(tokens)), sampled_centers)

    def rollout(self, head_out: dict[str, Tensor]) -> Tensor:
        """Actions of the current step ``(B, action_chunk_size, A)`` (query token ``n_obs_steps - 1``)."""
        pred = head_out["predicted_action"]
        return pred[:, self.n_obs_steps - 1].reshape(pred.shape[0], self.action_chunk_size, -1)
