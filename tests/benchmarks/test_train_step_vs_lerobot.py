"""benchmarks/train_step_vs_lerobot.py at tiny sizes: the robolearn side always, the lerobot side where the lerobot venv
exists (not in CI)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from robolearn.utils import provenance

REPO = Path(__file__).resolve().parents[2]
LEROBOT_PYTHON = "/work/lerobot_venv/bin/python"
TINY = {
    "act": {"dim_model": 32, "dim_feedforward": 64, "n_heads": 2, "chunk_size": 10, "n_action_steps": 10,
            "n_encoder_layers": 1, "n_vae_encoder_layers": 1},
    "diffusion": {"down_dims": [32, 64], "horizon": 8, "n_action_steps": 4, "num_inference_steps": 2,
                  "diffusion_step_embed_dim": 16},
}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("_bench_train_step_vs_lerobot",
                                                  REPO / "benchmarks" / "train_step_vs_lerobot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _args(**kw) -> argparse.Namespace:
    base = dict(batch_size=2, train_steps=2, warmup=1, rounds=2, chunk_calls=2, diffusion_chunk_calls=2, hit_calls=2)
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("case", ["act", "diffusion"])
def test_robolearn_side(bench, case, keep_threads):
    rows = bench.measure_case(case, 1, _args(), None, TINY[case])
    assert [r["metric"] for r in rows] == list(bench.METRICS)
    for r in rows:
        assert r["robolearn_ms"] > 0 and r["lerobot_ms"] is None and r["ratio"] is None
        assert r["n"] == [2, 0] and r["case"] == case and r["threads"] == 1
    bf16 = rows[-1]
    assert bf16["metric"] == "select_action_chunk_bf16" and bf16["ratio_vs_lerobot_fp32"] is None
    assert 0 < bf16["bf16_action_error"] < 0.05  # the bf16 layers compute the float32 function, rounded


def test_training_batch_shapes(bench):
    policy = bench.build_robolearn("diffusion", TINY["diffusion"])
    batch = bench.training_batch(policy, 3)
    assert batch["observation.images.workspace"].shape == (3, 2, 3, 96, 96)
    assert batch["observation.state"].shape == (3, 2, 6)
    assert batch["action"].shape == (3, 8, 4) and batch["action_is_pad"].shape == (3, 8)


def test_dirty_tree_refused(bench, monkeypatch):
    monkeypatch.setattr(provenance, "git_state", lambda path: {"commit": "0" * 40, "dirty": True, "branch": "main",
                                                               "diff_sha256": "0" * 64})
    with pytest.raises(SystemExit) as exc:
        bench.main([])
    assert "--allow-dirty" in str(exc.value.code)


@pytest.mark.skipif(not Path(LEROBOT_PYTHON).exists(), reason="no lerobot venv (measurement machine only)")
def test_both_sides_act(bench, keep_threads):
    rows = bench.measure_case("act", 1, _args(), LEROBOT_PYTHON, TINY["act"])
    for r in rows:
        assert r["lerobot_ms"] > 0 and r["ratio"] > 0 and r["n"] == [2, 2]
    assert rows[0]["params_M_robolearn"] == rows[0]["params_M_lerobot"]  # same architecture on both sides
    bf16 = rows[-1]  # robolearn's bf16 weights vs lerobot's use_amp autocast, and vs lerobot's float32 chunk
    assert bf16["lerobot_fp32_ms"] == rows[1]["lerobot_ms"] and bf16["ratio_vs_lerobot_fp32"] > 0
