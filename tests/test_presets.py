"""Presets written once and read as constructor arguments (robolearn.utils.presets.preset_kwargs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from robolearn.utils.presets import preset_kwargs

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "conf" / "debug_presets" / "policy" / "smoke"


def test_a_preset_written_as_a_delta_reads_its_base_first(tmp_path):
    """pi0.5's smoke preset is pi0's (a defaults entry): read through its base, not as the full-size model."""
    pi0, pi05 = preset_kwargs(SMOKE / "pi0.yaml"), preset_kwargs(SMOKE / "pi05.yaml")
    assert pi0 and pi05 == pi0
    group = tmp_path / "policy"
    (group / "smoke").mkdir(parents=True)
    (group / "smoke" / "base.yaml").write_text("width: 8\ndepth: 2\n")
    (group / "smoke" / "child.yaml").write_text("defaults:\n  - smoke/base@_here_\n  - _self_\ndepth: 3\n")
    assert preset_kwargs(group / "smoke" / "child.yaml", width=4) == {"width": 4, "depth": 3}
    (group / "smoke" / "bad.yaml").write_text("defaults:\n  - smoke/missing@_here_\n")
    with pytest.raises(FileNotFoundError, match="smoke/missing"):
        preset_kwargs(group / "smoke" / "bad.yaml")
    (group / "smoke" / "loop.yaml").write_text("defaults:\n  - smoke/loop@_here_\n")
    with pytest.raises(ValueError, match="cycle"):
        preset_kwargs(group / "smoke" / "loop.yaml")
