"""Per-episode stats and their aggregation (lerobot's stats.json layout and rules)."""

import numpy as np
import pytest

from robolearn.datasets.constants import QUANTILE_KEYS
from robolearn.datasets.stats import (
    STAT_KEYS,
    aggregate_stats,
    auto_downsample_height_width,
    compute_episode_stats,
    estimate_num_samples,
    sample_indices,
    stats_from_json,
    stats_to_json,
)

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": None},
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.success": {"dtype": "bool", "shape": [1], "names": None},
    "observation.images.front": {"dtype": "video", "shape": [8, 6, 3], "names": ["height", "width", "channels"]},
    "note": {"dtype": "string", "shape": [1], "names": None},
}


def _episode(rng, n):
    return {
        "observation.state": rng.normal(size=(n, 3)).astype(np.float32),
        "next.reward": rng.random(n).astype(np.float32),
        "next.success": rng.random(n) > 0.5,
        "observation.images.front": rng.integers(0, 256, (n, 8, 6, 3), dtype=np.uint8),
        "note": ["x"] * n,
    }


def test_sampling_rule():
    assert estimate_num_samples(1) == 1
    assert estimate_num_samples(99) == 99
    assert estimate_num_samples(100) == 100
    assert estimate_num_samples(1000) == int(1000**0.75)  # 177
    assert estimate_num_samples(10**7) == 10_000
    idx = sample_indices(1000)
    assert idx[0] == 0 and idx[-1] == 999 and len(idx) == 177 and np.all(np.diff(idx) > 0)
    big = np.zeros((3, 480, 640), np.uint8)
    assert auto_downsample_height_width(big).shape == (3, 120, 160)  # stride int(640 / 150) = 4
    small = np.zeros((3, 96, 96), np.uint8)
    assert auto_downsample_height_width(small) is small


def test_episode_stats_shapes_and_values():
    rng = np.random.default_rng(0)
    ep = _episode(rng, 20)
    st = compute_episode_stats(ep, FEATURES)
    assert "note" not in st
    assert set(st["observation.state"]) == set(STAT_KEYS)
    s = st["observation.state"]
    x = ep["observation.state"].astype(np.float64)
    np.testing.assert_allclose(s["mean"], x.mean(0))
    np.testing.assert_allclose(s["std"], x.std(0))
    np.testing.assert_allclose(s["min"], x.min(0))
    np.testing.assert_allclose(s["q50"], np.quantile(x, 0.5, axis=0))
    assert s["count"].tolist() == [20]
    assert st["next.reward"]["mean"].shape == (1,)
    np.testing.assert_allclose(st["next.success"]["mean"], [ep["next.success"].mean()])
    img = st["observation.images.front"]
    for k in STAT_KEYS:
        assert img[k].shape == ((1,) if k == "count" else (3, 1, 1)), k
    pix = ep["observation.images.front"].astype(np.float64) / 255.0
    np.testing.assert_allclose(img["mean"][:, 0, 0], pix.mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(img["q99"][:, 0, 0], np.quantile(pix.reshape(-1, 3), 0.99, axis=0))
    assert 0.0 <= img["min"].min() and img["max"].max() <= 1.0


def test_single_frame_quantiles_equal_mean():
    st = compute_episode_stats({"observation.state": np.ones((1, 3), np.float32)}, FEATURES)
    for q in QUANTILE_KEYS:
        np.testing.assert_array_equal(st["observation.state"][q], st["observation.state"]["mean"])


def test_aggregate_matches_pooled_data():
    rng = np.random.default_rng(1)
    eps = [_episode(rng, n) for n in (5, 17, 30)]
    per_ep = [compute_episode_stats(e, FEATURES) for e in eps]
    agg = aggregate_stats(per_ep)
    allx = np.concatenate([e["observation.state"] for e in eps]).astype(np.float64)
    a = agg["observation.state"]
    np.testing.assert_allclose(a["mean"], allx.mean(0), rtol=1e-12)
    np.testing.assert_allclose(a["std"], allx.std(0), rtol=1e-10)
    np.testing.assert_allclose(a["min"], allx.min(0))
    np.testing.assert_allclose(a["max"], allx.max(0))
    assert a["count"].tolist() == [52]
    # Quantiles: count-weighted mean of the per-episode quantiles (lerobot 0.6.1 rule).
    w = np.array([5, 17, 30], np.float64)
    expect = sum(wi * s["observation.state"]["q10"] for wi, s in zip(w, per_ep)) / w.sum()
    np.testing.assert_allclose(a["q10"], expect)
    # Camera stats keep their (3, 1, 1) shape.
    assert agg["observation.images.front"]["std"].shape == (3, 1, 1)
    pix = np.concatenate([e["observation.images.front"] for e in eps]).astype(np.float64) / 255
    np.testing.assert_allclose(agg["observation.images.front"]["mean"][:, 0, 0], pix.mean(axis=(0, 1, 2)))
    # Pairwise (running) aggregation equals aggregating everything at once.
    running = aggregate_stats([aggregate_stats(per_ep[:2]), per_ep[2]])
    for k in STAT_KEYS:
        np.testing.assert_allclose(running["observation.state"][k], a[k], rtol=1e-12)


def test_json_round_trip():
    st = compute_episode_stats(_episode(np.random.default_rng(2), 4), FEATURES)
    back = stats_from_json(stats_to_json(st))
    np.testing.assert_allclose(back["observation.images.front"]["mean"], st["observation.images.front"]["mean"])
    assert back["next.reward"]["count"].dtype == np.int64


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="observation.state"):
        compute_episode_stats({"observation.state": np.zeros((2, 3, 4))}, FEATURES)
