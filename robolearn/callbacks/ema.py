"""Exponential moving average of a LightningModule's weights (as used by Diffusion Policy, Chi et al. 2023).

The decay follows the warmup of diffusers' ``EMAModel`` / Diffusion Policy's ``EMAModel``
(after Karras et al.): with ``step = max(0, n - update_after_step - 1)`` for the ``n``-th optimizer step,
``decay = 0`` while ``step <= 0``, else ``clip(1 - (1 + step / inv_gamma) ** -power, min_decay, max_decay)``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import lightning as L
import torch
from torch import Tensor


def ema_decay(step: int, update_after_step: int = 0, inv_gamma: float = 1.0, power: float = 0.75,
              min_decay: float = 0.0, max_decay: float = 0.9999) -> float:
    """Decay used at the ``step``-th EMA update (1-based count of optimizer steps). Pure function."""
    s = max(0, step - update_after_step - 1)
    if s <= 0:
        return 0.0
    value = 1.0 - (1.0 + s / inv_gamma) ** -power
    return max(min_decay, min(value, max_decay))


class EMA(L.Callback):
    """Keeps an EMA copy of the trainable floating-point parameters of the LightningModule.

    ``shadow <- decay * shadow + (1 - decay) * param`` after every optimizer step (with gradient accumulation,
    once per optimizer step). The EMA weights are swapped into the module for validation and while the
    ``ExportPretrained`` callback writes the exported model (:meth:`swapped`), and copied into the module
    at the end of ``fit`` when ``apply_at_end``. The callback's state (shadow weights, update count) goes into
    Lightning checkpoints so a resumed run continues the average.

    Args:
        power: warmup exponent (Diffusion Policy uses 0.75; 2/3 suits very long runs).
        inv_gamma: warmup time scale in steps.
        min_decay / max_decay: clip of the decay (``max_decay`` 0.9999).
        update_after_step: updates before which the shadow just copies the weights.
        validate_with_ema: swap EMA weights in during validation.
        apply_at_end: copy the EMA weights into the module when ``fit`` ends (the module then *is* the EMA
            model for any code that uses it after training).
    """

    def __init__(
        self,
        power: float = 0.75,
        inv_gamma: float = 1.0,
        min_decay: float = 0.0,
        max_decay: float = 0.9999,
        update_after_step: int = 0,
        validate_with_ema: bool = True,
        apply_at_end: bool = True,
    ):
        super().__init__()
        self.power, self.inv_gamma = power, inv_gamma
        self.min_decay, self.max_decay = min_decay, max_decay
        self.update_after_step = update_after_step
        self.validate_with_ema, self.apply_at_end = validate_with_ema, apply_at_end
        self.shadow: dict[str, Tensor] | None = None
        self.num_updates = 0
        self.decay = 0.0
        self._last_global_step = -1
        self._backup: dict[str, Tensor] | None = None

    # ------------------------------------------------------------------ math
    def get_decay(self, step: int) -> float:
        return ema_decay(step, self.update_after_step, self.inv_gamma, self.power, self.min_decay, self.max_decay)

    @staticmethod
    def _params(module: torch.nn.Module) -> dict[str, Tensor]:
        return {n: p for n, p in module.named_parameters() if p.requires_grad and p.is_floating_point()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """One EMA update from ``module``'s current parameters."""
        params = self._params(module)
        if self.shadow is None:
            self.shadow = {n: p.detach().clone() for n, p in params.items()}
        self.num_updates += 1
        self.decay = self.get_decay(self.num_updates)
        for name, p in params.items():
            s = self.shadow[name]
            if s.device != p.device:
                s = self.shadow[name] = s.to(p.device)
            s.mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)

    @torch.no_grad()
    def _swap_in(self, module: torch.nn.Module) -> None:
        if self.shadow is None or self._backup is not None:
            return
        params = self._params(module)
        self._backup = {n: p.detach().clone() for n, p in params.items()}
        for n, p in params.items():
            p.copy_(self.shadow[n])

    @torch.no_grad()
    def _swap_out(self, module: torch.nn.Module) -> None:
        if self._backup is None:
            return
        for n, p in self._params(module).items():
            p.copy_(self._backup[n])
        self._backup = None

    @contextlib.contextmanager
    def swapped(self, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Context manager: ``module`` holds the EMA weights inside, its own weights again after."""
        already = self._backup is not None
        self._swap_in(module)
        try:
            yield module
        finally:
            if not already:
                self._swap_out(module)

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        params = self._params(pl_module)
        if self.shadow is None:
            self.shadow = {n: p.detach().clone() for n, p in params.items()}
        else:
            missing = sorted(set(params) - set(self.shadow))
            if missing:
                raise KeyError(f"EMA state has no shadow for parameters {missing[:5]}...")
            self.shadow = {n: t.to(params[n].device, params[n].dtype) for n, t in self.shadow.items()}
        self._last_global_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step != self._last_global_step:  # an optimizer step happened
            self._last_global_step = trainer.global_step
            self.update(pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.validate_with_ema:
            self._swap_in(pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.validate_with_ema:
            self._swap_out(pl_module)

    @torch.no_grad()
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_out(pl_module)
        if self.apply_at_end and self.shadow is not None:
            for n, p in self._params(pl_module).items():
                p.copy_(self.shadow[n])

    def state_dict(self) -> dict[str, Any]:
        return {
            "shadow": {n: t.detach().cpu() for n, t in (self.shadow or {}).items()},
            "num_updates": self.num_updates,
            "decay": self.decay,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.shadow = dict(state_dict["shadow"]) or None
        self.num_updates = int(state_dict["num_updates"])
        self.decay = float(state_dict.get("decay", 0.0))
