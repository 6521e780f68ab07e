"""Residual VQ-VAE over action chunks (VQ-BeT phase 1; Lee et al. 2024, "Behavior Generation with Latent
Actions", Sec. 3.2).

An MLP encoder maps a flattened action chunk ``(N, chunk * A)`` to a latent ``(N, D)``; a residual vector
quantizer with ``num_layers`` codebooks (EMA-updated, Euclidean nearest neighbour, as in
``vector-quantize-pytorch`` with lerobot's settings: decay 0.8, eps 1e-5, commitment weight 1) turns it into
the sum of one code vector per layer; an MLP decoder maps that back to the chunk.

State-dict names follow lerobot's ``VqVae`` (``encoder.{0,2,4}``, ``decoder.{0,2,4}``,
``vq_layer.layers.<i>._codebook.{initted, cluster_size, embed_avg, embed}``, ``vq_layer.freeze_codebook``,
``discretized``) so lerobot checkpoints load by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def mlp(in_dim: int, dims: list[int]) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear`` through ``dims`` (no activation after the last layer).

    Module indices are ``0, 2, 4, ...`` for the Linear layers (lerobot's VQ-BeT MLP layout).
    """
    layers: list[nn.Module] = []
    for i, d in enumerate(dims):
        layers.append(nn.Linear(in_dim, d))
        if i < len(dims) - 1:
            layers.append(nn.ReLU())
        in_dim = d
    return nn.Sequential(*layers)


class EuclideanCodebook(nn.Module):
    """One codebook of ``codebook_size`` vectors of size ``dim``, stored as buffers and learnt by EMA.

    Buffers (shapes with the single-codebook axis lerobot keeps): ``initted`` (1,), ``cluster_size`` (1, K),
    ``embed_avg`` (1, K, D), ``embed`` (1, K, D). Codes are initialised with Kaiming-uniform noise.
    """

    def __init__(self, dim: int, codebook_size: int, decay: float = 0.8, eps: float = 1e-5):
        super().__init__()
        self.decay, self.eps, self.codebook_size = decay, eps, codebook_size
        embed = torch.empty(1, codebook_size, dim)
        nn.init.kaiming_uniform_(embed)
        self.register_buffer("initted", torch.tensor([1.0]))
        self.register_buffer("cluster_size", torch.zeros(1, codebook_size))
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("embed", embed)

    def nearest(self, x: Tensor) -> Tensor:
        """Index ``(N,)`` of the nearest code (Euclidean) for each row of ``x`` ``(N, D)``."""
        dist = -torch.cdist(x.float().unsqueeze(0), self.embed, p=2)  # (1, N, K)
        return dist.argmax(dim=-1)[0]

    @torch.no_grad()
    def ema_update(self, x: Tensor, idx: Tensor) -> None:
        """EMA update of the codebook from inputs ``x`` (N, D) assigned to codes ``idx`` (N,)."""
        onehot = F.one_hot(idx, self.codebook_size).to(x.dtype)  # (N, K)
        self.cluster_size.lerp_(onehot.sum(0, keepdim=True), 1 - self.decay)
        self.embed_avg.lerp_((onehot.t() @ x).unsqueeze(0), 1 - self.decay)
        total = self.cluster_size.sum(dim=-1, keepdim=True)
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(-1))


