"""Export a trained policy to a self-contained folder and load it back.

Folder layout (``pretrained_model/``):

- ``config.yaml``: the resolved run config (when given) whose ``policy`` node carries ``_target_``, every
  constructor hyper-parameter and the ``features`` (``{key: {type, shape}}``);
- ``model.safetensors``: the full state dict, normalizer statistics included;
- ``stats.json``: the normalization statistics, ``{feature: {stat: nested list}}``, for other tools;
- ``provenance.json``: the run's provenance record, when given.

A policy trained with LoRA adapters is written with its adapters (default) or with them merged into the base
weights (``lora="merged"``; ``config.yaml`` then also holds ``lora_export``). :mod:`robolearn.policies.hub` pushes
such a folder to a Hub model repo.

``load_policy`` rebuilds the module from ``config.yaml`` and loads ``model.safetensors`` strictly. It also
reads lerobot ``pretrained_model`` folders (``config.json`` + processors; see
:mod:`robolearn.policies.lerobot_compat`) and Hugging Face Hub model ids of either format.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from robolearn.policies.base import PolicyModule, to_primitive

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"
STATS_NAME = "stats.json"
PROVENANCE_NAME = "provenance.json"

# Constructor arguments that only matter for training and are not needed to rebuild the policy.
_TRAINING_ONLY = ("optimizer", "lr_scheduler", "stats")
# How save_pretrained writes a policy trained with LoRA adapters (policy.peft.r > 0).
LORA_EXPORT_MODES = ("adapters", "merged")


def policy_config(policy: PolicyModule, run_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config written to ``config.yaml``: ``run_config`` with its ``policy`` node completed by
    ``_target_``, the policy's hyper-parameters and ``features``.

    When the run config's ``policy._target_`` is not the policy's class (a factory such as
    :func:`robolearn.policies.finetune.finetune_policy` built it), that node moves to ``policy_factory`` and
    ``policy`` holds only the class's ``_target_``, hyper-parameters and ``features``, so that
    :func:`load_policy` can rebuild it."""
    config = to_primitive(dict(run_config)) if run_config is not None else {}
    node = dict(config.get("policy") or {})
    cls = type(policy)
    if not _targets_class(node.get("_target_"), cls):
        # Built by a factory (e.g. robolearn.policies.finetune.finetune_policy): its arguments are not the class's;
        # keep them for provenance and rebuild the node from the hyper-parameters alone.
        config["policy_factory"] = node
        node = {}
    node["_target_"] = f"{cls.__module__}.{cls.__qualname__}"
    for key, value in policy.hparams.items():
        node[key] = to_primitive(value)
    node["features"] = {k: f.to_dict() for k, f in policy.features.items()}
    config["policy"] = node
    return config


def _targets_class(target: Any, cls: type) -> bool:
    """True if ``target`` is absent or names ``cls`` (or a base of it), e.g. ``robolearn.policies.act.ACTPolicy``."""
    if target is None:
        return True
    from hydra.utils import get_object

    try:
        obj = get_object(str(target))
    except Exception:  # noqa: BLE001 - an unimportable target cannot be the class
        return False
    return isinstance(obj, type) and issubclass(cls, obj)


