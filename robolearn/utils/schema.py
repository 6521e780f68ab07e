"""Config schemas derived from constructor signatures.

Hyperparameter defaults live once, in each class's typed ``__init__``. ``conf/policy/<name>.yaml``
holds only ``_target_`` and the values it tunes. So that every constructor argument can still be
overridden from the command line without ``+`` (``python train.py policy.chunk_size=50``) and a typo
is an error rather than a silently ignored key, this module turns a constructor signature into a
Hydra ``ConfigStore`` node holding all its defaults; a yaml pulls it in with
``defaults: [/schema/policy/<name>@_here_, _self_]``.

The schemas are registered for every yaml in the given config groups that names a ``_target_``;
no registry is kept in code. Deriving them imports every target (all policy families: torch, transformers,
diffusers, timm ...), so the result is cached on disk and a later start imports only what it runs.
"""

from __future__ import annotations

import enum
import hashlib
import importlib.util
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import yaml
from hydra.core.config_store import ConfigStore
from hydra.utils import get_object

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Bump when the cached node format or signature_defaults' rules change.
CACHE_FORMAT = 1
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


def _group_targets(groups: Iterable[str], conf_dir: Path) -> dict[str, tuple[str, bytes]]:
    """``{"<group>/<name>": (target, yaml bytes)}`` for each ``conf/<group>/<name>.yaml`` naming a ``_target_``."""
    found: dict[str, tuple[str, bytes]] = {}
    for group in groups:
        for path in sorted((conf_dir / group).glob("*.yaml")):
            raw = path.read_bytes()
            data = yaml.safe_load(raw) or {}
            target = data.get("_target_") if isinstance(data, dict) else None
            if isinstance(target, str):
                found[f"{group}/{path.stem}"] = (target, raw)
    return found


def _stat_line(path: Path) -> str:
    st = path.stat()
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n"


def cache_key(targets: dict[str, tuple[str, bytes]]) -> str:
    """SHA-256 over everything the schemas depend on: the yaml files, every ``.py`` file of the robolearn package
    (path, size, modification time) and, for a target outside robolearn (``lightning.pytorch.Trainer``), its
    top-level package's ``__init__`` file (rewritten by an upgrade). Found without importing anything."""
    h = hashlib.sha256(f"{CACHE_FORMAT}\n".encode())
    for name, (target, raw) in sorted(targets.items()):
        h.update(f"{name}\0{target}\0{hashlib.sha256(raw).hexdigest()}\n".encode())
    h.update("".join(_stat_line(p) for p in sorted(PACKAGE_DIR.rglob("*.py"))).encode())
    for top in sorted({t.split(".", 1)[0] for t, _ in targets.values()} - {PACKAGE_DIR.name}):
        spec = importlib.util.find_spec(top)
        origin = Path(spec.origin) if spec is not None and spec.origin and spec.origin != "built-in" else None
        h.update((_stat_line(origin) if origin is not None and origin.is_file() else f"{top}\0missing\n").encode())
    return h.hexdigest()


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robolearn" / "config_schemas"


def _read_cache(path: Path, targets: dict[str, tuple[str, bytes]]) -> dict[str, dict[str, Any]]:
    """The cached nodes of ``path`` that still match their yaml's target; {} for a missing or unreadable file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    nodes = data.get("schemas") if isinstance(data, dict) else None
    if not isinstance(nodes, dict):
        return {}
    return {name: node for name, node in nodes.items()
            if name in targets and isinstance(node, dict) and node.get("_target_") == targets[name][0]}


def _write_cache(path: Path, nodes: dict[str, dict[str, Any]]) -> None:
    """Write ``nodes`` atomically and drop this conf tree's older cache files; a read-only home only loses speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": CACHE_FORMAT, "schemas": nodes}))
        os.replace(tmp, path)
        prefix = path.name.split("-", 1)[0]
        for old in path.parent.glob(f"{prefix}-*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as e:
        log.debug("config schema cache not written to %s: %s", path, e)


def register_schemas(groups: Iterable[str] = ("policy", "dataset", "trainer"), conf_dir: Path = CONF_DIR,
                     cache_dir: Path | None | bool = None) -> list[str]:
    """Store ``schema/<group>/<name>`` in Hydra's ConfigStore for each ``conf/<group>/<name>.yaml``, and register the
    OmegaConf resolvers the conf/ tree uses (:mod:`robolearn.utils.resolvers`): everything needed to compose it.

    The nodes come from :func:`signature_defaults`, cached as JSON in ``cache_dir`` (default
    ``$XDG_CACHE_HOME/robolearn/config_schemas``; ``False``: no cache) under :func:`cache_key`, so an unchanged
    install composes without importing the targets. A cached node is used only if its ``_target_`` is the yaml's.

    Returns the registered names (``"policy/act"``, ...). A yaml whose target fails to import is
    skipped with a warning (and not cached), so a missing optional dependency of one policy does not break the
    others (composing that policy then fails with Hydra's "could not find schema" error naming it).
    """
    from robolearn.utils.resolvers import register_resolvers

    register_resolvers()
    conf_dir, groups = Path(conf_dir), tuple(groups)
    targets = _group_targets(groups, conf_dir)
    cache_path = None
    if cache_dir is not False:
        tree = hashlib.sha256(f"{conf_dir.resolve()}\0{sorted(groups)}".encode()).hexdigest()[:16]
        cache_path = Path(cache_dir or _default_cache_dir()) / f"{tree}-{cache_key(targets)}.json"
    cached = _read_cache(cache_path, targets) if cache_path is not None else {}
    nodes: dict[str, dict[str, Any]] = {}
    for name, (target, _) in targets.items():
        if name in cached:
            nodes[name] = cached[name]
            continue
        try:
            nodes[name] = signature_defaults(target)
        except ImportError as e:  # optional dependency missing
            log.warning("no config schema for %s (%s): %s", conf_dir / f"{name}.yaml", target, e)
    if cache_path is not None and nodes != cached:
        _write_cache(cache_path, nodes)
    cs = ConfigStore.instance()
    for name, node in nodes.items():
        group, stem = name.split("/", 1)
        cs.store(group=f"schema/{group}", name=stem, node=node)
    return list(nodes)
