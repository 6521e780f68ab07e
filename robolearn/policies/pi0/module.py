"""π0 and π0.5 as robolearn ``PolicyModule``s (Black et al. 2024, https://arxiv.org/abs/2410.24164;
Physical Intelligence 2025, π0.5, https://arxiv.org/abs/2504.16054). Names and defaults are lerobot's
``PI0Config`` / ``PI05Config``."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from robolearn.features import ACTION, FeatureType
from robolearn.policies.base import PolicyModule
from robolearn.policies.pi0.configs import GEMMA_VARIANTS, gemma_config, paligemma_config
from robolearn.policies.pi0.model import Pi0Model
from robolearn.policies.pi0.prompt import discretize_state, pi05_prompt
from robolearn.policies.vla import lora
from robolearn.policies.vla.images import resize_with_pad
from robolearn.policies.vla.padding import pad_vector
from robolearn.policies.vla.policy import VLAPolicyMixin
from robolearn.policies.vla.schedule import cosine_decay_with_warmup
from robolearn.policies.vla.tokenize import task_list, tokenize_tasks

DEFAULT_PEFT = {**lora.DEFAULT_PEFT, "lora_alpha": 16}
# LoRA targets: the attention (q/k/v/o_proj) and MLP (gate/up/down_proj) linears of both Gemma towers (PaliGemma's
# language model and the action expert); the SigLIP vision tower stays frozen. The small state/action/time
# projections (top-level submodules of Pi0Model) are trained fully.
DEFAULT_LORA_TARGETS = (r".*(language_model|gemma_expert\.model)\.layers\.\d+\."
                        r"(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)")
DEFAULT_MODULES_TO_SAVE = ("state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in",
                           "action_time_mlp_out", "time_mlp_in", "time_mlp_out")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def build_paligemma(variant: str, image_size: int, pretrained: str | None, dtype: torch.dtype):
    """PaliGemma from ``variant``'s config (random weights) or, with ``pretrained`` (a Hub id or a local folder),
    ``PaliGemmaForConditionalGeneration.from_pretrained(pretrained)``.

    Raises:
        ValueError: the pretrained model's language model or image size differs from ``variant`` /
            ``image_size`` (a later ``load_policy`` rebuilds from the variant, so they must agree).
    """
    from transformers import PaliGemmaForConditionalGeneration

    config = paligemma_config(variant, image_size)
    if pretrained is None:
        return PaliGemmaForConditionalGeneration(config).to(dtype)
    model = PaliGemmaForConditionalGeneration.from_pretrained(pretrained, dtype=dtype)
    got = model.config
    for field, want in GEMMA_VARIANTS[variant].items():
        if getattr(got.text_config, field) != want:
            raise ValueError(f"pretrained_backbone_weights={pretrained!r}: text_config.{field} = "
                             f"{getattr(got.text_config, field)}, but paligemma_variant={variant!r} has {want}")
    if got.vision_config.image_size != image_size:
        raise ValueError(f"pretrained_backbone_weights={pretrained!r} takes {got.vision_config.image_size}px images, "
                         f"but image_resolution is {image_size}")
    return model


class Pi0Policy(VLAPolicyMixin, PolicyModule):
    """π0: PaliGemma (SigLIP + Gemma 2B) VLM backbone plus a Gemma-300M action expert trained by flow matching.

    Inputs: one or more cameras ``(B, 3, H, W)`` in [0, 1] (resized with padding to ``image_resolution``),
    ``observation.state`` ``(B, D_s)`` (``D_s <= max_state_dim``) and the language instruction ``task`` (str or list
    of str). Output: ``action`` chunks ``(B, chunk_size, A)`` (``A <= max_action_dim``). Normalization: cameras
    IDENTITY, state/action MEAN_STD (π0.5: QUANTILES).

    Training loss: per-element squared error between the predicted and target velocity, zeroed on padded
    actions (``action_is_pad``), truncated to the real action dims, averaged (lerobot's reduction).

    Args:
        features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats: see
            :class:`~robolearn.policies.base.PolicyModule`. ``optimizer=None`` gives AdamW(``optimizer_lr``,
            ``optimizer_betas``, ``optimizer_eps``, ``optimizer_weight_decay``); ``lr_scheduler=None`` gives
            warmup + cosine decay (:func:`~robolearn.policies.vla.schedule.cosine_decay_with_warmup`) with
            ``scheduler_*``. An explicit ``optimizer`` / ``lr_scheduler`` replaces those arguments (combining it with
            a non-default value of one of them raises).
        paligemma_variant, action_expert_variant: keys of :data:`~robolearn.policies.pi0.configs.GEMMA_VARIANTS`
            (``gemma_2b`` / ``gemma_300m``; ``dummy`` for tests).
        pretrained_backbone_weights: Hub id or folder of a PaliGemma checkpoint loaded with
            ``PaliGemmaForConditionalGeneration.from_pretrained`` (e.g. ``google/paligemma-3b-pt-224``); ``None``
            initialises randomly. ``load_policy`` ignores it (the weights are in the checkpoint).
        tokenizer_name: Hub id or folder of the tokenizer (``AutoTokenizer.from_pretrained``), loaded on first use.
        dtype: ``float32`` or ``bfloat16`` for the two transformers (projections stay float32).
        chunk_size, n_action_steps, max_state_dim, max_action_dim, num_inference_steps: see lerobot.
        time_sampling_beta_alpha/_beta/_scale/_offset: training time ``Beta(a, b) * scale + offset``.
        min_period, max_period: sinusoidal time-embedding periods (seconds of flow time, 4e-3 ... 4.0).
        image_resolution: ``(H, W)`` model input, square (SigLIP's position grid).
        empty_cameras: extra all-padding camera slots (masked out), for checkpoints trained with more cameras.
        tokenizer_max_length: prompt tokens (48 in π0, 200 in π0.5).
        freeze_vision_encoder: freeze SigLIP (kept in eval mode). train_expert_only: freeze all of PaliGemma.
        gradient_checkpointing: recompute transformer layers in backward.
        peft: LoRA settings ``{r, lora_alpha, lora_dropout, target_modules, modules_to_save}``; ``r=0`` disables
            (see :func:`robolearn.policies.vla.lora.apply_lora`; ``lora_alpha=None`` is peft's 8). Default targets:
            the attention and MLP linears of both Gemma towers; the state/action/time projections train fully.
        optimizer_lr, optimizer_betas, optimizer_eps, optimizer_weight_decay: AdamW settings (lerobot's PI0Config
            defaults).
        scheduler_warmup_steps, scheduler_decay_steps, scheduler_decay_lr: linear warm-up (optimizer steps), cosine
            decay length (optimizer steps) and final learning rate (lerobot's PI0Config defaults).
        optimizer_grad_clip_norm: gradient-norm clip (the default trainer takes it as ``gradient_clip_val``; a different
            trainer value raises).

    Raises:
        ValueError: ``n_obs_steps != 1``, ``n_action_steps > chunk_size``, no camera, no state (π0), a state/action
            wider than ``max_state_dim``/``max_action_dim``, non-square ``image_resolution``, unknown ``dtype``.
    """

    pi05 = False
    policy_label = "π0"
    # the transformer towers whose nn.Linear layers robolearn.policies.quantize turns to int8 (π0.5 too)
    quantization_towers = ("model.paligemma_with_expert.paligemma.model.vision_tower",
                           "model.paligemma_with_expert.paligemma.model.multi_modal_projector",
                           "model.paligemma_with_expert.paligemma.model.language_model",
                           "model.paligemma_with_expert.gemma_expert")
    default_normalization_mapping = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    optimizer_hparams = ("optimizer_lr", "optimizer_betas", "optimizer_eps", "optimizer_weight_decay")
    lr_scheduler_hparams = ("scheduler_warmup_steps", "scheduler_decay_steps", "scheduler_decay_lr")

    def __init__(
        self,
        features: Mapping[str, Any],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None | bool = None,
        normalization_mapping: Mapping[str, str] | None = None,
        use_imagenet_stats: bool = False,
        paligemma_variant: str = "gemma_2b",
        action_expert_variant: str = "gemma_300m",
        pretrained_backbone_weights: str | None = None,
        tokenizer_name: str = "google/paligemma-3b-pt-224",
        dtype: str = "float32",
        n_obs_steps: int = 1,
        chunk_size: int = 50,
        n_action_steps: int = 50,
        max_state_dim: int = 32,
        max_action_dim: int = 32,
        num_inference_steps: int = 10,
        time_sampling_beta_alpha: float = 1.5,
        time_sampling_beta_beta: float = 1.0,
        time_sampling_scale: float = 0.999,
        time_sampling_offset: float = 0.001,
        min_period: float = 4e-3,
        max_period: float = 4.0,
        image_resolution: Sequence[int] = (224, 224),
        empty_cameras: int = 0,
        tokenizer_max_length: int = 48,
        freeze_vision_encoder: bool = False,
        train_expert_only: bool = False,
        gradient_checkpointing: bool = False,
        peft: Mapping[str, Any] = DEFAULT_PEFT,
        optimizer_lr: float = 2.5e-5,
        optimizer_betas: Sequence[float] = (0.9, 0.95),
        optimizer_eps: float = 1e-8,
        optimizer_weight_decay: float = 0.01,
        optimizer_grad_clip_norm: float = 1.0,
        scheduler_warmup_steps: int = 1000,
        scheduler_decay_steps: int = 30000,
        scheduler_decay_lr: float = 2.5e-6,
    ):
        super().__init__(features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats)
        self.check_single_frame_chunking("π0", n_obs_steps, n_action_steps, chunk_size)
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}; expected one of {sorted(DTYPES)}")
        res = tuple(int(r) for r in image_resolution)
        if len(res) != 2 or res[0] != res[1]:
            raise ValueError(f"image_resolution must be a square (H, W), got {res}")
        if not self.image_keys and empty_cameras <= 0:
            raise ValueError(f"π0 needs at least one camera feature; got {sorted(self.features)}")
        self.state_key = self._feature_key(FeatureType.STATE)
        if self.state_key is None and not self.pi05:
            raise ValueError(f"π0 needs a STATE feature (observation.state); got {sorted(self.features)}")
        if self.state_key is not None and self.features[self.state_key].shape[0] > max_state_dim:
            raise ValueError(f"{self.state_key} has {self.features[self.state_key].shape[0]} dims > "
                             f"max_state_dim={max_state_dim}")
        if self.action_dim > max_action_dim:
            raise ValueError(f"action has {self.action_dim} dims > max_action_dim={max_action_dim}")
        self.chunk_size, self.max_state_dim, self.max_action_dim = chunk_size, max_state_dim, max_action_dim
        self.image_resolution, self.empty_cameras = res, empty_cameras
        self.tokenizer_name, self.tokenizer_max_length = tokenizer_name, tokenizer_max_length
        self.freeze_vision_encoder, self.train_expert_only = freeze_vision_encoder, train_expert_only
        self.optimizer_lr, self.optimizer_betas = optimizer_lr, tuple(optimizer_betas)
        self.optimizer_eps, self.optimizer_weight_decay = optimizer_eps, optimizer_weight_decay
        self.optimizer_grad_clip_norm = optimizer_grad_clip_norm
        self.scheduler_args = (scheduler_warmup_steps, scheduler_decay_steps, scheduler_decay_lr)
        self._tokenizer = None

        paligemma = build_paligemma(paligemma_variant, res[0], pretrained_backbone_weights, DTYPES[dtype])
        self.model = Pi0Model(
            paligemma, gemma_config(action_expert_variant), pi05=self.pi05, chunk_size=chunk_size,
            max_state_dim=max_state_dim, max_action_dim=max_action_dim, num_inference_steps=num_inference_steps,
            time_beta=(time_sampling_beta_alpha, time_sampling_beta_beta, time_sampling_scale, time_sampling_offset),
            min_period=min_period, max_period=max_period, gradient_checkpointing=gradient_checkpointing)
        self.model.paligemma_with_expert.gemma_expert.to(DTYPES[dtype])
        if lora.lora_enabled(peft):
            lora.apply_lora(self.model, dict(peft), DEFAULT_LORA_TARGETS, DEFAULT_MODULES_TO_SAVE)
        if train_expert_only:
            self.model.paligemma_with_expert.paligemma.requires_grad_(False)
        elif freeze_vision_encoder:
            self.model.paligemma_with_expert.vision_tower.requires_grad_(False)
        self._save_policy_hparams()

    # ------------------------------------------------------------------ inputs
    def _prompts(self, batch: dict[str, Any], batch_size: int) -> list[str]:
        return task_list(batch.get("task"), batch_size)

    def _state(self, batch: dict[str, Any]) -> Tensor | None:
        if self.state_key is None:
            return None
        if self.state_key not in batch:
            raise KeyError(f"batch lacks '{self.state_key}'")
        state = batch[self.state_key]
        if state.ndim == 3:  # (B, 1, D) window of one frame
            state = state[:, -1]
        return pad_vector(state.float(), self.max_state_dim, self.state_key)

    def prepare_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Model inputs from a **normalized** batch: ``images`` (list of ``(B, 3, R, R)`` in [-1, 1]),
        ``image_masks`` (list of ``(B,)``), ``lang_tokens``/``lang_masks`` ``(B, tokenizer_max_length)``,
        ``state`` ``(B, max_state_dim)`` or None.

        Raises:
            KeyError: a camera, the state or ``task`` missing from the batch.
        """
        r = self.image_resolution[0]
        images, masks = [], []
        for key in self.image_keys:
            if key not in batch:
                raise KeyError(f"batch lacks camera '{key}'")
            img = batch[key]
            if img.ndim == 5:
                img = img[:, -1]
            images.append(resize_with_pad(img.float(), r, r, align="center") * 2.0 - 1.0)
            masks.append(torch.ones(img.shape[0], dtype=torch.bool, device=img.device))
        b = images[0].shape[0] if images else int(batch[self.state_key].shape[0])
        device = self.device
        for _ in range(self.empty_cameras):
            images.append(torch.full((b, 3, r, r), -1.0, device=device))
            masks.append(torch.zeros(b, dtype=torch.bool, device=device))
        state = self._state(batch)
        # π0's prompt is the task plus "\n"; π0.5's ends in "Action: " and is kept as written
        tokens, lang_masks = tokenize_tasks(self.tokenizer, self._prompts(batch, b), self.tokenizer_max_length,
                                            "max_length", append_newline=not self.pi05, device=device)
        return {"images": images, "image_masks": masks, "lang_tokens": tokens, "lang_masks": lang_masks,
                "state": None if self.pi05 else state}

    # ------------------------------------------------------------------ loss / inference
    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float | Tensor]]:
        actions = batch[ACTION]
        if actions.ndim == 2:
            actions = actions[:, None]
        if actions.shape[1] != self.chunk_size:
            raise ValueError(f"action window has {actions.shape[1]} steps, expected chunk_size={self.chunk_size}")
        losses = self.model(**self.prepare_inputs(batch),
                            actions=pad_vector(actions.float(), self.max_action_dim, ACTION))
        pad = batch.get(f"{ACTION}_is_pad")
        if pad is not None:
            losses = losses * (~pad.bool())[..., None]
        losses = losses[..., : self.action_dim]
        return losses.mean(), {}

    def _predict_chunk(self, batch: dict[str, Any], noise: Tensor | None = None,
                       rtc: dict[str, Any] | None = None) -> Tensor:
        chunk = self.model.sample_actions(**self.prepare_inputs(batch), noise=noise, **(rtc or {}))
        return chunk[..., : self.action_dim]

    # ------------------------------------------------------------------ training setup
    def train(self, mode: bool = True):
        super().train(mode)
        if mode and (self.freeze_vision_encoder or self.train_expert_only):
            self.model.paligemma_with_expert.vision_tower.eval()
        return self

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """AdamW(``optimizer_lr``, ``optimizer_betas``, ``optimizer_eps``, ``optimizer_weight_decay``): lerobot's π0
        preset."""
        return torch.optim.AdamW(params, lr=self.optimizer_lr, betas=self.optimizer_betas, eps=self.optimizer_eps,
                                 weight_decay=self.optimizer_weight_decay)

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """Linear warm-up over ``scheduler_warmup_steps``, then cosine decay over ``scheduler_decay_steps`` to
        ``scheduler_decay_lr`` (lerobot's preset). The peak is the optimizer's learning rate (``optimizer_lr`` unless
        an explicit ``optimizer`` sets another), so the schedule ends at ``scheduler_decay_lr`` with either."""
        warmup, decay, decay_lr = self.scheduler_args
        return cosine_decay_with_warmup(optimizer, warmup, decay, optimizer.param_groups[0]["lr"], decay_lr)


class Pi05Policy(Pi0Policy):
    """π0.5: π0's trunk with the discretized normalized state written into the prompt
    (``"Task: ..., State: ...;\\nAction: "``), the time fed through adaptive RMSNorm of the action expert, QUANTILES
    normalization of state/action and ``tokenizer_max_length=200``. Same arguments as :class:`Pi0Policy`.
    """

    pi05 = True
    lerobot_type = "pi05"
    default_normalization_mapping = {"VISUAL": "IDENTITY", "STATE": "QUANTILES", "ACTION": "QUANTILES"}

    def __init__(self, features: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]] | None = None,
                 **kwargs: Any):
        kwargs.setdefault("tokenizer_max_length", 200)
        # explicit base call (no ``super()`` cell): Lightning then records Pi0Policy.__init__'s arguments
        Pi0Policy.__init__(self, features, stats, **kwargs)

    def _prompts(self, batch: dict[str, Any], batch_size: int) -> list[str]:
        tasks = task_list(batch.get("task"), batch_size)
        state = self._state(batch)
        if state is None:
            raise KeyError("π0.5 writes the state into the prompt: the policy needs an observation.state feature")
        bins = discretize_state(state)
        return [pi05_prompt(t, b.tolist()) for t, b in zip(tasks, bins)]


def _pi05_signature():
    """Pi0Policy's signature with π0.5's ``tokenizer_max_length`` default (200), so that config schemas
    (:mod:`robolearn.utils.schema`) list every argument of :class:`Pi05Policy`."""
    import inspect

    sig = inspect.signature(Pi0Policy.__init__)
    params = [p.replace(default=200) if p.name == "tokenizer_max_length" else p for p in sig.parameters.values()]
    return sig.replace(parameters=params)


Pi05Policy.__init__.__signature__ = _pi05_signature()