def merged_lora_export(policy: PolicyModule, config: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and config of ``policy`` with its LoRA adapters folded into the base weights.

    ``config`` is :func:`policy_config`'s output; the returned copy has ``policy.peft.r = 0`` (so
    :func:`load_policy` builds the plain model, whose keys the merged state dict has) and a top-level
    ``lora_export: {mode: merged, peft: <the merged adapters' settings>}`` recording what was merged. A policy
    without active adapters (no ``peft`` argument, or ``peft.r = 0``) is returned unchanged.

    Returns:
        ``(state dict, config)``; see :func:`robolearn.policies.vla.lora.merged_lora_state_dict`.
    """
    from robolearn.policies.vla.lora import lora_enabled, merged_lora_state_dict

    peft = to_primitive(policy.hparams.get("peft"))
    if not lora_enabled(peft):
        return policy.state_dict(), config
    config = dict(config)
    config["policy"] = {**config["policy"], "peft": {**peft, "r": 0}}
    config["lora_export"] = {"mode": "merged", "peft": peft}
    return merged_lora_state_dict(policy), config


def _owning_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` on the CPU, each tensor contiguous and the sole owner of its storage (what safetensors writes).

    Only tensors that need it are copied: views into a larger storage and tensors sharing a storage (tied weights);
    a plain parameter is written from its own memory, so exporting a model does not hold a second copy of it.
    """
    out, seen = {}, set()
    for k, v in state.items():
        t = v.detach().cpu().contiguous()
        storage = t.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() != t.nbytes or t.storage_offset() != 0:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def save_pretrained(policy: PolicyModule, directory: str | os.PathLike, config: Mapping[str, Any] | None = None,
                    provenance: Mapping[str, Any] | None = None, lora: str = "adapters") -> Path:
    """Write ``config.yaml``, ``model.safetensors``, ``stats.json`` (and ``provenance.json``) into ``directory``,
    atomically.

    The files are written into a temporary sibling folder which then replaces ``directory`` by renames, so
    an interrupted export leaves either the previous folder or the new one, never a half-written one.

    Args:
        policy: the module to export (its current weights; swap EMA weights in before calling if wanted).
        directory: target folder, created or replaced.
        config: the resolved run config (plain dict or DictConfig) or ``None``.
        provenance: the run's provenance record (:mod:`robolearn.utils.provenance`: commit, dataset fingerprint,
            hardware, versions, command), written as ``provenance.json`` when given.
        lora: for a policy trained with LoRA (``peft.r > 0``): ``"adapters"`` writes the base weights and the
            adapters as they are (``<m>.base_layer.*``, ``<m>.lora_A/B.*``; ``config.yaml`` keeps ``peft``, so
            :func:`load_policy` re-injects the adapters), ``"merged"`` folds them into the base weights
            (:func:`merged_lora_export`: a plain model, ``peft.r = 0``, loadable without peft and convertible to
            lerobot's format). Policies without adapters are written the same either way.
    Returns:
        The folder path.
    Raises:
        ValueError: ``lora`` is not one of :data:`LORA_EXPORT_MODES`.
    """
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    if lora not in LORA_EXPORT_MODES:
        raise ValueError(f"save_pretrained: lora={lora!r} is not one of {list(LORA_EXPORT_MODES)}")
    exported = policy_config(policy, config)
    state = policy.state_dict()
    if lora == "merged":
        state, exported = merged_lora_export(policy, exported)
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        OmegaConf.save(OmegaConf.create(exported), tmp / CONFIG_NAME)
        state = _owning_tensors(state)
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "robolearn_policy": type(policy).__name__})
        with open(tmp / STATS_NAME, "w") as fh:
            json.dump(policy.normalizer.stats_dict(), fh, indent=2)
        if provenance is not None:
            with open(tmp / PROVENANCE_NAME, "w") as fh:
                json.dump(dict(provenance), fh, indent=2, default=str)
        old = None
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{os.getpid()}-{id(tmp)}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def resolve_pretrained_path(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder, or the snapshot of a Hub model repo (``huggingface_hub.snapshot_download``).

    An existing local path wins. A string that is not one and looks like ``owner/name`` (or ``name``) is
    downloaded (or taken from the Hub cache; with ``HF_HUB_OFFLINE=1`` only the cache). A folder that contains
    ``pretrained_model/`` but no config (a lerobot checkpoint step folder) resolves to that subfolder.

    Raises:
        FileNotFoundError: neither a local folder nor a reachable/cached Hub repo (the cause is in the message).
    """
    path = Path(path_or_repo_id)
    if not path.exists():
        text = str(path_or_repo_id)
        looks_like_repo = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text) is not None and not text.startswith((".", "/"))
        if not looks_like_repo:
            raise FileNotFoundError(f"{text}: no such folder, and not a Hugging Face Hub repo id (owner/name)")
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(repo_id=text, repo_type="model", revision=revision))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as e:
            offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
            hint = " (HF_HUB_OFFLINE is set and the repo is not in the local Hub cache)" if offline else ""
            raise FileNotFoundError(
                f"{text}: no such local folder, and the Hub model repo could not be fetched{hint}: "
                f"{type(e).__name__}: {e}") from e
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder (expected a pretrained-policy folder)")
    if not (path / CONFIG_NAME).is_file() and not (path / "config.json").is_file() and (path / "pretrained_model").is_dir():
        path = path / "pretrained_model"
    return path


def load_policy(path: str | os.PathLike, map_location: str | torch.device = "cpu", strict: bool = True,
                revision: str | None = None, overrides: Mapping[str, Any] | None = None,
                quantize: str | None = "none") -> PolicyModule:
    """Rebuild a saved policy (in eval mode, on ``map_location``) from a folder or a Hub model id.

    ``overrides`` replaces saved constructor arguments that do not change the weights, for inference ablations:
    e.g. ``{"noise_scheduler_type": "DDPM", "num_inference_steps": 100}`` for a Diffusion policy, or
    ``{"n_action_steps": 1, "temporal_ensemble_coeff": 0.01}`` for ACT
    (``python eval.py policy.path=<dir> 'policy.overrides={num_inference_steps: 100}'``). Each key must be an
    argument the saved config already holds, and the weights must still load (``strict``).

    Accepted: a folder written by :func:`save_pretrained` (``config.yaml``), a lerobot ``pretrained_model``
    folder (``config.json`` with ``"type"``; loaded by :func:`robolearn.policies.lerobot_compat.load_lerobot_policy`,
    always strictly), or a Hub repo id holding either (see :func:`resolve_pretrained_path`; ``revision`` is
    the Hub revision). The backbone is built without downloading pretrained weights (they are in
    ``model.safetensors``).

    ``quantize`` (``"none"``, ``"bf16"``, ``"int8_weight_only"``, ``"int8_dynamic"``; ``python eval.py
    policy.path=<dir> policy.quantize=bf16``) runs any policy's linear and convolution layers in bfloat16, or
    quantizes a SmolVLA/π0/π0.5's transformer linears to int8, once the weights are loaded, for inference
    (:func:`robolearn.policies.quantize.quantize_policy`).

    Raises:
        FileNotFoundError: no such folder/repo, or neither ``config.yaml`` nor ``config.json`` in it, or
            ``model.safetensors`` missing.
        KeyError: the robolearn config has no ``policy._target_``.
        RuntimeError: the weights do not match the rebuilt module (robolearn format, with ``strict``).
        ValueError: (``LerobotFormatError``) unsupported lerobot type/config value, or missing/renamed tensors,
            named in the message; an ``overrides`` key the saved config does not hold, or overrides given for a
            lerobot-format folder; an unknown ``quantize`` mode (the valid ones are listed) or an int8 mode for a
            policy that is not a VLA.
    """
    from robolearn.policies.quantize import check_mode, quantize_policy
    from robolearn.policies.weights_file import load_weights

    quantize = check_mode(quantize)
    path = resolve_pretrained_path(path, revision=revision)
    overrides = dict(overrides or {})
    if pretrained_format(path) == "lerobot":
        from robolearn.policies.lerobot_compat import load_lerobot_policy

        if overrides:
            raise ValueError(f"{path}: overrides {sorted(overrides)} apply to robolearn-format folders "
                             "(config.yaml), not to lerobot's config.json")
        return quantize_policy(load_lerobot_policy(path, map_location=map_location), quantize)
    cls, kwargs, features = read_robolearn_config(path)
    for key in _TRAINING_ONLY:
        kwargs.pop(key, None)
    unknown = sorted(set(overrides) - set(kwargs))
    if unknown:
        raise ValueError(f"{path / CONFIG_NAME}: overrides {unknown} are not arguments of the saved "
                         f"{cls.__name__} config; it holds {sorted(kwargs)}")
    kwargs.update(overrides)
    policy = cls(features=features, stats=None, **kwargs)
    state = load_weights(path / WEIGHTS_NAME, device=str(map_location))
    policy.load_state_dict(state, strict=strict)
    return quantize_policy(policy.to(map_location).eval(), quantize)


def pretrained_format(path: Path) -> str:
    """``"robolearn"`` (``config.yaml``) or ``"lerobot"`` (``config.json`` with a ``type``) for a resolved folder.

    Raises:
        FileNotFoundError: neither config file is in ``path``.
    """
    if (path / CONFIG_NAME).is_file():
        return "robolearn"
    from robolearn.policies.lerobot_compat import is_lerobot_folder

    if is_lerobot_folder(path):
        return "lerobot"
    raise FileNotFoundError(
        f"{path} has neither {CONFIG_NAME} (robolearn) nor a lerobot config.json with a 'type'; "
        f"found {sorted(p.name for p in path.iterdir())}")


def read_robolearn_config(path: Path) -> tuple[type[PolicyModule], dict[str, Any], dict[str, Any]]:
    """``(policy class, constructor kwargs, features)`` from the ``config.yaml`` of a :func:`save_pretrained` folder.

    The config is untrusted data (:mod:`robolearn.policies.checkpoint_config`): it is never resolved, its
    ``policy._target_`` must be one of robolearn's policy classes, and the only Hydra nodes kept among the kwargs are
    optimizers and schedulers. The kwargs are the ``policy`` node without ``_target_``, ``_partial_``, ``features``
    and ``stats``; training settings (``optimizer``/``lr_scheduler`` nodes, when the run config had them) are kept,
    and ``pretrained_backbone_weights`` is set to None (the weights are in ``model.safetensors``).

    Raises:
        FileNotFoundError: ``model.safetensors`` missing beside the config.
        KeyError: the config has no ``policy._target_`` or no ``policy.features``.
        UntrustedConfigError: (a ``ValueError``) an interpolation, a class outside ``robolearn.policies`` or a node
            that builds anything but an optimizer/scheduler; the message names the file and the key.
    """
    from robolearn.policies.checkpoint_config import check_nodes, load_untrusted_config, policy_class

    if not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{path / WEIGHTS_NAME} not found (expected a folder written by save_pretrained)")
    source = str(path / CONFIG_NAME)
    config = load_untrusted_config(path / CONFIG_NAME)
    node = config.get("policy")
    node = dict(node) if isinstance(node, dict) else {}
    if "_target_" not in node:
        raise KeyError(f"{source} has no policy._target_")
    if "features" not in node:
        raise KeyError(f"{source} has no policy.features")
    cls = policy_class(node.pop("_target_"), source)
    node.pop("_partial_", None)
    node.pop("stats", None)
    features = node.pop("features")
    for key, value in node.items():
        check_nodes(value, source, f"policy.{key}")
    if "pretrained_backbone_weights" in node:
        node["pretrained_backbone_weights"] = None
    return cls, node, features