class VectorQuantize(nn.Module):
    """One quantization layer: nearest code, straight-through gradient, commitment loss (training only)."""

    def __init__(self, dim: int, codebook_size: int, commitment_weight: float = 1.0):
        super().__init__()
        self.commitment_weight = commitment_weight
        self._codebook = EuclideanCodebook(dim, codebook_size)

    def forward(self, x: Tensor, freeze_codebook: bool) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (N, D) -> ``(quantized (N, D), codes (N,), commitment loss ())``; the loss is 0 in eval."""
        idx = self._codebook.nearest(x)
        quantized = self._codebook.embed[0][idx]
        loss = x.new_zeros(())
        if self.training:
            loss = loss + F.mse_loss(quantized.detach(), x) * self.commitment_weight
            if not freeze_codebook:
                self._codebook.ema_update(x.detach().float(), idx)
            quantized = x + (quantized - x).detach()
        return quantized, idx, loss


class ResidualVQ(nn.Module):
    """Residual vector quantization: layer ``i`` quantizes what layers ``< i`` left unexplained.

    ``freeze_codebook`` (bool buffer) stops the EMA codebook updates (phase 2).
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int):
        super().__init__()
        self.layers = nn.ModuleList([VectorQuantize(dim, codebook_size) for _ in range(num_quantizers)])
        self.register_buffer("freeze_codebook", torch.tensor(False))

    @property
    def codebooks(self) -> Tensor:
        """``(num_quantizers, K, D)``."""
        return torch.stack([layer._codebook.embed[0] for layer in self.layers])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (N, D) -> ``(quantized sum (N, D), codes (N, num_quantizers), per-layer losses (L,))``."""
        residual, out = x, None
        codes, losses = [], []
        freeze = bool(self.freeze_codebook)
        for layer in self.layers:
            q, idx, loss = layer(residual, freeze)
            residual = residual - q.detach()
            out = q if out is None else out + q
            codes.append(idx)
            losses.append(loss)
        return out, torch.stack(codes, dim=-1), torch.stack(losses)

    def codebook_vectors(self, codes: Tensor) -> Tensor:
        """Codes ``(N, L)`` -> per-layer code vectors ``(L, N, D)``."""
        books = self.codebooks
        return torch.stack([books[i][codes[:, i]] for i in range(codes.shape[1])])


class VqVae(nn.Module):
    """Action-chunk VQ-VAE with a 2-layer residual VQ (VQ-BeT, Sec. 3.2).

    Args:
        action_dim: ``A``; chunks are ``(N, chunk_size, A)``.
        chunk_size: actions per chunk.
        n_embed: codes per codebook ``K``.
        embedding_dim: latent size ``D``.
        hidden_dim: encoder/decoder hidden width.
        num_layers: residual quantizers (lerobot fixes 2).
    """

    def __init__(self, action_dim: int, chunk_size: int, n_embed: int, embedding_dim: int, hidden_dim: int,
                 num_layers: int = 2):
        super().__init__()
        self.action_dim, self.chunk_size, self.num_layers = action_dim, chunk_size, num_layers
        self.register_buffer("discretized", torch.tensor(False))
        self.vq_layer = ResidualVQ(embedding_dim, num_layers, n_embed)
        self.encoder = mlp(action_dim * chunk_size, [hidden_dim, hidden_dim, embedding_dim])
        self.decoder = mlp(embedding_dim, [hidden_dim, hidden_dim, action_dim * chunk_size])

    def get_code(self, chunks: Tensor) -> tuple[Tensor, Tensor]:
        """Chunks ``(N, chunk, A)`` -> ``(quantized latent (N, D), codes (N, L))``, without gradients."""
        with torch.no_grad():
            quantized, codes, _ = self.vq_layer(self.encoder(chunks.flatten(1)))
        return quantized, codes

    def get_embeddings_from_code(self, codes: Tensor) -> Tensor:
        """Codes ``(N, L)`` -> summed code vectors ``(N, D)``."""
        with torch.no_grad():
            return self.vq_layer.codebook_vectors(codes).sum(dim=0)

    def get_action_from_latent(self, latent: Tensor) -> Tensor:
        """Latent ``(N, D)`` -> decoded chunk ``(N, chunk, A)``."""
        return self.decoder(latent).reshape(latent.shape[0], self.chunk_size, self.action_dim)

    def vqvae_forward(self, chunks: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Phase-1 loss on chunks ``(N, chunk, A)``: ``L1(recon) + 5 * sum(commitment losses)``.

        Returns ``(loss, {"recon_l1_error", "commitment_loss", "codes" (N, L)})``.
        """
        flat = chunks.flatten(1)
        quantized, codes, losses = self.vq_layer(self.encoder(flat))
        recon = (flat - self.decoder(quantized)).abs().mean()
        commit = losses.sum()
        return recon + 5 * commit, {"recon_l1_error": recon.detach(), "commitment_loss": commit.detach(), "codes": codes}
