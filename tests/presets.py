"""Policy sizes for tests that build policies in Python, read from the config that defines them.

The small sizes live once, in ``conf/debug_presets/policy/smoke/<policy>.yaml`` (what ``debug=smoke`` and
``policy=act_tiny`` use); tests take them from there and override only what they test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robolearn.utils.presets import preset_kwargs

SMOKE_POLICY_DIR = Path(__file__).resolve().parents[1] / "conf" / "debug_presets" / "policy" / "smoke"


def smoke_policy_kwargs(policy: str, **overrides: Any) -> dict[str, Any]:
    """Constructor keyword arguments of ``policy`` (e.g. ``"act"``) at its smoke size, ``overrides`` on top."""
    return preset_kwargs(SMOKE_POLICY_DIR / f"{policy}.yaml", **overrides)
