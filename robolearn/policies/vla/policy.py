"""Policy-level pieces shared by the VLA ``PolicyModule``s (π0 / π0.5 and SmolVLA): the lazily loaded prompt
tokenizer, the action window and the preset's gradient clipping."""

from __future__ import annotations

from robolearn.features import ACTION


class VLAPolicyMixin:
    """Mixin for a :class:`~robolearn.policies.base.PolicyModule` subclass (list it first among the bases).

    The subclass sets ``policy_label`` (a class attribute used in error messages, e.g. ``"SmolVLA"``) and, in its
    ``__init__``, ``self.tokenizer_name`` (Hub id or folder), ``self._tokenizer = None``, ``self.chunk_size`` and
    ``self.optimizer_grad_clip_norm``.
    """

    policy_label = "VLA"
    #: flow-matching sampler: real-time chunking applies (:mod:`robolearn.policies.vla.rtc`)
    supports_rtc = True

    @property
    def tokenizer(self):
        """The prompt tokenizer, loaded from ``tokenizer_name`` on first use (``AutoTokenizer.from_pretrained``);
        assign ``policy.tokenizer = ...`` to use another one.

        Raises:
            OSError: the tokenizer cannot be loaded (the message names ``tokenizer_name``).
        """
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
            except OSError as e:
                raise OSError(f"{self.policy_label} tokenizer_name={self.tokenizer_name!r} could not be loaded (a Hub "
                              f"id needs the network or the HF cache; a folder needs tokenizer files): {e}") from e
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    @property
    def delta_indices(self) -> dict[str, list[int]]:
        """Only the action is windowed: ``{"action": [0 .. chunk_size-1]}``."""
        return {ACTION: list(range(self.chunk_size))}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip at ``optimizer_grad_clip_norm`` (the policy's preset; ``conf/trainer/default.yaml`` passes it to the
        trainer as ``gradient_clip_val``); a value ``<= 0`` disables clipping.

        Raises:
            ValueError: the trainer's ``gradient_clip_val`` is set and differs from ``optimizer_grad_clip_norm``
                (the clip is set in one place: ``policy.optimizer_grad_clip_norm``).
        """
        value = self.optimizer_grad_clip_norm
        if gradient_clip_val is not None and float(gradient_clip_val) != float(value):
            raise ValueError(
                f"{self.policy_label}: trainer.gradient_clip_val={gradient_clip_val} differs from "
                f"policy.optimizer_grad_clip_norm={value}; set the clip once, as policy.optimizer_grad_clip_norm "
                "(the default trainer reads it)")
        self.clip_gradients_any_strategy(optimizer, value, gradient_clip_algorithm)
