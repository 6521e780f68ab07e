"""A checkpoint's ``config.yaml`` is data: what robolearn agrees to build from it.

A pretrained-policy folder (local, or downloaded from the Hub) may come from anyone. Hydra's ``instantiate`` on its
config would call whatever ``_target_`` names (``torch.load`` with ``weights_only: false``, ``os.system``, ...), and
resolving its OmegaConf interpolations runs resolvers (``${range:0,1000000000}`` exhausts memory). So:

- the YAML is read with OmegaConf's safe loader and **never resolved**: a string holding an interpolation
  (``${...}``) is refused (robolearn's own exports are written resolved, so they hold none);
- the policy ``_target_`` must name a subclass of :class:`~robolearn.policies.base.PolicyModule` defined in a module
  under ``robolearn.policies`` (robolearn's own code; the name is checked before anything is imported);
- nested Hydra nodes may only build what robolearn's policy configs use: an optimizer class of ``torch.optim``, a
  learning-rate scheduler class of ``torch.optim.lr_scheduler``, or ``diffusers.optimization.get_scheduler``;
- any other ``_target_``, and Hydra's ``_args_``, ``_recursive_`` and ``_convert_`` keys, are refused.

Every refusal raises :class:`UntrustedConfigError` naming the file and the key path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from robolearn.policies.base import PolicyModule

POLICY_MODULE_PREFIX = "robolearn.policies."
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_HYDRA_KEYS_REFUSED = ("_args_", "_recursive_", "_convert_")
# Callables (not classes) that a policy config may name, by exact dotted name.
ALLOWED_FACTORIES = ("diffusers.optimization.get_scheduler",)


class UntrustedConfigError(ValueError):
    """A checkpoint config asks for something robolearn does not build from untrusted data (file and key named)."""


def load_untrusted_config(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint's YAML config as plain data, without resolving it.

    Returns:
        The config as nested dicts/lists of str, int, float, bool and None.
    Raises:
        UntrustedConfigError: the file is not valid YAML, its top level is not a mapping, or a string holds an
            OmegaConf interpolation (``${...}``); the message names the file and the key path.
    """
    from omegaconf import OmegaConf

    path = Path(path)
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # noqa: BLE001 - any parse error of untrusted data is reported, not raised raw
        raise UntrustedConfigError(f"{path}: not a readable YAML config ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(config, dict):
        raise UntrustedConfigError(f"{path}: the top level must be a mapping, got {type(config).__name__}")
    _refuse_interpolations(config, path, "")
    return config


def _refuse_interpolations(value: Any, path: Path, key: str) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _refuse_interpolations(v, path, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_interpolations(v, path, f"{key}[{i}]")
    elif isinstance(value, str) and "${" in value:
        raise UntrustedConfigError(
            f"{path}: key {key!r} holds an interpolation ({value[:80]!r}); checkpoint configs are data and are never "
            "resolved (robolearn writes them resolved)")


def policy_class(target: Any, source: str, key: str = "policy._target_") -> type[PolicyModule]:
    """The policy class that ``target`` names, if it is one of robolearn's.

    Raises:
        UntrustedConfigError: ``target`` is not a dotted name under ``robolearn.policies``, cannot be imported, or is
            not a :class:`~robolearn.policies.base.PolicyModule` subclass.
    """
    name = str(target)
    if not (_DOTTED_NAME.fullmatch(name) and name.startswith(POLICY_MODULE_PREFIX)):
        raise UntrustedConfigError(
            f"{source}: {key} = {name[:120]!r} is not a robolearn policy class (expected robolearn.policies.<...>.<Class>)")
    obj = _import_object(name, source, key)
    if not (isinstance(obj, type) and issubclass(obj, PolicyModule)):
        raise UntrustedConfigError(f"{source}: {key} = {name!r} is not a PolicyModule subclass")
    return obj


def check_nodes(value: Any, source: str, key: str) -> None:
    """Refuse any Hydra node inside ``value`` (a policy's constructor arguments) that builds something other than a
    ``torch.optim`` optimizer, a ``torch.optim.lr_scheduler`` scheduler or an :data:`ALLOWED_FACTORIES` callable.

    Raises:
        UntrustedConfigError: naming the key path of the first refused node or Hydra key.
    """
    if isinstance(value, list):
        for i, v in enumerate(value):
            check_nodes(v, source, f"{key}[{i}]")
        return
    if not isinstance(value, Mapping):
        return
    for hydra_key in _HYDRA_KEYS_REFUSED:
        if hydra_key in value:
            raise UntrustedConfigError(f"{source}: {key}.{hydra_key} is not accepted in a checkpoint config")
    if "_target_" in value:
        _check_target(value["_target_"], source, f"{key}._target_")
    for k, v in value.items():
        if k != "_target_":
            check_nodes(v, source, f"{key}.{k}")


def _check_target(target: Any, source: str, key: str) -> None:
    name = str(target)
    if not _DOTTED_NAME.fullmatch(name):
        raise UntrustedConfigError(f"{source}: {key} = {name[:120]!r} is not a dotted name")
    if name in ALLOWED_FACTORIES:
        return
    module, _, attr = name.rpartition(".")
    if module == "torch.optim":
        obj = getattr(torch.optim, attr, None)
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
            return
    elif module == "torch.optim.lr_scheduler":
        obj = getattr(torch.optim.lr_scheduler, attr, None)
        if isinstance(obj, type) and issubclass(obj, torch.optim.lr_scheduler.LRScheduler):
            return
    raise UntrustedConfigError(
        f"{source}: {key} = {name!r} is not allowed in a checkpoint config (allowed: torch.optim optimizers, "
        f"torch.optim.lr_scheduler schedulers, {', '.join(ALLOWED_FACTORIES)})")


def _import_object(name: str, source: str, key: str) -> Any:
    """Hydra's ``get_object`` for a name already checked to lie under ``robolearn.policies``."""
    from hydra.utils import get_object

    try:
        return get_object(name)
    except Exception as e:  # noqa: BLE001 - Hydra wraps import errors in its own types
        raise UntrustedConfigError(f"{source}: {key} = {name!r} cannot be imported ({str(e)[:200]})") from e
