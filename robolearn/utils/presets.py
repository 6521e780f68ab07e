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

    The file's Hydra ``defaults`` list is not followed (a preset written as a delta of another is read as its own
    keys only). Interpolations between keys (ACT's ``n_action_steps: ${.chunk_size}``) are resolved after the
    overrides, so ``preset_kwargs(act_yaml, chunk_size=4)`` gives 4-step chunks executed whole.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such preset file")
    node = OmegaConf.load(path)
    if not OmegaConf.is_dict(node):
        raise ValueError(f"{path}: a preset must be a mapping of argument names to values, got {type(node).__name__}")
    node.pop("defaults", None)
    return OmegaConf.to_container(OmegaConf.merge(node, overrides), resolve=True)
