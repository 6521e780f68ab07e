"""Policies on the Hub (robolearn.policies.hub, model_card, ExportPretrained.push_to_hub): push a tiny ACT export to a
local fake Hub that commits into a Hugging Face cache folder, then ``load_policy("<owner>/<name>")`` offline through
``snapshot_download`` gives the same weights and actions; the model card, re-pushes, bad input and the CLI."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
import yaml

from robolearn.callbacks import ExportPretrained
from robolearn.policies import load_policy, save_lerobot_pretrained, save_pretrained
from robolearn.policies.act import ACTPolicy
from robolearn.policies.hub import main, push_policy, run_eval_info
from robolearn.policies.model_card import model_card, read_eval_info
from robolearn.policies.pretrained import resolve_pretrained_path

from .fake_hub import LocalHub
from .test_lora_export import _obs as lora_obs
from .test_lora_export import lora_policy  # noqa: F401  (fixture)
from .helpers import TINY_ACT, batch, features, loader, observation, stats

RUN_CONFIG = {"seed": 3, "dataset": {"repo_id": "me/pusht_demo", "batch_size": 8},
              "trainer": {"max_steps": 9, "precision": "32-true"},
              "policy": {"optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-4}}}
PROVENANCE = {"time": "2026-01-02T03:04:05+00:00",
              "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False, "branch": "main"},
              "dataset": {"repo_id": "me/pusht_demo", "revision": "v3.0", "total_episodes": 5, "total_frames": 500,
                          "fingerprint": "f" * 64},
              "versions": {"python": "3.11.7", "torch": "2.14.1"}, "hardware": {"cpu": "CPU", "cpus": 2, "gpus": []},
              "argv": ["train.py", "policy=act_tiny"], "host": "somewhere"}
EVAL_INFO = {"env": "pusht", "n_episodes": 10, "seed": 1000, "global_step": 5,
             "aggregated": {"pc_success": 60.0, "pc_success_ci95": [31.3, 83.2], "avg_sum_reward": 12.5,
                            "avg_max_reward": 0.9, "avg_episode_length": 88.0}, "per_episode": []}


@pytest.fixture
def hub(tmp_path, monkeypatch) -> LocalHub:
    """A fake Hub committing into ``tmp_path/hub``, which is also the (offline) cache ``snapshot_download`` reads."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return LocalHub(tmp_path / "hub")


@pytest.fixture
def act(tmp_path):
    torch.manual_seed(0)
    f = features()
    policy = ACTPolicy(f, stats(f), **TINY_ACT).eval()
    folder = save_pretrained(policy, tmp_path / "run" / "checkpoints" / "pretrained_model", RUN_CONFIG, PROVENANCE)
    eval_info = tmp_path / "run" / "eval_info.json"
    eval_info.write_text(json.dumps(EVAL_INFO))
    return policy, folder, eval_info


def _same_policy(p, q) -> None:
    sp, sq = p.state_dict(), q.state_dict()
    assert set(sp) == set(sq) and all(torch.equal(sp[k], sq[k]) for k in sp)
    obs = observation(p.features)
    torch.testing.assert_close(q.predict_action_chunk(obs), p.predict_action_chunk(obs), rtol=0, atol=0)


def test_push_then_load_by_repo_id_offline(hub, act, tmp_path):
    policy, folder, eval_info = act
    commit = push_policy(folder, "me/act_tiny", eval_info=eval_info, step=9, private=True, api=hub)
    assert [name for name, _ in hub.calls] == ["create_repo", "upload_folder"]
    assert hub.calls[0][1] == {"repo_id": "me/act_tiny", "repo_type": "model", "private": True, "exist_ok": True}
    upload = hub.calls[1][1]
    assert upload["repo_type"] == "model" and upload["revision"] is None and upload["delete_patterns"] == "*"
    files = hub.files("me/act_tiny")
    assert sorted(files) == ["README.md", "config.yaml", "eval_info.json", "model.safetensors", "provenance.json",
                             "stats.json"]
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert json.loads(files["eval_info.json"]) == EVAL_INFO

    snapshot = resolve_pretrained_path("me/act_tiny")  # snapshot_download, offline, from the fake Hub's cache
    assert snapshot == tmp_path / "hub" / "models--me--act_tiny" / "snapshots" / commit.oid
    _same_policy(policy, load_policy("me/act_tiny"))

    # A second push is the whole repo: files it does not have (provenance, evaluation) are deleted.
    push_policy(folder, "me/act_tiny", include_provenance=False, api=hub)
    assert sorted(hub.files("me/act_tiny")) == ["README.md", "config.yaml", "model.safetensors", "stats.json"]
    assert "No evaluation was attached" in hub.files("me/act_tiny")["README.md"].decode()
    _same_policy(policy, load_policy("me/act_tiny"))
    # ... and the first commit is still loadable by its hash.
    _same_policy(policy, load_policy("me/act_tiny", revision=commit.oid))

    # A branch.
    push_policy(folder, "me/act_tiny", branch="v1", api=hub)
    assert ("create_branch", {"repo_id": "me/act_tiny", "branch": "v1", "repo_type": "model", "exist_ok": True}) \
        in hub.calls
    _same_policy(policy, load_policy("me/act_tiny", revision="v1"))


