"""A binary success (reward) classifier on camera frames, as HIL-SERL learns its reward (Luo et al. 2024,
https://arxiv.org/abs/2410.21845; lerobot's ``reward_classifier``), trained like any robolearn policy:
``python train.py policy=reward_classifier dataset=<labelled LeRobotDataset>``."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from robolearn.features import FeatureType
from robolearn.policies.base import PolicyModule
from robolearn.policies.reward_classifier.model import SuccessClassifierNet


class RewardClassifier(PolicyModule):
    """Predicts ``P(success | frame)`` from the cameras of one frame (and optionally its state vectors).

    The label of frame ``t`` is the dataset column ``label_key`` (default ``next.success``, bool: the task is done
    after the action of frame ``t``); with ``label_threshold`` set, the label is ``label_key > label_threshold``
    (e.g. ``label_key="next.reward", label_threshold=0`` for datasets that only have sparse rewards). With
    ``label_offset=-1`` frame ``t`` takes the label of frame ``t - 1`` (False at an episode's first frame): the
    success the previous action reached, which frame ``t``'s observation shows. A reward wrapper asks the
    classifier about the observation *after* a step, so this is the label that matches it: with offset 0 the
    classifier learns to fire on the last observation before the success (on the simulated SO-101, jaws half open
    over the goal), one step early. It needs frames recorded after the success (``steps_after_success`` of
    :class:`~robolearn.robots.sim.SimRobot`, lerobot's ``number_of_steps_after_success``). The loss is
    binary cross-entropy on the logit (``pos_weight`` up-weights the rare positive frames). Logged metrics:
    ``accuracy`` at ``success_threshold`` and ``positive_rate`` (fraction of positive labels in the batch), under
    ``train/`` and ``val/`` like every policy's loss terms.

    The classifier has no action output: it consumes the dataset's features (``action`` included, unused) so that
    ``train.py`` builds it like any policy, asks the DataModule for ``label_key`` as a single frame through
    :attr:`delta_indices` (a dataset without that column fails before training, naming it), and
    :meth:`select_action` raises. Use :meth:`predict_success` (reward wrappers) or :meth:`predict_logits`.

    Args:
        features, stats, optimizer, lr_scheduler, normalization_mapping: see
            :class:`~robolearn.policies.base.PolicyModule`. ``optimizer=None`` uses AdamW(``optimizer_lr``,
            ``optimizer_weight_decay``) (lerobot's classifier preset: 1e-4, 0.01).
        use_imagenet_stats: normalize cameras with ImageNet mean/std (what pretrained timm backbones expect).
        label_key: dataset column holding the label (``(B,)`` or ``(B, 1)``, bool or numeric).
        label_threshold: None: the label is ``label_key != 0``; else ``label_key > label_threshold``.
        label_offset: frames between a frame and the frame whose ``label_key`` labels it (0: its own; -1: the
            previous frame's, see above).
        image_keys: cameras to use (None: every camera feature).
        use_state: also feed ``observation.state`` / ``observation.environment_state`` (when present).
        vision_backbone, pretrained_backbone_weights, freeze_backbone, hidden_dim, dropout: see
            :class:`~robolearn.policies.reward_classifier.model.SuccessClassifierNet`.
            ``pretrained_backbone_weights=None`` (the default) initializes randomly and downloads nothing.
        pos_weight: BCE weight of positive labels (None: 1).
        success_threshold: probability above which a frame counts as a success (accuracy, :meth:`predict_success`
            callers that threshold).
        optimizer_lr, optimizer_weight_decay: AdamW learning rate and (decoupled) weight decay used when
            ``optimizer`` is None; an explicit ``optimizer`` replaces them.

    Raises:
        ValueError: an ``image_keys`` entry that is not a camera feature; no camera and ``use_state=False``; a
            threshold outside (0, 1); a non-positive ``pos_weight``; an explicit ``optimizer`` with a non-default
            ``optimizer_lr``/``optimizer_weight_decay``.
    """

    default_normalization_mapping = {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ENV": "MEAN_STD",
                                     "ACTION": "IDENTITY"}
    optimizer_hparams = ("optimizer_lr", "optimizer_weight_decay")

    def __init__(
        self,
        features: Mapping[str, Any],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None | bool = None,
        normalization_mapping: Mapping[str, str] | None = None,
        use_imagenet_stats: bool = True,
        label_key: str = "next.success",
        label_threshold: float | None = None,
        label_offset: int = 0,
        image_keys: Sequence[str] | None = None,
        use_state: bool = False,
        vision_backbone: str = "resnet10t",
        pretrained_backbone_weights: str | None = None,
        freeze_backbone: bool = False,
        hidden_dim: int = 256,
        dropout: float = 0.1,
        pos_weight: float | None = None,
        success_threshold: float = 0.5,
        optimizer_lr: float = 1e-4,
        optimizer_weight_decay: float = 0.01,
    ):
        super().__init__(features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats)
        cams = self.image_keys if image_keys is None else [str(k) for k in image_keys]
        wrong = [k for k in cams if k not in self.image_keys]
        if wrong:
            raise ValueError(f"reward classifier image_keys {wrong} are not camera features; cameras: {self.image_keys}")
        states = {k: int(f.shape[0]) for k, f in self.features.items()
                  if use_state and f.type in (FeatureType.STATE, FeatureType.ENV)}
        if not cams and not states:
            raise ValueError(f"the reward classifier needs a camera (features have none: {sorted(self.features)}) "
                             "or use_state=True with a state feature")
        if not 0.0 < success_threshold < 1.0:
            raise ValueError(f"success_threshold must be in (0, 1), got {success_threshold}")
        if pos_weight is not None and pos_weight <= 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
        self.label_key, self.label_threshold, self.label_offset = str(label_key), label_threshold, int(label_offset)
        self.camera_keys, self.state_keys = cams, list(states)
        self.pos_weight, self.success_threshold = pos_weight, float(success_threshold)
        self.optimizer_lr, self.optimizer_weight_decay = optimizer_lr, optimizer_weight_decay
        self.net = SuccessClassifierNet(cams, states, vision_backbone, pretrained_backbone_weights, freeze_backbone,
                                        hidden_dim, dropout)
        self._save_policy_hparams()

    # ------------------------------------------------------------------ data contract
    @property
    def obs_keys(self) -> list[str]:
        """The inputs the classifier reads: its cameras, then its state keys."""
        return [*self.camera_keys, *self.state_keys]

    @property
    def delta_indices(self) -> dict[str, list[int] | None]:
        """``{label_key: None}``: the label as a single frame, or ``{label_key: [label_offset]}`` (the DataModule
        checks that the column exists, and pads a window outside the episode: ``<label_key>_is_pad``)."""
        return {self.label_key: [self.label_offset] if self.label_offset else None}

    def labels(self, batch: Mapping[str, Any]) -> Tensor:
        """Float 0/1 labels ``(B,)`` from ``batch[label_key]`` (see the class docstring).

        Raises:
            KeyError: the batch has no ``label_key`` (names it and the batch's keys).
            ValueError: the label is not one value per frame.
        """
        if self.label_key not in batch:
            raise KeyError(f"reward classifier label '{self.label_key}' is not in the batch (keys {sorted(batch)}); "
                           "set policy.label_key to the dataset's success column, e.g. policy.label_key=next.reward "
                           "policy.label_threshold=0")
        y = torch.as_tensor(batch[self.label_key])
        bsz = next(iter(batch[k] for k in self.obs_keys if k in batch), y).shape[0]
        if y.numel() != bsz:
            raise ValueError(f"label '{self.label_key}' has shape {tuple(y.shape)}; expected one value per frame "
                             f"({bsz},) or ({bsz}, 1)")
        y = y.reshape(bsz)
        y = y.float() > self.label_threshold if self.label_threshold is not None else y != 0
        pad = batch.get(f"{self.label_key}_is_pad")
        if self.label_offset and pad is not None:  # the labelling frame lies outside the episode: not a success
            y = y & ~torch.as_tensor(pad, device=y.device).reshape(bsz).bool()
        return y.float()

    def _inputs(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        missing = [k for k in self.obs_keys if k not in obs]
        if missing:
            raise KeyError(f"reward classifier input lacks {missing}; it reads {self.obs_keys}, got {sorted(obs)}")
        return {k: obs[k] for k in self.obs_keys}

    # ------------------------------------------------------------------ loss and metrics
    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """BCE on a normalized batch; returns ``(loss, {accuracy, positive_rate})``.

        Raises:
            KeyError: the label or an input key is missing.
        """
        y = self.labels(batch)
        logits = self.net(self._inputs(batch))
        pos_weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, y.to(logits.device), pos_weight=pos_weight)
        with torch.no_grad():
            pred = (torch.sigmoid(logits) > self.success_threshold).float()
            info = {"accuracy": (pred == y.to(pred.device)).float().mean(), "positive_rate": y.mean()}
        return loss, info

    def _batch_size(self, batch: Mapping[str, Any]) -> int:
        return int(torch.as_tensor(batch[self.label_key]).shape[0]) if self.label_key in batch else 1

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_logits(self, observation: Mapping[str, Tensor]) -> Tensor:
        """Success logits ``(B,)`` from raw single frames (cameras ``(B, 3, H, W)`` in [0, 1], states ``(B, D)``), on
        the classifier's device (inputs are moved there)."""
        inputs = {k: torch.as_tensor(v).to(self.device, torch.float32) for k, v in self._inputs(observation).items()}
        obs = self.normalizer.normalize(inputs, keys=self.obs_keys)
        return self.net(obs)

    @torch.no_grad()
    def predict_success(self, observation: dict[str, Tensor]) -> Tensor:
        """Success probability ``(B,)`` in [0, 1] for raw single frames (see :meth:`predict_logits`); extra keys
        are ignored. Call ``eval()`` first (``load_policy`` does).

        Raises:
            KeyError: an input key the classifier reads is missing.
        """
        return torch.sigmoid(self.predict_logits(observation))

    def select_action(self, observation: dict[str, Tensor]) -> Tensor:
        """Not available: a reward classifier has no action output.

        Raises:
            TypeError: always (use :meth:`predict_success`).
        """
        raise TypeError("RewardClassifier predicts success probabilities, not actions: call predict_success(observation)"
                        " (e.g. in a reward wrapper), not select_action / eval.py")

    def _predict_chunk(self, batch: dict[str, Any]) -> Tensor:
        raise TypeError("RewardClassifier has no action output; use predict_success")

    # ------------------------------------------------------------------ optimization
    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """AdamW(lr=optimizer_lr, weight_decay=optimizer_weight_decay)."""
        return torch.optim.AdamW(params, lr=self.optimizer_lr, weight_decay=self.optimizer_weight_decay)
