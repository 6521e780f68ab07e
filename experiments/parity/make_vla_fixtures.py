"""Generate lerobot-made SmolVLA parity fixtures (tests/fixtures/parity_vla/smolvla/) with lerobot 0.6.1, offline.

Run in a separate environment with ``lerobot[smolvla]==0.6.1`` (Python >= 3.12; NOT robolearn's venv):

    python3.12 -m venv /work/lerobot_venv && /work/lerobot_venv/bin/pip install "lerobot[smolvla,pi]==0.6.1"
    HF_HUB_OFFLINE=1 /work/lerobot_venv/bin/python experiments/parity/make_vla_fixtures.py [--out DIR]

What it does (nothing is downloaded):

1. Writes a tiny SmolVLM folder ``vlm/``: ``config.json`` (a ``transformers.SmolVLMConfig``: 4-layer width-32 Llama
   decoder, 1-layer width-16 vision encoder, 32x32 images in 4x4 patches, scale factor 2 -> 16 image tokens; the
   values of ``robolearn.policies.smolvla.configs.tiny_smolvlm_config``), a word-level tokenizer carrying
   SmolVLM's extra special tokens, and a ``SmolVLMProcessor`` (image + video processors). lerobot's
   ``SmolVLMWithExpertModel`` calls ``AutoConfig.from_pretrained(vlm_model_name)`` and
   ``AutoProcessor.from_pretrained(vlm_model_name)``, and the preprocessor's ``TokenizerProcessorStep`` calls
   ``AutoTokenizer.from_pretrained(vlm_model_name)``: all three accept this folder in place of the Hub id.
2. ``SmolVLAConfig(vlm_model_name=<vlm>, load_vlm_weights=False, ...)``, ``torch.manual_seed(0)``, lerobot's
   ``SmolVLAPolicy(cfg)`` (there is no dataset, so not ``make_policy``) and
   ``make_pre_post_processors(cfg, dataset_stats=STATS)``.
3. Post-init: every floating-point parameter whose elements are all equal (RMSNorm/LayerNorm weights 1, biases 0)
   gets N(0, 0.1^2) added (generator seeded 1), so that a port that forgets a tensor fails.
4. Saved with lerobot's ``save_pretrained`` (policy, pre- and postprocessor), reloaded with
   ``SmolVLAPolicy.from_pretrained(strict=True)`` and every output below computed by the reloaded policy.
5. Inputs: a fixed raw batch (2 samples, image (3, 24, 32) in [0, 1], state (2,), action chunk (4, 2), two tasks,
   one padded action) passed through lerobot's preprocessor; fixed ``noise`` (B, 4, 6) and ``time`` (B,) drawn from
   a generator seeded 2 and passed explicitly to ``predict_action_chunk(batch, noise=...)``,
   ``select_action(batch, noise=...)`` and ``forward(batch, noise=..., time=...)`` (lerobot's API takes both), so
   no output depends on the RNG.

Re-running it gives identical files (tensors compared with ``torch.equal``; only the order of the safetensors
header's metadata entries varies). π0 is not generated: see docs/vla.md "Parity with lerobot" (lerobot 0.6.1 cannot build a small π0).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

VOCAB = 64
IMG = 32
WORDS = ("push", "the", "t", "block", "pick", "place", "cube", "to", "target", "a", "on", "of", "and", "move", "left",
         "right", "up", "down", "grasp", "open", "close", "red", "blue", "green", "box", "-", ".", ",")
SPECIAL = {"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
           "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"}
TINY_SMOLVLM = {
    "text_config": {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "vocab_size": VOCAB,
                    "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "hidden_act": "silu",
                    "tie_word_embeddings": False, "pad_token_id": 0},
    "vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                      "image_size": IMG, "patch_size": 4, "num_channels": 3},
    "scale_factor": 2,
    "image_token_id": VOCAB - 1,
    "tie_word_embeddings": False,
}
POLICY_KW = dict(chunk_size=4, n_action_steps=4, max_state_dim=6, max_action_dim=6, resize_imgs_with_padding=(IMG, IMG),
                 num_vlm_layers=4, num_steps=3, tokenizer_max_length=16)
TASKS = ["push the T block", "pick the red cube and place it on the box"]
STATS = {"observation.state": {"mean": torch.tensor([0.5, -1.0]), "std": torch.tensor([2.0, 0.5])},
         "action": {"mean": torch.tensor([0.1, 0.2]), "std": torch.tensor([1.5, 0.7])}}


def write_vlm(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMImageProcessor, SmolVLMProcessor,
                              SmolVLMVideoProcessor)

    folder.mkdir(parents=True, exist_ok=True)
    SmolVLMConfig(**TINY_SMOLVLM).save_pretrained(folder)
    vocab = {"[PAD]": 0, "[UNK]": 1}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    for i in range(len(vocab), VOCAB - 4):  # fill the ids up to the special tokens (no holes in the vocabulary)
        vocab[f"<unused{i}>"] = i
    # SmolVLM's special tokens at the top of the vocabulary; <image> is the config's image_token_id (63).
    for i, tok in enumerate(("<end_of_utterance>", "<global-img>", "<fake_token_around_image>", "<image>")):
        vocab[tok] = VOCAB - 4 + i
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   extra_special_tokens=SPECIAL)
    size = {"longest_edge": IMG}
    proc = SmolVLMProcessor(SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False),
                            fast, SmolVLMVideoProcessor(size=size, max_image_size=size), image_seq_len=16)
    proc.save_pretrained(folder)
    return folder


def perturb_constants(module: torch.nn.Module, seed: int) -> int:
    g = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for _, p in sorted(module.named_parameters()):
            if p.is_floating_point() and p.numel() > 0 and bool((p == p.reshape(-1)[0]).all()):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
                n += 1
    return n


def raw_batch() -> dict:
    g = torch.Generator().manual_seed(3)
    return {"observation.image": torch.rand(2, 3, 24, IMG, generator=g),
            "observation.state": torch.randn(2, 2, generator=g) * 2,
            "action": torch.randn(2, 4, 2, generator=g),
            "action_is_pad": torch.tensor([[False] * 4, [False, False, False, True]]),
            "task": list(TASKS)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "tests/fixtures/parity_vla")
    args = ap.parse_args()
    import lerobot
    import transformers
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    out = args.out / "smolvla"
    if out.exists():
        shutil.rmtree(out)
    vlm = write_vlm(out / "vlm")
    feats_in = {"observation.image": PolicyFeature(FeatureType.VISUAL, (3, 24, IMG)),
                "observation.state": PolicyFeature(FeatureType.STATE, (2,))}
    feats_out = {"action": PolicyFeature(FeatureType.ACTION, (2,))}
    cfg = SmolVLAConfig(vlm_model_name=str(vlm), load_vlm_weights=False, device="cpu", push_to_hub=False,
                        input_features=feats_in, output_features=feats_out, **POLICY_KW)
    torch.manual_seed(0)
    policy = SmolVLAPolicy(cfg)
    n_perturbed = perturb_constants(policy, 1)
    pre, post = make_pre_post_processors(cfg, dataset_stats=STATS)
    pm = out / "pretrained_model"
    policy.save_pretrained(pm)
    pre.save_pretrained(pm)
    post.save_pretrained(pm)

    reloaded = SmolVLAPolicy.from_pretrained(pm, strict=True)
    reloaded.eval()
    sd_a, sd_b = policy.state_dict(), reloaded.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    pre, post = make_pre_post_processors(reloaded.config, pretrained_path=str(pm))

    raw = raw_batch()
    batch = pre({k: (v.clone() if torch.is_tensor(v) else list(v)) for k, v in raw.items()})
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(2, 4, 6, generator=g)
    time = torch.rand(2, generator=g) * 0.999 + 0.001
    obs = {k: v for k, v in batch.items() if k not in ("action", "action_is_pad")}
    with torch.no_grad():
        reloaded.reset()
        chunk = reloaded.predict_action_chunk(dict(obs), noise=noise.clone())
        reloaded.reset()
        first = reloaded.select_action(dict(obs), noise=noise.clone())
        second = reloaded.select_action(dict(obs), noise=noise.clone())
        unnorm = post(chunk)
        first_unnorm, second_unnorm = post(first), post(second)
        reloaded.train()
        loss, info = reloaded.forward(dict(batch), noise=noise.clone(), time=time.clone())
        per_sample, _ = reloaded.forward(dict(batch), noise=noise.clone(), time=time.clone(), reduction="none")
        reloaded.eval()

    inputs = {"raw.observation.image": raw["observation.image"], "raw.observation.state": raw["observation.state"],
              "raw.action": raw["action"], "raw.action_is_pad": raw["action_is_pad"],
              "normalized.observation.image": batch["observation.image"],
              "normalized.observation.state": batch["observation.state"], "normalized.action": batch["action"],
              "normalized.observation.language.tokens": batch["observation.language.tokens"],
              "normalized.observation.language.attention_mask": batch["observation.language.attention_mask"],
              "fixed.noise": noise, "fixed.time": time}
    outputs = {"predict_action_chunk": chunk, "predict_action_chunk_unnormalized": unnorm,
               "select_action_0": first, "select_action_1": second,
               "select_action_0_unnormalized": first_unnorm, "select_action_1_unnormalized": second_unnorm,
               "loss": loss.detach(), "loss_per_sample": per_sample.detach()}
    meta = {"lerobot_version": lerobot.__version__, "torch_version": torch.__version__,
            "transformers_version": transformers.__version__, "policy": "smolvla"}
    save_file({k: v.contiguous() for k, v in inputs.items()}, out / "inputs.safetensors", metadata=meta)
    save_file({k: v.contiguous() for k, v in outputs.items()}, out / "outputs.safetensors", metadata=meta)
    manifest = {**meta, "tasks": TASKS, "policy_kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in POLICY_KW.items()},
                "tiny_smolvlm": TINY_SMOLVLM, "stats": {k: {s: t.tolist() for s, t in v.items()} for k, v in STATS.items()},
                "constant_tensors_perturbed": n_perturbed, "loss_info": {k: float(v) for k, v in info.items()
                                                                           if isinstance(v, (int, float))},
                "shapes": {k: list(v.shape) for k, v in {**inputs, **outputs}.items()},
                "state_dict": {k: list(v.shape) for k, v in sd_b.items()}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    # the checkpoint names the VLM folder; the test points it at the fixture's vlm/ folder
    cfg_path = pm / "config.json"
    c = json.loads(cfg_path.read_text())
    c["vlm_model_name"] = "vlm"
    cfg_path.write_text(json.dumps(c, indent=4))
    for p in (pm / "policy_preprocessor.json",):
        text = p.read_text().replace(json.dumps(str(vlm))[1:-1], "vlm")
        p.write_text(text)
    print("smolvla:", {k: tuple(v.shape) for k, v in outputs.items()}, "loss", float(loss), "perturbed", n_perturbed)


if __name__ == "__main__":
    main()
