"""Reward classifier: trained through ``train.py`` on a tiny labelled LeRobotDataset where success is visible (bright
frames succeed, dark frames fail), export/load round trip, label errors, and the no-action contract."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import train as train_script  # noqa: E402
from robolearn.datasets import LeRobotDatasetWriter  # noqa: E402
from robolearn.features import FeatureType, PolicyFeature  # noqa: E402
from robolearn.policies import load_policy  # noqa: E402
from robolearn.policies.reward_classifier import RewardClassifier  # noqa: E402
from robolearn.utils.schema import register_schemas  # noqa: E402

CAM = "observation.images.top"
TINY = ["policy.vision_backbone=test_resnet", "policy.hidden_dim=16", "policy.dropout=0.0", "policy.optimizer_lr=3e-3"]


def _frame(success: bool, rng: np.random.Generator) -> np.ndarray:
    """A noisy 16x16 frame, bright when the task succeeded, dark otherwise (uint8 HWC)."""
    base = 200 if success else 40
    return np.clip(base + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)


def _write_dataset(root: Path, episodes: int = 4, steps: int = 8, reward_only: bool = False,
                   label_shift: int = 0) -> None:
    """Episodes whose second half looks done; ``next.success`` turns True ``label_shift`` frames after the images
    do (-1: one frame before, as a transition's success precedes the observation that shows it)."""
    rng = np.random.default_rng(0)
    feats = {CAM: {"dtype": "image", "shape": [16, 16, 3], "names": ["height", "width", "channels"]},
             "observation.state": {"dtype": "float32", "shape": [2], "names": None},
             "action": {"dtype": "float32", "shape": [2], "names": None},
             "next.reward": {"dtype": "float32", "shape": [1], "names": None}}
    if not reward_only:
        feats["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    w = LeRobotDatasetWriter.create("local/success_frames", 10, feats, root=root, use_videos=False)
    for _ in range(episodes):
        for t in range(steps):
            success = t >= steps // 2  # second half of every episode is "done"
            frame = {CAM: _frame(success, rng), "observation.state": rng.normal(size=2).astype(np.float32),
                     "action": np.zeros(2, np.float32), "next.reward": np.array([float(success)], np.float32),
                     "task": "succeed"}
            if not reward_only:
                frame["next.success"] = np.array([t >= steps // 2 + label_shift])
            w.add_frame(frame)
        w.save_episode()
    w.finalize()


def _cfg(tmp_path: Path, root: Path, extra: list[str]):
    GlobalHydra.instance().clear()
    register_schemas()
    overrides = ["policy=reward_classifier", "dataset=local", "dataset.repo_id=local/success_frames",
                 f"dataset.root={root}", "dataset.num_workers=0", "dataset.batch_size=16", "dataset.val_fraction=0.25",
                 "trainer=smoke", "callbacks.progress_bar=null", f"paths.root_dir={tmp_path}",
                 f"paths.output_dir={tmp_path / 'run'}", *TINY, *extra]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "experiment=none", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def _frames(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = torch.tensor([i % 2 == 1 for i in range(n)])
    images = np.stack([_frame(bool(s), rng) for s in labels])
    obs = {CAM: torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0,
           "observation.state": torch.zeros(n, 2), "action": torch.zeros(n, 2)}
    return obs, labels


def test_trains_through_train_py_above_chance_and_round_trips(tmp_path):
    root = tmp_path / "data"
    _write_dataset(root)
    cfg = _cfg(tmp_path, root, ["trainer.max_steps=30", "trainer.val_check_interval=30", "trainer.limit_val_batches=2"])
    trainer, policy, _ = train_script.train(cfg)
    assert trainer.global_step == 30
    assert "val/accuracy" in trainer.callback_metrics and "train/accuracy" in trainer.callback_metrics
    policy.eval()
    obs, labels = _frames(32, seed=1)
    prob = policy.predict_success(obs)
    assert prob.shape == (32,) and ((prob >= 0) & (prob <= 1)).all()
    accuracy = float(((prob > 0.5) == labels).float().mean())
    print(f"reward classifier held-out accuracy {accuracy:.3f}")
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.2f} on a trivially separable case (chance 0.5)"

    reloaded = load_policy(tmp_path / "run" / "checkpoints" / "pretrained_model")
    assert isinstance(reloaded, RewardClassifier) and not reloaded.training
    assert torch.allclose(reloaded.predict_success(obs), prob, atol=1e-6)
    with pytest.raises(TypeError, match="predict_success"):
        reloaded.select_action(obs)


def test_missing_label_key_fails_before_training_with_the_key_named(tmp_path):
    root = tmp_path / "data"
    _write_dataset(root, episodes=2, steps=4, reward_only=True)
    with pytest.raises(KeyError, match="next.success"):
        train_script.train(_cfg(tmp_path, root, []))
    # a sparse-reward dataset trains with a thresholded reward label instead
    trainer, policy, _ = train_script.train(_cfg(tmp_path, root, ["policy.label_key=next.reward",
                                                                  "policy.label_threshold=0.0", "trainer.max_steps=2"]))
    assert trainer.global_step == 2 and policy.delta_indices == {"next.reward": None}


def test_label_offset_labels_each_frame_with_the_previous_transition(tmp_path):
    """``label_offset=-1``: frame t learns frame t-1's next.success (the success its observation shows); the frame
    before the success, labelled True by its own next.success, is a negative."""
    root = tmp_path / "data"
    _write_dataset(root, label_shift=-1)
    cfg = _cfg(tmp_path, root, ["policy.label_offset=-1", "trainer.max_steps=30", "trainer.val_check_interval=30",
                                "trainer.limit_val_batches=2"])
    trainer, policy, datamodule = train_script.train(cfg)
    assert policy.delta_indices == {"next.success": [-1]}
    first = datamodule.train_dataloader().dataset[0]  # an episode's first frame: its labelling frame is padding
    assert first["next.success_is_pad"].tolist() == [True]
    policy.eval()
    obs, labels = _frames(32, seed=1)
    accuracy = float(((policy.predict_success(obs) > 0.5) == labels).float().mean())
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.2f} with shifted labels (chance 0.5)"
    reloaded = load_policy(tmp_path / "run" / "checkpoints" / "pretrained_model")
    assert reloaded.label_offset == -1


def _policy(**kw) -> RewardClassifier:
    feats = {CAM: PolicyFeature(FeatureType.VISUAL, (3, 16, 16)), "observation.state": PolicyFeature(FeatureType.STATE, (2,)),
             "action": PolicyFeature(FeatureType.ACTION, (2,))}
    stats = {"observation.state": {"mean": np.zeros(2), "std": np.ones(2), "min": -np.ones(2), "max": np.ones(2)}}
    return RewardClassifier(feats, stats, vision_backbone="test_resnet", hidden_dim=8, **kw)


def test_labels_thresholds_and_input_errors():
    policy = _policy(use_state=True)
    assert policy.obs_keys == [CAM, "observation.state"]
    batch = {"next.success": torch.tensor([[True], [False]]), CAM: torch.zeros(2, 3, 16, 16)}
    assert policy.labels(batch).tolist() == [1.0, 0.0]
    with pytest.raises(KeyError, match="next.success"):
        policy.labels({CAM: torch.zeros(2, 3, 16, 16)})
    with pytest.raises(ValueError, match="one value per frame"):
        policy.labels({"next.success": torch.zeros(2, 3), CAM: torch.zeros(2, 3, 16, 16)})
    shifted = _policy(label_offset=-1)
    assert shifted.delta_indices == {"next.success": [-1]}
    padded = {"next.success": torch.tensor([[True], [True], [False]]), CAM: torch.zeros(3, 3, 16, 16),
              "next.success_is_pad": torch.tensor([[True], [False], [False]])}
    assert shifted.labels(padded).tolist() == [0.0, 1.0, 0.0]
    thresholded = _policy(label_key="next.reward", label_threshold=0.5)
    assert thresholded.labels({"next.reward": torch.tensor([0.2, 0.7, 1.0]), CAM: torch.zeros(3, 3, 16, 16)}).tolist() == [0, 1, 1]
    with pytest.raises(KeyError, match="observation.state"):
        policy.predict_success({CAM: torch.zeros(1, 3, 16, 16)})
    with pytest.raises(ValueError, match="not camera features"):
        _policy(image_keys=["observation.images.wrist"])
    with pytest.raises(ValueError, match="success_threshold"):
        _policy(success_threshold=1.0)
    state_only = {"observation.state": PolicyFeature(FeatureType.STATE, (2,)), "action": PolicyFeature(FeatureType.ACTION, (2,))}
    with pytest.raises(ValueError, match="needs a camera"):
        RewardClassifier(state_only, None)
