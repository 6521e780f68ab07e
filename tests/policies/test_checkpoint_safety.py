"""A checkpoint's config.yaml is data: loading or fine-tuning a hostile checkpoint never runs code named in it, never
resolves its interpolations, and the refusal names the file and the key (robolearn.policies.checkpoint_config)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from robolearn.policies.checkpoint_config import UntrustedConfigError
from robolearn.policies.finetune import finetune_policy
from robolearn.policies.pretrained import load_policy, save_pretrained
from tests.eval.helpers import PUSHT_DS, TINY_ACT
from tests.policies.test_finetune import ACT_RUN_CONFIG, PUSHT_FEATURES, _compose, _stats, _train_overrides

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def act_export(tmp_path_factory) -> Path:
    from robolearn.policies.act import ACTPolicy

    torch.manual_seed(0)
    policy = ACTPolicy(PUSHT_FEATURES, _stats(PUSHT_FEATURES, offset=0.0), **TINY_ACT)
    return save_pretrained(policy.eval(), tmp_path_factory.mktemp("act") / "pretrained_model", ACT_RUN_CONFIG)


def _hostile_copy(export: Path, tmp_path: Path, edit) -> Path:
    """A copy of ``export`` whose config.yaml ``edit(config)`` changed (the weights stay valid)."""
    folder = tmp_path / "hostile" / "pretrained_model"
    shutil.copytree(export, folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    edit(config)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _marker_command(marker: Path) -> dict:
    """A Hydra node that, if instantiated, creates ``marker`` (arbitrary code execution)."""
    return {"_target_": "os.system", "command": f"touch {marker}"}


def test_the_export_itself_loads_and_finetunes(act_export):
    assert type(load_policy(act_export)).__name__ == "ACTPolicy"
    policy = finetune_policy(act_export, PUSHT_FEATURES, _stats(PUSHT_FEATURES, offset=1.0))
    opt = policy.optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.AdamW)


def test_optimizer_node_that_runs_code_is_refused_by_finetune_and_train_py(act_export, shared_datasets, tmp_path):
    marker = tmp_path / "pwned"

    def edit(config):
        config["policy"]["optimizer"] = _marker_command(marker)

    hostile = _hostile_copy(act_export, tmp_path, edit)
    with pytest.raises(UntrustedConfigError, match=r"policy\.optimizer\._target_ = 'os.system'") as err:
        finetune_policy(hostile, PUSHT_FEATURES, _stats(PUSHT_FEATURES, offset=1.0))
    assert str(hostile / "config.yaml") in str(err.value)
    # The attack: torch.load with weights_only false, through `train.py policy=finetune policy.path=<dir>`.
    torch.save({"x": 1}, tmp_path / "payload.pt")

    def edit_torch_load(config):
        config["policy"]["lr_scheduler"] = {"_target_": "torch.load", "f": str(tmp_path / "payload.pt"),
                                            "weights_only": False}

    hostile2 = _hostile_copy(act_export, tmp_path / "2", edit_torch_load)
    sys.path.insert(0, str(REPO))
    import train as train_script

    cfg = _compose("train", _train_overrides(hostile2, shared_datasets / PUSHT_DS, tmp_path / "run", ["dry_run=true"]))
    with pytest.raises(Exception, match=r"policy\.lr_scheduler\._target_ = 'torch.load' is not allowed"):
        train_script.train(cfg)
    assert not marker.exists()


@pytest.mark.parametrize("target", ["os.system", "robolearn.policies.finetune.finetune_policy", "builtins.eval",
                                    "robolearn.policies.base.to_primitive", "robolearn.policies.act.ACTPolicy; rm"])
def test_policy_target_must_be_a_robolearn_policy_class(act_export, tmp_path, target):
    hostile = _hostile_copy(act_export, tmp_path, lambda c: c["policy"].__setitem__("_target_", target))
    with pytest.raises(UntrustedConfigError, match=r"policy\._target_"):
        load_policy(hostile)


def test_nested_nodes_and_hydra_keys_are_refused_wherever_they_are(act_export, tmp_path):
    marker = tmp_path / "pwned"

    def nested(config):
        config["policy"]["optimizer"]["betas"] = [0.9, _marker_command(marker)]

    with pytest.raises(UntrustedConfigError, match=r"policy\.optimizer\.betas\[1\]\._target_"):
        finetune_policy(_hostile_copy(act_export, tmp_path / "a", nested), PUSHT_FEATURES,
                        _stats(PUSHT_FEATURES, offset=1.0))

    def args_key(config):
        config["policy"]["optimizer"]["_args_"] = [1]

    with pytest.raises(UntrustedConfigError, match=r"policy\.optimizer\._args_"):
        load_policy(_hostile_copy(act_export, tmp_path / "b", args_key))
    assert not marker.exists()


def test_interpolations_are_refused_not_resolved(act_export, tmp_path):
    def edit(config):
        config["policy"]["n_action_steps"] = "${oc.env:HOME}"
        config["policy"]["dim_model"] = "${range:0,1000000000}"

    hostile = _hostile_copy(act_export, tmp_path, edit)
    with pytest.raises(UntrustedConfigError, match=r"key 'policy\.(n_action_steps|dim_model)' holds an interpolation"):
        load_policy(hostile)


def test_config_that_is_not_yaml_data_names_the_file(act_export, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(act_export, folder)
    (folder / "config.yaml").write_text("policy: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(UntrustedConfigError, match=str(folder / "config.yaml")):
        load_policy(folder)
