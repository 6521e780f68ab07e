"""Building blocks shared by the vision-language-action policies (π0 / π0.5 in :mod:`robolearn.policies.pi0`,
SmolVLA in :mod:`robolearn.policies.smolvla`).

- :mod:`.flow`: flow-matching time sampling, noisy actions, sinusoidal time embedding, Euler integration.
- :mod:`.masks`: blockwise-causal prefix/suffix attention masks.
- :mod:`.images`: resize-with-padding of camera frames (top-left or centred padding).
- :mod:`.padding`: zero-padding of state/action vectors to fixed widths.
- :mod:`.tokenize`: the batch's ``task`` strings and their tokenization.
- :mod:`.schedule`: warmup + cosine-decay learning-rate schedule (lerobot's VLA preset).
- :mod:`.lora`: LoRA injection through ``peft`` and parameter/memory accounting.
- :mod:`.rtc`: real-time chunking (guided flow sampling toward the previous chunk; Black et al. 2025).
- :mod:`.policy`: the lazily loaded tokenizer, action window and gradient clipping of a VLA ``PolicyModule``.
"""
