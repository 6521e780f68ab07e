"""Fine-tuning a whole pretrained policy (robolearn.policies.finetune, conf/policy/finetune.yaml): ACT exported by
robolearn and a tiny SmolVLA in lerobot format, fine-tuned through train.py on the lerobot-written PushT dataset,
exported, reloaded and evaluated; mismatching checkpoints fail with the tensor and feature names."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.presets import smoke_policy_kwargs
from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies.finetune import FinetuneMismatchError, apply_overrides, finetune_policy
from robolearn.policies.pretrained import load_policy, save_pretrained
from tests.eval.helpers import PUSHT_DS, TINY_ACT
from tests.compose import compose_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PUSHT_FEATURES = {"observation.image": PolicyFeature(FT.VISUAL, (3, 96, 96)),
                  "observation.state": PolicyFeature(FT.STATE, (2,)),
                  "action": PolicyFeature(FT.ACTION, (2,)),
                  "next.reward": PolicyFeature(FT.REWARD, (1,))}
# The run config a train.py export carries: its optimizer node is carried over by fine-tuning.
ACT_RUN_CONFIG = {"policy": {"_target_": "robolearn.policies.act.ACTPolicy",
                             "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-4}}}


def _stats(features, offset: float, seed: int = 0) -> dict:
    """Synthetic statistics, clearly unlike the PushT dataset's (means around ``offset``)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, f in features.items():
        shape = (f.shape[0], 1, 1) if f.type is FT.VISUAL else f.shape
        mean = (offset + rng.normal(size=shape)).astype(np.float32)
        std = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        out[key] = {"mean": mean, "std": std, "min": mean - 3 * std, "max": mean + 3 * std}
    return out


def _stat(policy, key: str, stat: str) -> torch.Tensor:
    return torch.tensor(policy.normalizer.stats_dict()[key][stat]).flatten()


def _weights(policy) -> dict[str, torch.Tensor]:
    return {k: v for k, v in policy.state_dict().items() if not k.startswith("normalizer.")}


def _train_a_little(policy, steps: int = 2) -> None:
    """A few optimizer steps on random PushT-shaped batches so the exported weights are not the initialization."""
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
    chunk = policy.hparams["chunk_size"]
    batch = {"observation.image": torch.rand(2, 3, 96, 96, generator=g),
             "observation.state": 100 * torch.randn(2, 2, generator=g),
             "action": 100 * torch.randn(2, chunk, 2, generator=g),
             "action_is_pad": torch.zeros(2, chunk, dtype=torch.bool)}
    policy.train()
    for _ in range(steps):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="module")
def act_export(tmp_path_factory) -> Path:
    """A tiny ACT trained on other data (other statistics), exported like train.py's ExportPretrained does."""
    from robolearn.policies.act import ACTPolicy

    torch.manual_seed(0)
    policy = ACTPolicy(PUSHT_FEATURES, _stats(PUSHT_FEATURES, offset=50.0), **TINY_ACT)
    _train_a_little(policy)
    return save_pretrained(policy.eval(), tmp_path_factory.mktemp("act") / "pretrained_model", ACT_RUN_CONFIG)


def _compose(config: str, overrides: list[str]):
    return compose_config(config, overrides, set_hydra=True, no_experiment=True)


def _train_overrides(ckpt: Path, data: Path, out: Path, extra: list[str] = ()) -> list[str]:
    return ["dataset=local", f"dataset.root={data}", "dataset.num_workers=0", "dataset.batch_size=2",
            "dataset.val_fraction=0.2", "policy=finetune", f"policy.path={ckpt}", "trainer=smoke",
            "trainer.max_steps=2", "trainer.val_check_interval=2", "logger=none", f"paths.root_dir={out}",
            f"paths.output_dir={out / 'run'}", *extra]


def _eval(model: Path, out: Path) -> dict:
    """``python eval.py policy.path=<model> env=pusht eval.n_episodes=1`` (3 env steps), in this process."""
    sys.path.insert(0, str(REPO))
    import eval as eval_script

    cfg = _compose("eval", [f"policy.path={model}", "env=pusht", "eval.n_episodes=1", "eval.batch_size=1",
                            "env.max_episode_steps=3", "eval.max_episodes_rendered=0", "eval.progress=false",
                            "env.make.visualization_width=96", "env.make.visualization_height=96",
                            f"paths.output_dir={out}"])
    return eval_script.run_eval(cfg)


