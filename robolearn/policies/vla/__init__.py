"""Building blocks shared by the vision-language-action policies (SmolVLA; π0 may use them too).

- :mod:`.flow`: flow-matching time sampling, sinusoidal time embedding, Euler integration.
- :mod:`.images`: resize-with-padding of camera frames.
- :mod:`.padding`: zero-padding of state/action vectors to fixed widths.
- :mod:`.tokenize`: tokenization of the batch's ``task`` strings.
- :mod:`.schedule`: warmup + cosine-decay learning-rate schedule (lerobot's VLA preset).
- :mod:`.lora`: LoRA injection through ``peft`` and parameter/memory accounting.
"""
