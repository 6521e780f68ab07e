"""VLM configurations for SmolVLA: SmolVLM2-500M written in code (no download) and tiny test sizes.

``SMOLVLM2_500M`` holds the architecture values of ``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``'s
``config.json`` (Llama text decoder: 32 layers, width 960, 15 query / 5 key-value heads of 64, MLP 2560,
vocab 49280; SigLIP-style vision encoder: 12 layers, width 768, 512x512 images in 16x16 patches; pixel-shuffle
connector with scale factor 4, i.e. 64 tokens per image).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

SMOLVLM2_500M_ID = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
SMOLVLM2_500M: dict[str, Any] = {
    "text_config": {"model_type": "llama", "hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                    "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64, "vocab_size": 49280,
                    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
                    "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
                    "pad_token_id": 2},
    "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                      "image_size": 512, "patch_size": 16, "num_channels": 3, "hidden_act": "gelu_pytorch_tanh",
                      "layer_norm_eps": 1e-6},
    "scale_factor": 4,
    "image_token_id": 49190,
    "tie_word_embeddings": False,
}


def tiny_smolvlm_config(vocab_size: int = 64, image_size: int = 32, hidden_size: int = 32,
                        num_hidden_layers: int = 4, num_attention_heads: int = 4) -> dict[str, Any]:
    """A SmolVLM config small enough for CPU tests (by default a 4-layer width-32 decoder, 1-layer vision encoder,
    16 image tokens per ``image_size`` image).

    ``hidden_size`` (decoder width; MLP width is twice it), ``num_hidden_layers`` and ``num_attention_heads`` (half
    as many key/value heads, head width ``hidden_size / num_attention_heads``) scale the decoder, e.g. for a
    small VLA teacher trained on a CPU.

    Raises:
        ValueError: ``hidden_size`` not divisible by ``num_attention_heads``, or an odd ``num_attention_heads``.
    """
    if hidden_size % num_attention_heads or num_attention_heads % 2:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by num_attention_heads {num_attention_heads}, "
                         "which must be even")
    return {
        "text_config": {"model_type": "llama", "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size,
                        "num_hidden_layers": num_hidden_layers, "num_attention_heads": num_attention_heads,
                        "num_key_value_heads": num_attention_heads // 2,
                        "head_dim": hidden_size // num_attention_heads, "vocab_size": vocab_size,
                        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "hidden_act": "silu",
                        "tie_word_embeddings": False, "pad_token_id": 0},
        "vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                          "image_size": image_size, "patch_size": 4, "num_channels": 3},
        "scale_factor": 2,
        "image_token_id": vocab_size - 1,
        "tie_word_embeddings": False,
    }


def make_smolvlm_config(values: dict[str, Any]):
    """A ``transformers.SmolVLMConfig`` from nested values (``text_config``/``vision_config`` dicts)."""
    from transformers import SmolVLMConfig

    return SmolVLMConfig(**values)


def resolve_vlm_config(vlm_model_name: str, download: bool = True):
    """The VLM config of ``vlm_model_name`` (Hub id or local folder), via ``AutoConfig.from_pretrained``.

    For SmolVLM2-500M, when ``download`` is False (no pretrained weights wanted) only the local Hub cache is tried,
    and when the config is unavailable the architecture written in this module is used instead (same shapes;
    a message is logged).

    Raises:
        OSError: the config cannot be loaded and ``vlm_model_name`` is not SmolVLM2-500M.
    """
    from transformers import AutoConfig

    try:
        local_only = not download and vlm_model_name == SMOLVLM2_500M_ID
        return AutoConfig.from_pretrained(vlm_model_name, local_files_only=local_only)
    except OSError as e:
        if vlm_model_name == SMOLVLM2_500M_ID:
            log.info("config of %s unavailable (%s); using the SmolVLM2-500M architecture written in code",
                     vlm_model_name, type(e).__name__)
            return make_smolvlm_config(SMOLVLM2_500M)
        raise OSError(f"SmolVLA vlm_model_name={vlm_model_name!r}: no config.json could be loaded (a Hub id needs the "
                      f"network or the HF cache; a folder needs config.json): {e}") from e


def expert_intermediate_size(hidden: int, ffn_dim_multiplier: int = 4, multiple_of: int = 256) -> int:
    """MLP width of the action expert: ``int(2 * hidden / 3) * ffn_dim_multiplier`` rounded up to ``multiple_of``
    (lerobot's ``get_intermediate_size``; 720 -> 2048)."""
    h = int(ffn_dim_multiplier * int(2 * hidden / 3))
    return multiple_of * ((h + multiple_of - 1) // multiple_of)
