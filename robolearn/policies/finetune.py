"""Fine-tune a whole pretrained policy on a new dataset (``python train.py policy=finetune policy.path=<dir|Hub id>``).

:func:`finetune_policy` is the ``_target_`` of ``conf/policy/finetune.yaml``. ``train.py`` calls it like any policy
constructor, with the new dataset's ``features`` and ``stats``; it works for every policy family because it rebuilds
the checkpoint's own class:

1. read the checkpoint exactly as :func:`robolearn.policies.pretrained.load_policy` does: a robolearn export
   (``config.yaml`` + ``model.safetensors``) or a lerobot ``pretrained_model`` folder (``config.json``; weights
   renamed by the type's ``lerobot_format`` module), locally or from the Hugging Face Hub;
2. build the class with the checkpoint's hyper-parameters (and its ``optimizer``/``lr_scheduler`` Hydra nodes, for
   robolearn exports), the NEW ``features`` and ``stats``, and ``overrides`` merged into the constructor kwargs
   (``{"peft": {"r": 16}}`` for LoRA, ``n_action_steps``, ``optimizer_lr``, ``optimizer``, ...). An override of
   the optimizer (scheduler) replaces the checkpoint's optimizer (scheduler) settings of the other kind: an
   ``optimizer`` node drops the checkpoint's ``optimizer_*`` values, an ``optimizer_*`` value drops its ``optimizer``
   node (see :func:`apply_overrides`);
3. load every checkpoint tensor. Tensors that legitimately differ are handled explicitly: the normalizer buffers
   come from the new statistics (as lerobot does when fine-tuning on another dataset), and LoRA adapters that the
   checkpoint does not have keep peft's initialization (``lora_B = 0``: the fine-tuned model starts as the
   checkpoint). A base weight wrapped by peft (``<m>.base_layer.weight``) receives the checkpoint's ``<m>.weight``.
   A shape mismatch raises :class:`FinetuneMismatchError` naming the tensors and the features that differ.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Mapping

import torch
from torch import Tensor

from robolearn.policies.base import PolicyModule, coerce_features, to_primitive

log = logging.getLogger(__name__)

NORMALIZER_PREFIX = "normalizer."
LORA_MARK = "lora_"          # peft's adapter parameters: <m>.lora_A.<adapter>.weight, <m>.lora_B..., lora_embedding_*
PEFT_BASE_LAYER = ".base_layer."  # peft's wrapped original layer: <m>.base_layer.weight holds <m>.weight


class FinetuneMismatchError(ValueError):
    """The checkpoint's tensors do not fit the policy rebuilt for the new dataset (message names keys and shapes)."""


def finetune_policy(path: str | os.PathLike, features: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]],
                    overrides: Mapping[str, Any] | None = None, map_location: str | torch.device = "cpu",
                    strict: bool = True, revision: str | None = None) -> PolicyModule:
    """Rebuild a pretrained policy for a new dataset and load its weights, ready for ``trainer.fit``.

    Args:
        path: a robolearn export folder (``<run>/checkpoints/pretrained_model``), a lerobot ``pretrained_model``
            folder, or a Hugging Face Hub model id of either format (e.g. ``lerobot/smolvla_base``; see
            :func:`robolearn.policies.pretrained.resolve_pretrained_path`).
        features: the new dataset's ``{key: PolicyFeature or {type, shape}}`` (injected by ``train.py``).
        stats: the new dataset's statistics ``{key: {mean, std, min, max, ...}}``; they become the normalizer.
        overrides: constructor kwargs replacing the checkpoint's. A mapping merges into a mapping-valued kwarg key by
            key (``{"peft": {"r": 16}}`` keeps the other ``peft`` entries), unless it has a ``_target_`` (a Hydra
            node, which replaces it). Top-level values that are Hydra nodes (``_target_``) are instantiated.
        map_location: device of the returned policy.
        strict: if True, a checkpoint tensor that the rebuilt policy lacks (renamed, unexpected) or a policy tensor
            that the checkpoint lacks (other than LoRA adapters and normalizer buffers) raises; if False they are
            logged and skipped (as ``torch``'s ``load_state_dict(strict=False)``). Shape mismatches always raise.
        revision: Hub revision when ``path`` is a Hub id.
    Returns:
        The policy in train mode on ``map_location``: hyper-parameters from the checkpoint plus ``overrides``,
        ``features``/normalizer from the new dataset, all other weights from the checkpoint; ``requires_grad`` as
        the class sets it (with ``peft.r > 0``: only the adapters and ``modules_to_save``).
    Raises:
        FileNotFoundError: no such folder/Hub repo, or no ``config.yaml``/``config.json``/``model.safetensors``.
        ValueError: ``stats`` is None, or ``overrides`` names ``features``/``stats`` or an argument the policy class
            does not take (the message lists the accepted ones); :class:`FinetuneMismatchError` (a ``ValueError``)
            for missing, unexpected or reshaped tensors; ``LerobotFormatError`` (a ``ValueError``) for an
            unsupported lerobot checkpoint.
        KeyError: the new ``stats`` lack a statistic that the normalizer needs for one of ``features``.
    """
    from robolearn.policies.weights_file import load_weights

    from robolearn.policies import lerobot_compat
    from robolearn.policies.pretrained import (WEIGHTS_NAME, pretrained_format, read_robolearn_config,
                                               resolve_pretrained_path)

    if stats is None:
        raise ValueError("finetune_policy needs the new dataset's stats (train.py injects datamodule.stats); got None")
    folder = resolve_pretrained_path(path, revision=revision)
    if pretrained_format(folder) == "lerobot":
        cls, kwargs, old_features, _, weights = lerobot_compat.read_lerobot_checkpoint(folder)
    else:
        cls, kwargs, old_features = read_robolearn_config(folder)
        weights = load_weights(folder / WEIGHTS_NAME)
    source = str(folder / WEIGHTS_NAME)
    kwargs = apply_overrides(cls, kwargs, overrides)
    old_features, new_features = coerce_features(old_features), coerce_features(features)
    differences = feature_differences(old_features, new_features)
    if differences:
        log.info("fine-tuning %s on features that differ from the checkpoint's: %s", cls.__qualname__,
                 "; ".join(differences))
    policy = cls(features=new_features, stats=stats, **kwargs)
    load_finetune_weights(policy, weights, source, strict=strict, feature_diff=differences)
    return policy.to(map_location).train()


