"""Read a policy size preset from a config file, for code that builds policies in Python (tests, benchmarks).

The small sizes of each policy family are written once, in ``conf/debug_presets/policy/smoke/<policy>.yaml`` (what
``debug=smoke`` and ``policy=act_tiny`` compose); Python callers take them from there instead of retyping them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def preset_kwargs(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """The keys of the preset yaml ``path`` as constructor keyword arguments, with ``overrides`` applied on top.

    The file's Hydra ``defaults`` entries that name another preset (``smoke/pi0@_here_``, ``_self_`` last) are read
    first and this file's keys merged over them, as Hydra composes them (``smoke/pi05.yaml`` is π0's small size plus
    its own keys); an entry is looked up next to the file, then in the config group above it. Interpolations between keys (ACT's ``n_action_steps: ${.chunk_size}``) are resolved after the
    overrides, so ``preset_kwargs(act_yaml, chunk_size=4)`` gives 4-step chunks executed whole.

    Raises:
        FileNotFoundError: ``path`` or a preset its ``defaults`` name does not exist.
        ValueError: the file does not hold a mapping, or a ``defaults`` entry is not a preset name.
    """
    node = _load_preset(Path(path))
    return OmegaConf.to_container(OmegaConf.merge(node, overrides), resolve=True)


def _load_preset(path: Path, _seen: tuple[Path, ...] = ()) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such preset file")
    if path.resolve() in _seen:
        raise ValueError(f"{path}: presets name each other in a cycle: {[str(p) for p in _seen]}")
    node = OmegaConf.load(path)
    if not OmegaConf.is_dict(node):
        raise ValueError(f"{path}: a preset must be a mapping of argument names to values, got {type(node).__name__}")
    bases = []
    for entry in node.pop("defaults", None) or []:
        if entry == "_self_":
            continue
        if not isinstance(entry, str):
            raise ValueError(f"{path}: defaults entry {entry!r} is not a preset name (e.g. smoke/pi0@_here_)")
        name = entry.split("@", 1)[0]
        candidates = [path.parent / f"{name}.yaml", path.parent.parent / f"{name}.yaml"]
        base = next((c for c in candidates if c.is_file()), None)
        if base is None:
            raise FileNotFoundError(f"{path}: defaults entry {entry!r} names no preset file "
                                    f"(looked for {[str(c) for c in candidates]})")
        bases.append(_load_preset(base, (*_seen, path.resolve())))
    return OmegaConf.merge(*bases, node) if bases else node