# ---------------------------------------------------------------------------------------------- ACT via train.py
def test_act_finetune_through_train_py_exports_and_evaluates(act_export, shared_datasets, tmp_path):
    sys.path.insert(0, str(REPO))
    import train as train_script

    from robolearn.policies.act import ACTPolicy

    data = shared_datasets / PUSHT_DS
    checkpoint = load_policy(act_export)
    # dry_run: the policy as train.py hands it to trainer.fit.
    dry = ["dry_run=true", "+policy.overrides.n_action_steps=2"]
    cfg = _compose("train", _train_overrides(act_export, data, tmp_path / "dry", dry))
    _, policy, dm = train_script.train(cfg)
    assert type(policy) is ACTPolicy and policy.training
    assert policy.hparams["dim_model"] == TINY_ACT["dim_model"] and policy.n_action_steps == 2
    assert policy.hparams["chunk_size"] == checkpoint.hparams["chunk_size"]
    assert policy.delta_indices == checkpoint.delta_indices == {"action": list(range(TINY_ACT["chunk_size"]))}
    assert dm.delta_timestamps == {"action": [i / dm.fps for i in range(TINY_ACT["chunk_size"])]}
    ours, theirs = _weights(policy), _weights(checkpoint)
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), "non-normalizer weights must be the checkpoint's"
    # The normalizer holds the new dataset's statistics, not the checkpoint's.
    for key, stat in (("observation.state", "mean"), ("action", "std"), ("observation.image", "mean")):
        expected = torch.as_tensor(np.asarray(dm.stats[key][stat]), dtype=torch.float32).flatten()
        assert torch.allclose(_stat(policy, key, stat), expected), (key, stat)
        assert not torch.allclose(_stat(policy, key, stat), _stat(checkpoint, key, stat)), (key, stat)
    # The checkpoint's optimizer node (AdamW lr 3e-4) is carried over.
    opt = policy.optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == 3e-4

    # Two real steps; ExportPretrained writes a folder load_policy and eval.py read.
    cfg = _compose("train", _train_overrides(act_export, data, tmp_path))
    trainer, policy, _ = train_script.train(cfg)
    assert trainer.global_step == 2
    exported = tmp_path / "run" / "checkpoints" / "pretrained_model"
    reloaded = load_policy(exported)
    assert all(torch.equal(v, policy.state_dict()[k].cpu()) for k, v in reloaded.state_dict().items())
    from omegaconf import OmegaConf

    saved = OmegaConf.load(exported / "config.yaml")
    assert saved.policy_factory._target_ == "robolearn.policies.finetune.finetune_policy"
    assert saved.policy_factory.path == str(act_export)
    info = _eval(exported, tmp_path / "eval")
    assert info["n_episodes"] == 1 and [e["length"] for e in info["per_episode"]] == [3]


# ---------------------------------------------------------------------------------------------- SmolVLA + LoRA
SMOL_TINY = smoke_policy_kwargs("smolvla")


def test_smolvla_lerobot_checkpoint_lora_finetune_exports_and_evaluates(shared_datasets, tmp_path):
    sys.path.insert(0, str(REPO))
    import train as train_script

    from robolearn.policies import save_lerobot_pretrained
    from robolearn.policies.smolvla import SmolVLAPolicy
    from robolearn.policies.smolvla.tiny import write_tiny_smolvlm

    vlm = write_tiny_smolvlm(tmp_path / "vlm", image_size=32)
    # A "base" checkpoint for another robot: 6-d state/action, a differently named camera.
    base_features = {"observation.images.camera1": PolicyFeature(FT.VISUAL, (3, 24, 32)),
                     "observation.state": PolicyFeature(FT.STATE, (6,)), "action": PolicyFeature(FT.ACTION, (6,))}
    torch.manual_seed(0)
    base = SmolVLAPolicy(base_features, _stats(base_features, offset=5.0), vlm_model_name=str(vlm),
                         load_vlm_weights=True, **SMOL_TINY)
    with torch.no_grad():  # make the checkpoint's weights differ from any fresh initialization
        for p in base.parameters():
            p.add_(0.01)
    ckpt = save_lerobot_pretrained(base, tmp_path / "smolvla_base")
    assert (ckpt / "config.json").is_file() and not (ckpt / "config.yaml").exists()

    extra = ["policy.overrides={peft: {r: 4, modules_to_save: [state_proj]}}"]
    data = shared_datasets / PUSHT_DS
    cfg = _compose("train", _train_overrides(ckpt, data, tmp_path / "dry", [*extra, "dry_run=true"]))
    _, policy, dm = train_script.train(cfg)
    assert type(policy) is SmolVLAPolicy and policy.hparams["peft"]["r"] == 4
    assert policy.features["observation.state"].shape == (2,) and "observation.image" in policy.features
    assert policy.delta_indices == {"action": [0, 1, 2, 3]}
    assert dm.delta_timestamps == {"action": [i / dm.fps for i in range(4)]}
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("model.state_proj.") for n in trainable), \
        "only LoRA adapters and modules_to_save train"
    assert "model.state_proj.base_layer.weight" in trainable
    assert "model.action_in_proj.base_layer.weight" not in trainable
    assert any("lm_expert.layers.0.self_attn.q_proj.lora_A" in n for n in trainable)
    # Base weights equal the checkpoint's (peft's base_layer holds the wrapped weight); adapters start at lora_B = 0.
    theirs = load_file(str(ckpt / "model.safetensors"))
    ours = policy.state_dict()
    for name, value in theirs.items():
        module, _, param = name.rpartition(".")
        mapped = name if name in ours else f"{module}.base_layer.{param}"  # a LoRA-wrapped linear
        assert torch.equal(ours[mapped], value), name
    assert all(torch.count_nonzero(v) == 0 for k, v in ours.items() if "lora_B" in k)
    obs = {"observation.image": torch.rand(1, 3, 96, 96), "observation.state": torch.randn(1, 2), "task": ["push"],
           "noise": torch.randn(1, 4, 6)}
    assert torch.isfinite(policy.eval().predict_action_chunk(obs)).all()

    # Two steps with LoRA, then the export loads with load_policy (adapters included) and evaluates on PushT.
    cfg = _compose("train", _train_overrides(ckpt, data, tmp_path, extra))
    trainer, policy, _ = train_script.train(cfg)
    assert trainer.global_step == 2
    exported = tmp_path / "run" / "checkpoints" / "pretrained_model"
    reloaded = load_policy(exported)
    assert reloaded.hparams["peft"]["r"] == 4
    assert all(torch.equal(v, policy.state_dict()[k].cpu()) for k, v in reloaded.state_dict().items())
    assert any(torch.count_nonzero(v) for k, v in reloaded.state_dict().items() if "lora_B" in k), "adapters trained"
    info = _eval(exported, tmp_path / "eval")
    assert info["n_episodes"] == 1 and [e["length"] for e in info["per_episode"]] == [3]


