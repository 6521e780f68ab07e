"""The README's benchmark table is the one generated from benchmarks/results/ (benchmarks/readme_table.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("_bench_readme_table", REPO / "benchmarks" / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_matches_the_results_files():
    """A results file changed without regenerating the README (or the README edited by hand) fails here."""
    module = _module()
    text = (REPO / "README.md").read_text()
    assert module.render(text) == text, "run python benchmarks/readme_table.py --update-readme"


def test_every_results_file_has_a_row_with_its_commit():
    module = _module()
    table = module.table()
    for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        commit = json.loads(path.read_text())["source"]["commit"][:7]
        assert f"[{commit}](benchmarks/results/{path.name})" in table


def test_unknown_missing_and_malformed_results_are_named(tmp_path: Path):
    module = _module()
    results = tmp_path / "results"
    shutil.copytree(REPO / "benchmarks" / "results", results)
    (results / "new_benchmark.json").write_text("{}")
    with pytest.raises(ValueError, match=r"no README row formatter for \['new_benchmark'\]"):
        module.table(results)
    (results / "new_benchmark.json").unlink()

    (results / "rtc.json").unlink()
    with pytest.raises(ValueError, match=r"results files \['rtc'\] are missing"):
        module.table(results)
    shutil.copy(REPO / "benchmarks" / "results" / "rtc.json", results / "rtc.json")

    record = json.loads((results / "inference.json").read_text())
    del record["results"]["act"]
    (results / "inference.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"inference\.json: cannot read KeyError\('act'\)"):
        module.table(results)


def test_render_needs_the_markers():
    module = _module()
    with pytest.raises(ValueError, match="markers"):
        module.render("# a README without the benchmark markers\n")
    text = f"head\n{module.BEGIN}\nold table\n{module.END}\ntail\n"
    new = module.render(text)
    assert new.startswith(f"head\n{module.BEGIN}\n| benchmark | result | measured at |") and new.endswith(
        f"{module.END}\ntail\n") and "old table" not in new


def test_train_step_row_gives_the_bf16_chunk_ratio_where_measured():
    module = _module()
    rows = [{"case": "diffusion", "threads": 1, "metric": "train_step", "ratio": 0.3},
            {"case": "diffusion", "threads": 1, "metric": "select_action_chunk", "ratio": 1.08}]
    record = {"batch_size": 8, "results": rows}
    assert "quantize=bf16" not in module._train_step_vs_lerobot(record)[1]  # not measured: no cell
    rows.append({"case": "diffusion", "threads": 1, "metric": "select_action_chunk_bf16", "ratio": 0.25,
                 "ratio_vs_lerobot_fp32": 0.48})
    cell = module._train_step_vs_lerobot(record)[1]
    assert cell == ("diffusion: train step ×0.30, new chunk ×1.08, new chunk with `policy.quantize=bf16` ×0.48 of "
                    "lerobot's float32 (×0.25 of its `use_amp` autocast)")