def test_policy_path_loads_the_pushed_repo_with_hf_hub_cache_set(hub, act, tmp_path):
    """What a user runs: a new process with HF_HUB_CACHE and HF_HUB_OFFLINE=1 in its environment."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    policy, folder, _ = act
    push_policy(folder, "me/act_tiny", api=hub)
    code = ("import torch; from robolearn.policies import load_policy; p = load_policy('me/act_tiny'); "
            "print(sum(float(v.double().sum()) for v in p.state_dict().values()))")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip()) == sum(float(v.double().sum()) for v in policy.state_dict().values())


def test_lerobot_format_folder_pushes_and_loads(hub, act, tmp_path):
    policy, _, _ = act
    folder = save_lerobot_pretrained(policy, tmp_path / "lerobot")
    push_policy(folder, "me/act_lerobot", api=hub)
    files = hub.files("me/act_lerobot")
    assert "config.json" in files and "policy_preprocessor.json" in files and "config.yaml" not in files
    header = yaml.safe_load(files["README.md"].decode().split("---")[1])
    assert header["library_name"] == "lerobot" and "lerobot" in header["tags"] and "act" in header["tags"]
    _same_policy(policy, load_policy("me/act_lerobot"))


def test_merged_lora_export_through_the_hub(hub, lora_policy, tmp_path):
    folder = save_pretrained(lora_policy, tmp_path / "merged", lora="merged")
    push_policy(folder, "me/smolvla_lora", api=hub)
    readme = hub.files("me/smolvla_lora")["README.md"].decode()
    assert "LoRA adapters (r=4, lora_alpha=8) were merged into the base weights" in readme
    torch.testing.assert_close(load_policy("me/smolvla_lora").predict_action_chunk(lora_obs()),
                               lora_policy.predict_action_chunk(lora_obs()), rtol=0, atol=1e-5)


def test_model_card(act):
    _, folder, eval_info = act
    card = model_card(folder, "me/act_tiny", eval_info=read_eval_info(eval_info), step=9, tags=["pusht"])
    _, head, body = card.split("---", 2)
    header = yaml.safe_load(head)
    assert header["library_name"] == "robolearn" and header["pipeline_tag"] == "robotics"
    assert header["datasets"] == ["me/pusht_demo"] and header["license"] == "apache-2.0"
    assert header["tags"] == ["robotics", "robolearn", "act", "pusht"] and header["model_name"] == "act"
    assert "A `ACTPolicy` (policy type `act`)" in body
    assert 'load_policy("me/act_tiny")' in body and "python eval.py policy.path=me/act_tiny env=pusht" in body
    assert "| `me/pusht_demo` | v3.0 | 5 | 500 | " + "f" * 64 + " |" in body
    assert "| `observation.image` | VISUAL | [3, 32, 32] |" in body
    assert f"| `dim_model` | `{TINY_ACT['dim_model']}` |" in body
    assert "| optimizer steps | 9 (trainer.max_steps 9) |" in body and "| batch size | 8 |" in body
    assert "| optimizer | torch.optim.AdamW (lr 0.0001) |" in body
    assert "| success | 60.0 % (95 % CI 31.3-83.2 %) |" in body and "| avg_sum_reward | 12.500 |" in body
    assert "this evaluation ran at step 5; the uploaded weights are from step 9" in body
    assert "`0123456789abcdef0123456789abcdef01234567`" in body and "train.py policy=act_tiny" in body
    assert "somewhere" not in body  # the host name stays in provenance.json
    bare = model_card(folder, "me/act_tiny", include_provenance=False)
    assert "## Provenance" not in bare and "No evaluation was attached" in bare and "env=<simulator>" in bare


def test_bad_input_is_refused_before_any_hub_call(hub, act, tmp_path):
    _, folder, eval_info = act
    with pytest.raises(ValueError, match="'act_tiny' must be <owner>/<name>"):
        push_policy(folder, "act_tiny", api=hub)
    with pytest.raises(FileNotFoundError, match="neither config.yaml"):
        push_policy(tmp_path, "me/x", api=hub)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        push_policy(tmp_path / "nothing", "me/x", api=hub)
    bad = tmp_path / "bad_eval.json"
    bad.write_text(json.dumps({"aggregated": {}}))
    with pytest.raises(ValueError, match="bad_eval.json.*pc_success"):
        push_policy(folder, "me/x", eval_info=bad, api=hub)
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text().replace(
        "robolearn.policies.act.module.ACTPolicy", "os.system"))
    with pytest.raises(ValueError, match=r"config.yaml: policy._target_ = 'os.system'"):
        push_policy(folder, "me/x", api=hub)
    assert hub.calls == []


def test_cli_card_finds_the_run_eval_and_push_fails_clearly_offline(act, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _, folder, eval_info = act
    assert run_eval_info(folder) == eval_info  # <run>/checkpoints/pretrained_model -> <run>/eval_info.json
    assert main(["card", str(folder), "me/act_tiny"]) == 0
    assert "| success | 60.0 %" in capsys.readouterr().out
    assert main(["card", str(folder), "me/act_tiny", "--no-eval-info", "--no-provenance"]) == 0
    out = capsys.readouterr().out
    assert "No evaluation was attached" in out and "## Provenance" not in out
    assert main(["push", str(folder), "me/act_tiny"]) == 1  # the real HfApi, offline
    assert "offline mode is enabled" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- training-end push
def _fit(callback, steps: int = 3) -> L.Trainer:
    torch.manual_seed(0)
    f = features()
    policy = ACTPolicy(f, stats(f), **TINY_ACT)
    policy.run_config = RUN_CONFIG
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
    trainer.fit(policy, train_dataloaders=loader(batch(f)))
    return trainer


def test_export_callback_pushes_at_fit_end(hub, tmp_path):
    (tmp_path / "eval_info.json").write_text(json.dumps({**EVAL_INFO, "global_step": 3}))
    callback = ExportPretrained(dirpath=tmp_path, push_to_hub="me/act_run", eval_info=tmp_path / "eval_info.json",
                                hub_api=hub)
    trainer = _fit(callback)
    assert trainer.global_step == 3
    files = hub.files("me/act_run")
    assert files["model.safetensors"] == (tmp_path / "pretrained_model" / "model.safetensors").read_bytes()
    card = files["README.md"].decode()
    assert "| optimizer steps | 3 (trainer.max_steps 9) |" in card and "| success | 60.0 %" in card
    assert "ran at step" not in card  # evaluated at the exported step
    _same_policy(load_policy(tmp_path / "pretrained_model"), load_policy("me/act_run"))


def test_export_callback_push_errors(tmp_path, monkeypatch):
    from huggingface_hub import constants

    with pytest.raises(ValueError, match="push_to_hub: Hub repo id 'nobody' must be <owner>/<name>"):
        ExportPretrained(push_to_hub="nobody")
    with pytest.raises(ValueError, match="lora='fused' is not one of"):
        ExportPretrained(lora="fused")
    # offline with the real HfApi: fails when fit starts, before any step
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    callback = ExportPretrained(dirpath=tmp_path / "a", push_to_hub="me/x")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        _fit(callback)
    assert not (tmp_path / "a" / "pretrained_model").exists()

    class Failing(LocalHub):
        def upload_folder(self, **kwargs):
            raise ConnectionError("the Hub is down")

    callback = ExportPretrained(dirpath=tmp_path / "b", push_to_hub="me/x", hub_api=Failing(tmp_path / "hub"))
    with pytest.raises(RuntimeError, match=r"is exported, but pushing it .* the Hub is down.*retry with: python -m "
                                           r"robolearn.policies.hub push .*pretrained_model me/x"):
        _fit(callback, steps=1)
    assert (tmp_path / "b" / "pretrained_model" / "model.safetensors").is_file()


def test_callback_config_options():
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from robolearn.utils.schema import register_schemas

    GlobalHydra.instance().clear()
    register_schemas()
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "callbacks.export_pretrained.lora=merged",
                                          "callbacks.export_pretrained.push_to_hub=me/act_run",
                                          "paths.output_dir=/tmp/run"])
    callback = instantiate(cfg.callbacks.export_pretrained)
    assert callback.lora == "merged" and callback.push_to_hub == "me/act_run" and callback.hub_private is False
    assert str(callback.eval_info) == "/tmp/run/eval_info.json"
