"""Backbone and action-expert sizes of π0 / π0.5, as ``transformers`` config objects.

The Gemma widths are openpi's ``gemma.get_config`` variants (Black et al. 2024, π0, Sec. 3 / App. B):

=============  =====  =====  ======  =====  ========  ========
variant        width  depth  mlp     heads  kv heads  head dim
=============  =====  =====  ======  =====  ========  ========
``gemma_2b``   2048   18     16384   8      1         256
``gemma_300m`` 1024   18     4096    8      1         256
``dummy``      64     4      128     8      1         16
=============  =====  =====  ======  =====  ========  ========

``gemma_2b`` is PaliGemma-3B's language model; its vision tower is SigLIP So400m/14 (width 1152, 27 layers,
16 heads, MLP 4304, patch 14) projected to 2048 with vocabulary 257,152 (``google/paligemma-3b-pt-224``).
``dummy`` (openpi's test size) gets a tiny vision tower (width 32, 1 layer, 2 heads, MLP 64, patch 14) and a
1,024-token vocabulary; it exists for tests and CPU smoke runs. The vision tower's ``image_size`` follows the
policy's ``image_resolution``.
"""

from __future__ import annotations

from typing import Any

GEMMA_VARIANTS: dict[str, dict[str, int]] = {
    "gemma_2b": dict(hidden_size=2048, num_hidden_layers=18, intermediate_size=16384, num_attention_heads=8,
                     num_key_value_heads=1, head_dim=256),
    "gemma_300m": dict(hidden_size=1024, num_hidden_layers=18, intermediate_size=4096, num_attention_heads=8,
                       num_key_value_heads=1, head_dim=256),
    "dummy": dict(hidden_size=64, num_hidden_layers=4, intermediate_size=128, num_attention_heads=8,
                  num_key_value_heads=1, head_dim=16),
}
# Vision tower and vocabulary that go with a PaliGemma language-model variant.
PALIGEMMA_VISION: dict[str, dict[str, int]] = {
    "gemma_2b": dict(hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304,
                     patch_size=14),
    "dummy": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, patch_size=14),
}
PALIGEMMA_VOCAB = {"gemma_2b": 257152, "dummy": 1024}
# Expert vocabulary size: unused (the expert has no token embedding) but part of GemmaConfig.
EXPERT_VOCAB = 257152


def _check_variant(name: str, table: dict, arg: str) -> None:
    if name not in table:
        raise ValueError(f"{arg}={name!r} is not supported; expected one of {sorted(table)}")


def gemma_config(variant: str, arg: str = "action_expert_variant", vocab_size: int = EXPERT_VOCAB):
    """``transformers.GemmaConfig`` of ``variant`` (a key of :data:`GEMMA_VARIANTS`).

    Raises:
        ValueError: unknown variant (the message names ``arg`` and the choices).
    """
    from transformers import GemmaConfig

    _check_variant(variant, GEMMA_VARIANTS, arg)
    return GemmaConfig(vocab_size=vocab_size, hidden_act="gelu_pytorch_tanh", rms_norm_eps=1e-6,
                       rope_theta=10000.0, max_position_embeddings=8192, **GEMMA_VARIANTS[variant])


def paligemma_config(variant: str, image_size: int):
    """``transformers.PaliGemmaConfig`` of ``variant`` (``gemma_2b`` = PaliGemma-3B-pt-224, or ``dummy``) with a
    vision tower for square ``image_size`` images (pixels, a multiple of the patch size 14).

    Raises:
        ValueError: unknown variant, or ``image_size`` not a multiple of the patch size.
    """
    from transformers import PaliGemmaConfig

    _check_variant(variant, PALIGEMMA_VISION, "paligemma_variant")
    vision: dict[str, Any] = dict(PALIGEMMA_VISION[variant])
    if image_size % vision["patch_size"]:
        raise ValueError(f"image_resolution {image_size} must be a multiple of the patch size {vision['patch_size']}")
    width = GEMMA_VARIANTS[variant]["hidden_size"]
    vocab = PALIGEMMA_VOCAB[variant]
    text = dict(GEMMA_VARIANTS[variant], vocab_size=vocab, hidden_act="gelu_pytorch_tanh", rms_norm_eps=1e-6)
    vision.update(image_size=image_size, projection_dim=width, vision_use_head=False,
                  projector_hidden_act="gelu_fast")
    num_tokens = (image_size // vision["patch_size"]) ** 2
    return PaliGemmaConfig(text_config=text, vision_config=vision, projection_dim=width, hidden_size=width,
                           image_token_index=vocab, vocab_size=vocab, text_vocab_size=vocab,
                           num_image_tokens=num_tokens)


def check_compatible(text_config, expert_config) -> None:
    """The backbone's language model and the expert attend jointly, layer by layer: they need the same depth,
    head count, KV-head count and head width.

    Raises:
        ValueError: naming the mismatching field and both values.
    """
    for field in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim"):
        a, b = getattr(text_config, field), getattr(expert_config, field)
        if a != b:
            raise ValueError(f"PaliGemma language model and action expert differ in {field}: {a} vs {b}; "
                             "they must match for joint attention")