def apply_overrides(cls: type, kwargs: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The checkpoint's constructor ``kwargs`` with ``overrides`` merged in and Hydra nodes instantiated.

    The optimizer convention (:class:`~robolearn.policies.base.PolicyModule`: an ``optimizer``/``lr_scheduler`` node
    replaces the arguments in ``cls.optimizer_hparams``/``cls.lr_scheduler_hparams``) is kept across the merge:

    - ``overrides`` sets ``optimizer`` (``lr_scheduler``): the checkpoint's values of those arguments are dropped
      (the class defaults apply), since the new node replaces them;
    - ``overrides`` sets one of those arguments: the checkpoint's ``optimizer`` (``lr_scheduler``) node is dropped,
      so the policy's own optimizer (scheduler) uses the new value;
    - a checkpoint written before the convention holds both a node and non-default arguments (its node trained, the
      arguments were ignored): the node is kept and the arguments are dropped.

    Setting both a node and one of its arguments in ``overrides`` is left to the constructor, which raises.

    Raises:
        ValueError: ``overrides`` sets ``features``/``stats`` (they come from the new dataset) or a name that
            ``cls.__init__`` does not accept.
    """
    from hydra.utils import instantiate

    overrides = to_primitive(overrides) if overrides is not None else {}
    if not isinstance(overrides, Mapping):
        raise ValueError(f"policy.overrides must be a mapping of constructor arguments, got {overrides!r}")
    injected = sorted({"features", "stats"} & set(overrides))
    if injected:
        raise ValueError(f"policy.overrides cannot set {injected}: they come from the new dataset")
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = sorted(n for n in params if n not in ("self", "features", "stats"))
        unknown = sorted(set(overrides) - set(accepted))
        if unknown:
            raise ValueError(f"policy.overrides: {cls.__qualname__} has no argument(s) {unknown}; accepted: {accepted}")
    out = _drop_replaced_training_settings(cls, dict(kwargs), overrides)
    for key, value in overrides.items():
        base = out.get(key, params[key].default if key in params else None)
        out[key] = _merge(base, value)
    for key, value in out.items():
        if isinstance(value, Mapping) and "_target_" in value:
            out[key] = instantiate(value)
    return out


def _drop_replaced_training_settings(cls: type, kwargs: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` (the checkpoint's) without the optimizer/scheduler settings that ``overrides`` replace; see
    :func:`apply_overrides`."""
    defaults = cls.optimizer_hparam_defaults() if hasattr(cls, "optimizer_hparam_defaults") else {}
    for node, names in (("optimizer", getattr(cls, "optimizer_hparams", ())),
                        ("lr_scheduler", getattr(cls, "lr_scheduler_hparams", ()))):
        if overrides.get(node) is not None:
            dropped = [n for n in names if kwargs.pop(n, None) is not None]
            if dropped:
                log.info("fine-tune: policy.overrides.%s replaces the checkpoint's %s", node, dropped)
        elif any(n in overrides for n in names):
            if kwargs.pop(node, None) is not None:
                log.info("fine-tune: policy.overrides sets %s, so the checkpoint's %s node is dropped",
                         sorted(n for n in names if n in overrides), node)
        elif kwargs.get(node) is not None:
            stale = [n for n in names if n in kwargs and to_primitive(kwargs[n]) != defaults.get(n)]
            for n in stale:
                kwargs.pop(n)
            if stale:
                log.info("fine-tune: the checkpoint's %s node trained it; its %s values are dropped", node, stale)
    return kwargs


def _merge(base: Any, update: Any) -> Any:
    """``update`` merged into ``base`` key by key when both are mappings and ``update`` is not a Hydra node."""
    if isinstance(base, Mapping) and isinstance(update, Mapping) and "_target_" not in update:
        merged = dict(base)
        for key, value in update.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return update


def feature_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between the checkpoint's and the new dataset's features (``PolicyFeature`` maps):
    keys only in one of them, and keys whose type or shape changed."""
    out = [f"{k}: only in the checkpoint {tuple(old[k].shape)}" for k in sorted(set(old) - set(new))]
    out += [f"{k}: only in the new dataset {tuple(new[k].shape)}" for k in sorted(set(new) - set(old))]
    for key in sorted(set(old) & set(new)):
        a, b = old[key], new[key]
        if a.type is not b.type or tuple(a.shape) != tuple(b.shape):
            out.append(f"{key}: {a.type.value} {tuple(a.shape)} in the checkpoint, {b.type.value} {tuple(b.shape)} "
                       f"in the new dataset")
    return out


def map_checkpoint_names(ours: Mapping[str, Tensor], theirs: Mapping[str, Tensor]) -> tuple[dict[str, str], list[str]]:
    """Match checkpoint tensor names to the policy's.

    A name present in both maps to itself; ``<m>.<p>`` maps to ``<m>.base_layer.<p>`` when peft wrapped module
    ``<m>`` in the policy (LoRA added by the fine-tuning ``overrides``). Normalizer buffers of the checkpoint are
    not mapped (the new statistics replace them).

    Returns:
        ``({checkpoint name: policy name}, [checkpoint names matching nothing])``.
    """
    wrapped = {k.replace(PEFT_BASE_LAYER, ".", 1): k for k in ours if PEFT_BASE_LAYER in k}
    mapping, unexpected = {}, []
    for name in theirs:
        if name.startswith(NORMALIZER_PREFIX):
            continue
        if name in ours:
            mapping[name] = name
        elif name in wrapped and wrapped[name] not in theirs:
            mapping[name] = wrapped[name]
        else:
            unexpected.append(name)
    return mapping, sorted(unexpected)


def load_finetune_weights(policy: PolicyModule, weights: Mapping[str, Tensor], source: str, strict: bool = True,
                          feature_diff: list[str] | None = None) -> dict[str, int]:
    """Copy the checkpoint ``weights`` (robolearn names) into ``policy``, keeping its normalizer and new LoRA adapters.

    Args:
        policy: the rebuilt policy (normalizer from the new statistics).
        weights: ``{name: tensor}`` of the checkpoint, in robolearn's names.
        source: the weights file, for messages.
        strict: see :func:`finetune_policy`.
        feature_diff: :func:`feature_differences` output, appended to a shape-mismatch message.
    Returns:
        Counts ``{"loaded", "normalizer", "new_adapters"}``.
    Raises:
        FinetuneMismatchError: reshaped tensors (always), or missing/unexpected ones (with ``strict``), by name.
    """
    ours = policy.state_dict()
    mapping, unexpected = map_checkpoint_names(ours, weights)
    loaded = set(mapping.values())
    new_adapters = sorted(k for k in ours if LORA_MARK in k and k not in loaded)
    missing = sorted(k for k in ours if k not in loaded and not k.startswith(NORMALIZER_PREFIX) and LORA_MARK not in k)
    reshaped = [f"{theirs} {tuple(weights[theirs].shape)} in the checkpoint vs {name} {tuple(ours[name].shape)} in "
                f"the policy" for theirs, name in sorted(mapping.items())
                if tuple(weights[theirs].shape) != tuple(ours[name].shape)]
    if reshaped:
        hint = ("; features that differ from the checkpoint's: " + "; ".join(feature_diff)) if feature_diff else ""
        raise FinetuneMismatchError(
            f"{source}: {len(reshaped)} tensor(s) have another shape in {type(policy).__qualname__} rebuilt for the "
            f"new dataset (layers sized by a feature or by a hyper-parameter override cannot reuse the checkpoint's): "
            f"{reshaped}{hint}")
    if missing or unexpected:
        parts = ([f"checkpoint tensors the policy does not have (renamed?): {unexpected}"] if unexpected else []) + \
                ([f"policy tensors missing from the checkpoint: {missing}"] if missing else [])
        message = f"{source} does not match {type(policy).__qualname__}: " + "; ".join(parts)
        if strict:
            raise FinetuneMismatchError(message)
        log.warning("%s (strict=False: skipped)", message)
    state = dict(ours)
    state.update({name: weights[theirs] for theirs, name in mapping.items()})
    policy.load_state_dict(state, strict=True)
    counts = {"loaded": len(mapping), "normalizer": sum(k.startswith(NORMALIZER_PREFIX) for k in ours),
              "new_adapters": len(new_adapters)}
    log.info("fine-tune: %d tensors from %s; %d normalizer buffers from the new dataset statistics; %d new LoRA "
             "adapter tensors at peft's initialization", counts["loaded"], source, counts["normalizer"],
             counts["new_adapters"])
    return counts
