"""SmolVLA as a robolearn ``PolicyModule`` (Shukor et al. 2025, https://arxiv.org/abs/2506.01844)."""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from robolearn.features import ACTION, FeatureType
from robolearn.policies.base import PolicyModule
from robolearn.policies.smolvla.configs import SMOLVLM2_500M_ID, resolve_vlm_config
from robolearn.policies.smolvla.model import SmolVLAFlowModel
from robolearn.policies.smolvla.vlm_expert import SmolVLMWithExpert
from robolearn.policies.vla.images import resize_with_pad
from robolearn.policies.vla.lora import DEFAULT_PEFT, apply_lora, format_report, lora_enabled, parameter_report
from robolearn.policies.vla.padding import pad_vector
from robolearn.policies.vla.policy import VLAPolicyMixin
from robolearn.policies.vla.schedule import cosine_decay_with_warmup
from robolearn.policies.vla.tokenize import task_list, tokenize_tasks

log = logging.getLogger(__name__)

# lerobot's SmolVLA LoRA targets: the expert's q/v projections and the state/action/time projections
# (regex over names inside ``SmolVLAPolicy.model``).
DEFAULT_LORA_TARGETS = (r"(vlm_with_expert\.lm_expert\.layers\.\d+\.self_attn\.(q|v)_proj"
                        r"|state_proj|action_in_proj|action_out_proj|action_time_mlp_in|action_time_mlp_out)")
DEFAULT_MODULES_TO_SAVE: tuple[str, ...] = ()


