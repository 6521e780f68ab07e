"""Config schemas derived from constructor signatures.

Hyperparameter defaults live once, in each class's typed ``__init__``. ``conf/policy/<name>.yaml``
holds only ``_target_`` and the values it tunes. So that every constructor argument can still be
overridden from the command line without ``+`` (``python train.py policy.chunk_size=50``) and a typo
is an error rather than a silently ignored key, this module turns a constructor signature into a
Hydra ``ConfigStore`` node holding all its defaults; a yaml pulls it in with
``defaults: [/schema/policy/<name>@_here_, _self_]``.

The schemas are registered for every yaml in the given config groups that names a ``_target_``;
no registry is kept in code.
"""

from __future__ import annotations

import enum
import inspect
import logging
from pathlib import Path
from typing import Any, Iterable

import yaml
from hydra.core.config_store import ConfigStore
from hydra.utils import get_object

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# Arguments injected by train.py (data facts, loggers, callbacks), never set in the node itself.
INJECTED_ARGS = frozenset({"self", "features", "stats", "logger", "callbacks"})


def _to_config_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_to_config_value(v) for v in value]
    if isinstance(value, list):
        return [_to_config_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_config_value(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"default {value!r} cannot be written in a config")


def signature_defaults(target: str) -> dict[str, Any]:
    """Return ``{arg: default}`` for the keyword arguments of ``target``'s constructor.

    Arguments without a default (other than the injected ``features``/``stats``) map to ``"???"``
    (OmegaConf's mandatory value). ``**kwargs`` / ``*args`` are skipped.

    Raises:
        TypeError: when a default cannot be represented in a config (e.g. an arbitrary object).
    """
    obj = get_object(target)
    fn = obj.__init__ if inspect.isclass(obj) else obj
    node: dict[str, Any] = {"_target_": target}
    for name, p in inspect.signature(fn).parameters.items():
        if name in INJECTED_ARGS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            node[name] = "???"
        else:
            try:
                node[name] = _to_config_value(p.default)
            except TypeError as e:
                raise TypeError(f"{target}: argument '{name}': {e}") from e
    return node


def register_schemas(groups: Iterable[str] = ("policy", "dataset", "trainer"), conf_dir: Path = CONF_DIR) -> list[str]:
    """Store ``schema/<group>/<name>`` in Hydra's ConfigStore for each ``conf/<group>/<name>.yaml``, and register the
    OmegaConf resolvers the conf/ tree uses (:mod:`robolearn.utils.resolvers`): everything needed to compose it.

    Returns the registered names (``"policy/act"``, ...). A yaml whose target fails to import is
    skipped with a warning, so a missing optional dependency of one policy does not break the others
    (composing that policy then fails with Hydra's "could not find schema" error naming it).
    """
    from robolearn.utils.resolvers import register_resolvers

    register_resolvers()
    cs = ConfigStore.instance()
    done: list[str] = []
    for group in groups:
        for path in sorted((conf_dir / group).glob("*.yaml")):
            with open(path) as f:
                data = yaml.safe_load(f) or {}
            target = data.get("_target_")
            if not isinstance(target, str):
                continue
            try:
                node = signature_defaults(target)
            except ImportError as e:  # optional dependency missing
                log.warning("no config schema for %s (%s): %s", path, target, e)
                continue
            cs.store(group=f"schema/{group}", name=path.stem, node=node)
            done.append(f"{group}/{path.stem}")
    return done