# ---------------------------------------------------------------------------------------------- errors
def test_renamed_or_missing_tensor_names_the_keys(act_export, tmp_path):
    import shutil

    stats = _stats(PUSHT_FEATURES, offset=0.0, seed=1)
    sd = load_file(str(act_export / "model.safetensors"))
    key = "model.action_head.weight"
    assert key in sd
    renamed = shutil.copytree(act_export, tmp_path / "renamed")
    save_file({("model.action_head_renamed.weight" if k == key else k): v for k, v in sd.items()},
              str(renamed / "model.safetensors"))
    renamed_then_missing = r"model\.action_head_renamed\.weight.*missing.*model\.action_head\.weight"
    with pytest.raises(FinetuneMismatchError, match=renamed_then_missing):
        finetune_policy(renamed, PUSHT_FEATURES, stats)
    relaxed = finetune_policy(renamed, PUSHT_FEATURES, stats, strict=False)  # logged and skipped
    assert torch.equal(relaxed.state_dict()["model.action_head.bias"], sd["model.action_head.bias"])

    missing = shutil.copytree(act_export, tmp_path / "missing")
    save_file({k: v for k, v in sd.items() if k != key}, str(missing / "model.safetensors"))
    with pytest.raises(FinetuneMismatchError, match=r"missing from the checkpoint: \['model\.action_head\.weight'\]"):
        finetune_policy(missing, PUSHT_FEATURES, stats)


def test_other_action_dim_names_tensors_and_features(act_export):
    features = {**PUSHT_FEATURES, "action": PolicyFeature(FT.ACTION, (3,))}
    with pytest.raises(FinetuneMismatchError) as err:
        finetune_policy(act_export, features, _stats(features, offset=0.0))
    message = str(err.value)
    d = TINY_ACT["dim_model"]
    assert f"model.action_head.weight (2, {d}) in the checkpoint vs model.action_head.weight (3, {d})" in message
    assert "action: ACTION (2,) in the checkpoint, ACTION (3,) in the new dataset" in message


def test_overrides_merge_validate_and_instantiate():
    from robolearn.policies.smolvla import SmolVLAPolicy

    kwargs = {"peft": {"r": 0, "lora_alpha": 16, "target_modules": None}, "chunk_size": 8,
              "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}}
    out = apply_overrides(SmolVLAPolicy, kwargs, {"peft": {"r": 8}, "n_action_steps": 4})
    assert out["peft"] == {"r": 8, "lora_alpha": 16, "target_modules": None} and out["n_action_steps"] == 4
    assert isinstance(out["optimizer"]([torch.nn.Parameter(torch.zeros(1))]), torch.optim.SGD)
    adam = {"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}}
    replaced = apply_overrides(SmolVLAPolicy, kwargs, adam)
    assert isinstance(replaced["optimizer"]([torch.nn.Parameter(torch.zeros(1))]), torch.optim.Adam)
    assert apply_overrides(SmolVLAPolicy, {}, {"peft": {"r": 4}})["peft"]["lora_dropout"] == 0.0  # class default kept
    with pytest.raises(ValueError, match=r"no argument\(s\) \['chunk_sise'\]"):
        apply_overrides(SmolVLAPolicy, kwargs, {"chunk_sise": 4})
    with pytest.raises(ValueError, match="come from the new dataset"):
        apply_overrides(SmolVLAPolicy, kwargs, {"stats": {}})


def test_finetune_config_composes_with_overrides():
    cfg = _compose("train", ["policy=finetune", "policy.path=lerobot/smolvla_base", "policy.overrides={peft: {r: 16}}"])
    assert cfg.policy._target_ == "robolearn.policies.finetune.finetune_policy"
    assert cfg.policy.overrides.peft.r == 16 and cfg.policy.strict is True