class SmolVLAPolicy(VLAPolicyMixin, PolicyModule):
    """SmolVLA: a SmolVLM2 backbone (first ``num_vlm_layers`` decoder layers) and a flow-matching action expert that
    interleaves cross-attention to the VLM's keys/values with causal self-attention, conditioned on the images,
    the item's ``task`` instruction and the robot state.

    Names and defaults are lerobot's ``SmolVLAConfig`` (0.6.1). Inputs: one ``STATE`` feature ``(B, D_s)``
    (zero-padded to ``max_state_dim``), one or more cameras ``(B, 3, H, W)`` in [0, 1] (resized with padding to
    ``resize_imgs_with_padding`` and mapped to [-1, 1]), and ``task`` (``str`` or ``list[str]``, tokenized with the
    VLM's tokenizer after appending ``"\\n"``). Output: ``action`` chunks ``(B, chunk_size, A)``, padded internally
    to ``max_action_dim``. Normalization: VISUAL IDENTITY, STATE/ACTION MEAN_STD.

    Loss: flow-matching MSE ``|v_t - (noise - actions)|^2`` averaged over the real action dims and the non-padded
    steps (``action_is_pad``). (lerobot averages over all ``max_action_dim`` dims, including the padding.)

    Args:
        features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats: see
            :class:`~robolearn.policies.base.PolicyModule`. ``optimizer=None`` uses AdamW with ``optimizer_*``;
            ``lr_scheduler=None`` uses warmup + cosine decay with ``scheduler_*`` (lerobot's preset).
        vlm_model_name: Hub id or local folder of the SmolVLM (config, tokenizer and, with ``load_vlm_weights``,
            weights via ``from_pretrained``). For SmolVLM2-500M an offline config falls back to the architecture
            written in :mod:`~robolearn.policies.smolvla.configs`.
        load_vlm_weights: load the pretrained VLM weights (else random init from its config: what loading a
            whole saved policy needs).
        tokenizer_name: tokenizer folder/id (default ``vlm_model_name``); loaded on first use.
        num_vlm_layers, num_expert_layers, self_attn_every_n_layers, expert_width_multiplier, attention_mode:
            architecture, see :class:`~robolearn.policies.smolvla.vlm_expert.SmolVLMWithExpert`.
        chunk_size, n_action_steps: actions per predicted chunk / executed per inference.
        num_steps: Euler steps of the flow at inference.
        max_state_dim, max_action_dim: padded widths.
        resize_imgs_with_padding: ``(H, W)`` the cameras are resized (with padding) to.
        empty_cameras: extra blank (masked-out) cameras appended to the inputs.
        tokenizer_max_length, pad_language_to: language length cap and padding (``"longest"``/``"max_length"``).
        freeze_vision_encoder, train_expert_only, train_state_proj: which parts train (with ``train_expert_only``
            the whole VLM is frozen; otherwise its ``lm_head``, final norm and last kept layer stay frozen, as in
            lerobot).
        peft: LoRA ``{r, lora_alpha, lora_dropout, target_modules, modules_to_save}``; ``r = 0`` disables it.
            Default targets: the expert's q/v projections and the state/action/time projections.
        gradient_checkpointing: recompute each decoder layer in the backward pass.
        optimizer_*, scheduler_*: lerobot's preset (AdamW lr 1e-4, betas (0.9, 0.95), wd 1e-10; clip 10; warmup
            1000, cosine decay over 30k steps to 2.5e-6). An explicit ``optimizer`` replaces ``optimizer_lr``,
            ``optimizer_betas``, ``optimizer_eps``, ``optimizer_weight_decay``; an explicit ``lr_scheduler`` replaces
            ``scheduler_*`` (combining either with a non-default value of what it replaces raises).
            ``optimizer_grad_clip_norm`` is the gradient-norm clip (the default trainer takes it as ``gradient_clip_val``; a different trainer value raises).
        n_obs_steps: must be 1. use_cache: accepted for lerobot compatibility (inference always caches the prefix).
        env_state_in_prefix: robolearn-only (not in lerobot's config; such a policy cannot be written in lerobot's
            format). When True, the ``ENV`` feature (e.g. ``observation.environment_state`` ``(B, D_e)``, privileged
            simulator state, normalized like the state) is appended to the state vector before zero-padding, so
            the state token carries ``D_s + D_e`` values (at most ``max_state_dim``), and cameras become optional
            (the prefix is then the task tokens and the state token only). For simulator tasks whose policies read
            privileged state (e.g. the SO-101 sim main job), such as a small VLA teacher trained on a CPU.

    Raises:
        ValueError: unsupported settings (``n_obs_steps != 1``, ``n_action_steps > chunk_size``,
            ``adapt_to_pi_aloha``, ``use_delta_joint_actions_aloha``, ``add_image_special_tokens``), no camera, no
            state feature, or state/action wider than ``max_state_dim``/``max_action_dim``.
    """

    policy_label = "SmolVLA"
    # the transformer towers whose nn.Linear layers robolearn.policies.quantize turns to int8
    quantization_towers = ("model.vlm_with_expert.vlm.model.vision_model", "model.vlm_with_expert.vlm.model.connector",
                           "model.vlm_with_expert.vlm.model.text_model", "model.vlm_with_expert.lm_expert")
    default_normalization_mapping = {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ENV": "MEAN_STD",
                                     "ACTION": "MEAN_STD"}
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
        n_obs_steps: int = 1,
        chunk_size: int = 50,
        n_action_steps: int = 50,
        max_state_dim: int = 32,
        max_action_dim: int = 32,
        resize_imgs_with_padding: Sequence[int] = (512, 512),
        empty_cameras: int = 0,
        adapt_to_pi_aloha: bool = False,
        use_delta_joint_actions_aloha: bool = False,
        tokenizer_max_length: int = 48,
        num_steps: int = 10,
        use_cache: bool = True,
        freeze_vision_encoder: bool = True,
        train_expert_only: bool = True,
        train_state_proj: bool = True,
        optimizer_lr: float = 1e-4,
        optimizer_betas: Sequence[float] = (0.9, 0.95),
        optimizer_eps: float = 1e-8,
        optimizer_weight_decay: float = 1e-10,
        optimizer_grad_clip_norm: float = 10.0,
        scheduler_warmup_steps: int = 1000,
        scheduler_decay_steps: int = 30000,
        scheduler_decay_lr: float = 2.5e-6,
        vlm_model_name: str = SMOLVLM2_500M_ID,
        load_vlm_weights: bool = False,
        add_image_special_tokens: bool = False,
        attention_mode: str = "cross_attn",
        prefix_length: int = -1,
        pad_language_to: str = "longest",
        num_expert_layers: int = -1,
        num_vlm_layers: int = 16,
        self_attn_every_n_layers: int = 2,
        expert_width_multiplier: float = 0.75,
        min_period: float = 4e-3,
        max_period: float = 4.0,
        tokenizer_name: str | None = None,
        peft: Mapping[str, Any] = DEFAULT_PEFT,
        gradient_checkpointing: bool = False,
        env_state_in_prefix: bool = False,
    ):
        super().__init__(features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats)
        self.check_single_frame_chunking("SmolVLA", n_obs_steps, n_action_steps, chunk_size)
        for name, value in (("adapt_to_pi_aloha", adapt_to_pi_aloha),
                            ("use_delta_joint_actions_aloha", use_delta_joint_actions_aloha),
                            ("add_image_special_tokens", add_image_special_tokens)):
            if value:
                raise ValueError(f"SmolVLA {name}=True is not implemented in robolearn (only False)")
        if pad_language_to not in ("longest", "max_length"):
            raise ValueError(f"pad_language_to must be 'longest' or 'max_length', got {pad_language_to!r}")
        self.state_key = self._feature_key(FeatureType.STATE)
        if self.state_key is None:
            raise ValueError(f"SmolVLA needs a STATE feature (observation.state); features: {sorted(self.features)}")
        self.env_key = self._feature_key(FeatureType.ENV) if env_state_in_prefix else None
        if env_state_in_prefix and self.env_key is None:
            raise ValueError("SmolVLA env_state_in_prefix=True needs an ENV feature (observation.environment_state); "
                             f"features: {sorted(self.features)}")
        if not self.image_keys and not env_state_in_prefix:
            raise ValueError(f"SmolVLA needs at least one camera feature (or env_state_in_prefix=True with an ENV "
                             f"feature); features: {sorted(self.features)}")
        state_dim = self.features[self.state_key].shape[0]
        if self.env_key is not None:
            state_dim += self.features[self.env_key].shape[0]
        if state_dim > max_state_dim or self.action_dim > max_action_dim:
            raise ValueError(f"state dim {state_dim} / action dim {self.action_dim} exceed max_state_dim="
                             f"{max_state_dim} / max_action_dim={max_action_dim}")
        self.chunk_size, self.max_state_dim, self.max_action_dim = chunk_size, max_state_dim, max_action_dim
        self.resize_hw = tuple(int(s) for s in resize_imgs_with_padding)
        self.empty_cameras, self.tokenizer_max_length = empty_cameras, tokenizer_max_length
        self.pad_language_to = pad_language_to
        self.tokenizer_name = tokenizer_name or vlm_model_name
        self.optimizer_args = (optimizer_lr, tuple(optimizer_betas), optimizer_eps, optimizer_weight_decay)
        self.optimizer_grad_clip_norm = optimizer_grad_clip_norm
        self.scheduler_args = (scheduler_warmup_steps, scheduler_decay_steps, scheduler_decay_lr)
        self._tokenizer = None

        vlm_config = resolve_vlm_config(vlm_model_name, download=load_vlm_weights)
        vwe = SmolVLMWithExpert(vlm_config, vlm_model_name, load_vlm_weights, num_vlm_layers, num_expert_layers,
                                self_attn_every_n_layers, expert_width_multiplier, attention_mode,
                                gradient_checkpointing)
        self.model = SmolVLAFlowModel(vwe, chunk_size, max_state_dim, max_action_dim, num_steps, min_period,
                                      max_period, prefix_length)
        self._set_requires_grad(freeze_vision_encoder, train_expert_only, train_state_proj, num_vlm_layers)
        if lora_enabled(peft):
            apply_lora(self.model, dict(peft), DEFAULT_LORA_TARGETS, DEFAULT_MODULES_TO_SAVE)
        self._save_policy_hparams()
        # The saved weights hold the whole VLM: a rebuilt policy (load_policy, load_from_checkpoint) needs only its
        # config, not a second from_pretrained (lerobot writes load_vlm_weights=false too).
        self._hparams["load_vlm_weights"] = False
        self._hparams_initial = type(self._hparams)(dict(self._hparams))

    def _set_requires_grad(self, freeze_vision_encoder: bool, train_expert_only: bool, train_state_proj: bool,
                           num_vlm_layers: int) -> None:
        vlm = self.model.vlm_with_expert.vlm
        if freeze_vision_encoder:
            vlm.model.vision_model.requires_grad_(False)
        if train_expert_only:
            vlm.requires_grad_(False)
        else:  # parts whose output the actions never use (lerobot freezes them too)
            vlm.lm_head.requires_grad_(False)
            vlm.model.text_model.norm.requires_grad_(False)
            vlm.model.text_model.layers[num_vlm_layers - 1].requires_grad_(False)
        self.model.state_proj.requires_grad_(bool(train_state_proj))

    # ------------------------------------------------------------------ inputs
    def prepare_inputs(self, batch: Mapping[str, Any]) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor, Tensor]:
        """``(images, img_masks, lang_tokens, lang_masks, state)`` from a normalized batch.

        Cameras ``(B, 3, H, W)`` (a length-1 time axis is dropped) are resized with padding and mapped to [-1, 1];
        ``empty_cameras`` blank images with False masks are appended; the state (with ``env_state_in_prefix`` the
        ``ENV`` feature appended to it) is zero-padded to ``max_state_dim``.

        Raises:
            KeyError: a camera, the state or the used ``ENV`` feature is missing from the batch, or there is no
                ``task``.
        """
        needed = [*self.image_keys, self.state_key, *([self.env_key] if self.env_key else [])]
        missing = [k for k in needed if k not in batch]
        if missing:
            raise KeyError(f"SmolVLA batch lacks {missing}; it has {sorted(batch)}")
        images, masks = [], []
        for key in self.image_keys:
            img = batch[key]
            img = img[:, -1] if img.dim() == 5 else img
            img = resize_with_pad(img.float(), *self.resize_hw, pad_value=0.0) * 2.0 - 1.0
            images.append(img)
            masks.append(torch.ones(img.shape[0], dtype=torch.bool, device=img.device))
        state = batch[self.state_key]
        state = state[:, -1] if state.dim() == 3 else state
        if self.env_key is not None:
            env = batch[self.env_key]
            env = env[:, -1] if env.dim() == 3 else env
            state = torch.cat([state.float(), env.float()], dim=-1)
        for _ in range(self.empty_cameras):
            blank = images[0] if images else state.new_zeros(state.shape[0], 3, *self.resize_hw)
            images.append(-torch.ones_like(blank))
            masks.append(torch.zeros(blank.shape[0], dtype=torch.bool, device=blank.device))
        state = pad_vector(state.float(), self.max_state_dim, self.state_key)
        tasks = task_list(batch.get("task"), state.shape[0])
        tokens, lang_masks = tokenize_tasks(self.tokenizer, tasks, self.tokenizer_max_length, self.pad_language_to,
                                            device=state.device)
        return images, masks, tokens, lang_masks, state

    # ------------------------------------------------------------------ loss / inference
    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Masked flow-matching MSE on a normalized batch with ``action`` ``(B, chunk_size, A)``."""
        images, img_masks, tokens, lang_masks, state = self.prepare_inputs(batch)
        actions = pad_vector(batch[ACTION].float(), self.max_action_dim, ACTION)
        losses = self.model(images, img_masks, tokens, lang_masks, state, actions,
                            noise=batch.get("noise"), time=batch.get("time"))[:, :, : self.action_dim]
        is_pad = batch.get(f"{ACTION}_is_pad")
        if is_pad is not None:
            valid = (~is_pad.bool()).unsqueeze(-1).to(losses.dtype)
            loss = (losses * valid).sum() / (valid.sum() * losses.shape[-1]).clamp_min(1)
        else:
            loss = losses.mean()
        return loss, {}

    def _predict_chunk(self, batch: dict[str, Any], rtc: dict[str, Any] | None = None) -> Tensor:
        images, img_masks, tokens, lang_masks, state = self.prepare_inputs(batch)
        actions = self.model.sample_actions(images, img_masks, tokens, lang_masks, state, noise=batch.get("noise"),
                                            **(rtc or {}))
        return actions[:, :, : self.action_dim]

    @torch.no_grad()
    def predict_action_chunk(self, observation: dict[str, Any]) -> Tensor:
        """Raw observation (state ``(B, D)``, cameras ``(B, 3, H, W)`` in [0, 1], ``task``) -> unnormalized
        ``(B, chunk_size, A)``. An optional ``observation["noise"]`` ``(B, chunk_size, max_action_dim)`` fixes the
        initial noise of the flow."""
        return super().predict_action_chunk(observation)

    # ------------------------------------------------------------------ training
    def on_fit_start(self) -> None:
        if self.trainer is None or self.trainer.global_rank == 0:
            log.info(format_report(parameter_report(self), "SmolVLA"))

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """AdamW(lr ``optimizer_lr``, betas, eps, weight decay): lerobot's SmolVLA preset."""
        lr, betas, eps, wd = self.optimizer_args
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """Linear warm-up over ``scheduler_warmup_steps``, then cosine decay over ``scheduler_decay_steps`` to
        ``scheduler_decay_lr`` (lerobot's preset). The peak is the optimizer's learning rate (``optimizer_lr`` unless
        an explicit ``optimizer`` sets another), so the schedule ends at ``scheduler_decay_lr`` with either."""
        warmup, decay, decay_lr = self.scheduler_args
        return cosine_decay_with_warmup(optimizer, warmup, decay, optimizer.param_groups[0]["lr"], decay_lr)
