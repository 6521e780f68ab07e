"""MultiLeRobotDataModule on two real state-only datasets with different state/action widths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.datamodules.multi import MultiLeRobotDataModule, merge_stats

REPO = Path(__file__).resolve().parents[2]
SO101, TOY = "SamueleSandrini__record-test", "jovaldivieso__csvil__data_lerobot_dataset"  # 6/6-d and 4/2-d


def _dm(shared, **kw):
    return MultiLeRobotDataModule([{"repo_id": "a", "root": shared / SO101, "weight": 3.0},
                                   {"repo_id": "b", "root": shared / TOY, "weight": 1.0}],
                                  batch_size=8, num_workers=0, **kw)


def test_merge_stats_hand_computed():
    a = {"x": {"mean": np.array([1.0, 2.0]), "std": np.array([1.0, 1.0]), "min": np.array([0.0, 1.0]),
               "max": np.array([2.0, 3.0]), "q50": np.array([1.0, 2.0])}}
    b = {"x": {"mean": np.array([3.0]), "std": np.array([1.0]), "min": np.array([-1.0]), "max": np.array([5.0]),
               "q50": np.array([5.0])}}
    m = merge_stats([a, b], [1, 3], {"x": 2})["x"]
    # dim 0: mean (1*1 + 3*3)/4 = 2.5; E[x^2] = (1*(1+1) + 3*(1+9))/4 = 8; var = 8 - 6.25 = 1.75. dim 1: source a only.
    np.testing.assert_allclose(m["mean"], [2.5, 2.0])
    np.testing.assert_allclose(m["std"], [np.sqrt(1.75), 1.0], rtol=1e-6)
    np.testing.assert_allclose(m["min"], [-1.0, 1.0])
    np.testing.assert_allclose(m["max"], [5.0, 3.0])
    np.testing.assert_allclose(m["q50"], [(1 + 15) / 4, 2.0])
    assert m["count"].tolist() == [4]
    with pytest.raises(ValueError, match="different shapes"):
        merge_stats([a, b], [1, 3], {})


def test_features_padding_masks_and_merged_stats(shared_datasets):
    dm = _dm(shared_datasets)
    assert {k: f.shape for k, f in dm.features.items()} == {"action": (6,), "observation.state": (6,)}
    stats = dm.stats
    ra = json.loads((shared_datasets / SO101 / "meta" / "stats.json").read_text())
    rb = json.loads((shared_datasets / TOY / "meta" / "stats.json").read_text())
    na, nb = dm.frame_counts
    assert (na, nb) == (1492, 2510)
    for d in range(2):  # action dims both sources have
        mean = (na * ra["action"]["mean"][d] + nb * rb["action"]["mean"][d]) / (na + nb)
        second = (na * (ra["action"]["std"][d] ** 2 + ra["action"]["mean"][d] ** 2)
                  + nb * (rb["action"]["std"][d] ** 2 + rb["action"]["mean"][d] ** 2)) / (na + nb)
        np.testing.assert_allclose(stats["action"]["mean"][d], mean, rtol=1e-5)
        np.testing.assert_allclose(stats["action"]["std"][d], np.sqrt(second - mean ** 2), rtol=1e-4)
        assert stats["action"]["max"][d] == np.float32(max(ra["action"]["max"][d], rb["action"]["max"][d]))
    for d in range(2, 6):  # only the SO-101 dataset has them
        np.testing.assert_allclose(stats["action"]["mean"][d], ra["action"]["mean"][d], rtol=1e-6)
        np.testing.assert_allclose(stats["action"]["std"][d], ra["action"]["std"][d], rtol=1e-4)
    dm.set_delta_indices({"action": [0, 1, 2]})
    dm.setup("fit")
    toy_item = dm.train_dataset[len(dm._train_parts[0])]  # first item of the toy dataset
    assert toy_item["dataset_index"].item() == 1 and isinstance(toy_item["task"], str)
    assert toy_item["observation.state"].shape == (6,) and toy_item["action"].shape == (3, 6)
    assert toy_item["observation.state_dim_mask"].tolist() == [True] * 4 + [False] * 2
    assert toy_item["action_dim_mask"].tolist() == [True] * 2 + [False] * 4
    assert (toy_item["observation.state"][4:] == 0).all() and (toy_item["action"][:, 2:] == 0).all()
    assert dm.train_dataset[0]["action_dim_mask"].all()
    batch = next(iter(dm.train_dataloader()))
    assert batch["action"].shape == (8, 3, 6) and len(batch["task"]) == 8


def test_sampling_weights_and_pad_to(shared_datasets):
    dm = _dm(shared_datasets, pad_to={"observation.state": 32}, samples_per_epoch=4000)
    assert dm.features["observation.state"].shape == (32,)
    assert dm.stats["observation.state"]["std"][10] == 1.0 and dm.stats["observation.state"]["mean"][10] == 0.0
    w = dm.sample_weights()
    n0 = len(dm._train_parts[0])
    assert torch.isclose(w[:n0].sum(), torch.tensor(3.0, dtype=torch.float64))
    assert torch.isclose(w[n0:].sum(), torch.tensor(1.0, dtype=torch.float64))
    drawn = torch.tensor(list(iter(dm.train_dataloader().sampler)))
    assert abs((drawn < n0).double().mean().item() - 0.75) < 0.03


def test_errors(shared_datasets):
    with pytest.raises(KeyError, match="observation.nope"):
        _ = MultiLeRobotDataModule([{"repo_id": "a", "root": shared_datasets / TOY,
                                     "rename": {"observation.nope": "x"}}]).features
    with pytest.raises(ValueError, match="unknown key"):
        MultiLeRobotDataModule([{"repo_id": "a", "root": shared_datasets / TOY, "wieght": 1}])
    with pytest.raises(ValueError, match="narrower"):
        _ = _dm(shared_datasets, pad_to={"action": 3}).features


def test_conf_dataset_multi_instantiates(shared_datasets, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from robolearn.utils.schema import register_schemas

    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "dataset=multi", f"paths.shared_dir={shared_datasets.parent}",
                                          f"paths.root_dir={tmp_path}", "dataset.num_workers=0"])
    dm = instantiate(cfg.dataset)
    assert isinstance(dm, MultiLeRobotDataModule) and dm.features["action"].shape == (6,)
