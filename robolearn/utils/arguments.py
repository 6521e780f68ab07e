"""Check a config node's values against the annotations of the callable its ``_target_`` names, before Hydra calls it.

``policy.chunk_size=abc`` would otherwise reach ``ACTPolicy.__init__`` as the string ``"abc"`` and fail deep inside
with ``TypeError: '>' not supported between instances of 'str' and 'int'``, naming neither the key nor the expected
type. Only plain annotations are checked (``int``, ``float``, ``bool``, ``str`` and their ``Optional``/``Union``
forms); anything else is left to the callable.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Mapping

_SCALARS = (bool, int, float, str)


class ConfigValueError(TypeError):
    """A config value has the wrong type for the argument it feeds (the message names the key and the type)."""


def _accepts(annotation: Any, value: Any) -> bool | None:
    """True/False when ``annotation`` is a checkable scalar type (or a Union of them), None when it is not."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        verdicts = [_accepts(a, value) for a in typing.get_args(annotation)]
        if any(v is None for v in verdicts):
            return None
        return any(verdicts)
    if annotation is type(None):
        return value is None
    if annotation in _SCALARS:
        if annotation is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if annotation is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, annotation)
    return None


def _type_name(annotation: Any) -> str:
    args = typing.get_args(annotation)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def check_node_arguments(node: Mapping[str, Any], key: str) -> None:
    """Check the scalar values of a Hydra node against the annotations of its ``_target_``.

    Args:
        node: the node as plain data (``OmegaConf.to_container(..., resolve=True)``).
        key: the node's key in the run config, for messages (``"policy"``).
    Raises:
        ConfigValueError: naming ``<key>.<argument>``, the value, the expected type and the target.
    """
    target = node.get("_target_")
    if not target:
        return
    from hydra.utils import get_object

    try:
        obj = get_object(str(target))
        func = obj.__init__ if inspect.isclass(obj) else obj
        hints = typing.get_type_hints(func)
        params = inspect.signature(func).parameters
    except Exception:  # noqa: BLE001 - unresolvable annotations: leave the checking to the callable
        return
    for name, value in node.items():
        if name.startswith("_") or name not in params or name not in hints:
            continue
        if isinstance(value, (Mapping, list)):
            continue
        verdict = _accepts(hints[name], value)
        if verdict is False:
            raise ConfigValueError(
                f"{key}.{name} = {value!r} ({type(value).__name__}): expected {_type_name(hints[name])} "
                f"(argument {name!r} of {target})")
