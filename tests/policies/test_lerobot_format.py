"""robolearn <-> lerobot pretrained-folder conversion: exact round trips, layout, strict errors, Hub ids."""

from __future__ import annotations

import json
import lzma
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from robolearn.policies import load_policy
from robolearn.policies.act import ACTPolicy
from robolearn.policies.diffusion import DiffusionPolicy
from robolearn.policies.lerobot_compat import LerobotFormatError, save_lerobot_pretrained
from robolearn.policies.vqbet import VQBeTPolicy

from ..conftest import SHARED
from .helpers import TINY_ACT, TINY_DIFFUSION, features, observation, stats

from .test_vqbet import TINY as TINY_VQBET  # noqa: E402
POLICIES = {"act": (ACTPolicy, TINY_ACT), "diffusion": (DiffusionPolicy, TINY_DIFFUSION), "vqbet": (VQBeTPolicy, TINY_VQBET)}
LEROBOT_FILES = ["config.json", "model.safetensors", "policy_postprocessor.json",
                 "policy_postprocessor_step_0_unnormalizer_processor.safetensors", "policy_preprocessor.json",
                 "policy_preprocessor_step_3_normalizer_processor.safetensors"]


def _tiny(name, seed=0):
    cls, kw = POLICIES[name]
    torch.manual_seed(seed)
    f = features()
    p = cls(f, stats(f), **kw)
    with torch.no_grad():  # make every tensor distinctive so a dropped or swapped tensor shows
        for t in p.state_dict().values():
            if t.is_floating_point() and t.numel() > 1:
                t.add_(torch.randn_like(t) * 0.01)
    return p.eval()


def _hparams(p):
    return {k: v for k, v in p.hparams.items() if k not in ("normalization_mapping", "use_imagenet_stats")}


def _assert_same_policy(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    assert type(a) is type(b) and _hparams(a) == _hparams(b)
    assert a.normalizer.norm_map == b.normalizer.norm_map and a.features == b.features


@pytest.mark.parametrize("name", list(POLICIES))
def test_export_then_load_is_exact(tmp_path, name):
    p = _tiny(name)
    if name == "vqbet":
        p.freeze_vqvae()
    out = save_lerobot_pretrained(p, tmp_path / "lerobot")
    assert sorted(x.name for x in out.iterdir()) == LEROBOT_FILES
    config = json.loads((out / "config.json").read_text())
    assert config["type"] == name and config["output_features"] == {"action": {"type": "ACTION", "shape": [2]}}
    assert set(config["input_features"]) == {"observation.image", "observation.state"}
    q = load_policy(out)
    _assert_same_policy(p, q)
    obs = observation(features())
    if name == "vqbet":
        obs = {k: torch.stack([v] * 2, dim=1) for k, v in obs.items()}
    torch.manual_seed(0)
    a = p.predict_action_chunk(obs)
    torch.manual_seed(0)
    torch.testing.assert_close(q.predict_action_chunk(obs), a, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["act", "diffusion", "vqbet"])
def test_fixture_export_matches_lerobot_layout(tmp_path, name):
    """lerobot fixture -> robolearn -> lerobot gives lerobot's config.json and pipeline JSON back, and the same
    tensors and statistics."""
    src = SHARED / "parity" / name / "pretrained_model"
    if not src.is_dir():
        pytest.skip(f"{src} not found")
    folder = tmp_path / "src"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("*.xz"))
    with lzma.open(src / "model.safetensors.xz") as fin, open(folder / "model.safetensors", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    from robolearn.policies.convert import main

    assert main([str(folder), str(tmp_path / "robolearn")]) == 0
    assert main(["--to-lerobot", str(tmp_path / "robolearn"), str(tmp_path / "back")]) == 0
    back = tmp_path / "back"
    assert sorted(x.name for x in back.iterdir()) == LEROBOT_FILES
    for name_json in ("config.json", "policy_preprocessor.json", "policy_postprocessor.json"):
        assert json.loads((back / name_json).read_text()) == json.loads((folder / name_json).read_text()), name_json
    orig, new = load_file(folder / "model.safetensors"), load_file(back / "model.safetensors")
    assert sorted(orig) == sorted(new) and all(torch.equal(orig[k], new[k]) for k in orig)
    for state in LEROBOT_FILES[3::2] + LEROBOT_FILES[5:]:
        ref, ours = load_file(folder / state), load_file(back / state)
        assert ours and all(torch.equal(ours[k].reshape(ref[k].shape), ref[k]) for k in ours), state


def _export(tmp_path, name="act"):
    p = _tiny(name)
    return p, save_lerobot_pretrained(p, tmp_path / "ckpt")


def test_renamed_or_missing_tensor_names_the_keys(tmp_path):
    _, out = _export(tmp_path)
    sd = load_file(out / "model.safetensors")
    sd["model.action_head.weights"] = sd.pop("model.action_head.weight")
    save_file(sd, out / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing tensors \['model.action_head.weight'\].*unexpected tensors "
                                         r"\['model.action_head.weights'\]"):
        load_policy(out)
    del sd["model.action_head.weights"]
    save_file(sd, out / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing tensors \['model.action_head.weight'\]"):
        load_policy(out)
    sd["model.action_head.weight"] = torch.zeros(3, 3)
    save_file(sd, out / "model.safetensors")
    with pytest.raises(ValueError, match=r"model.action_head.weight: \(3, 3\) vs expected"):
        load_policy(out)


@pytest.mark.parametrize("edit, pattern", [
    ({"crop_ratio": 0.5}, r"'crop_ratio' = 0.5 is not supported"),
    ({"resize_shape": [64, 64]}, r"'resize_shape'"),
    ({"some_new_option": 1}, r"unsupported key\(s\) \['some_new_option'\]"),
    ({"type": "groot"}, r"type 'groot' is not supported"),
])
def test_unsupported_config_values_name_the_key(tmp_path, edit, pattern):
    _, out = _export(tmp_path, "diffusion")
    config = json.loads((out / "config.json").read_text())
    config.update(edit)
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=pattern):
        load_policy(out)


def test_missing_config_key_is_named(tmp_path):
    _, out = _export(tmp_path, "vqbet")
    config = json.loads((out / "config.json").read_text())
    del config["gpt_n_head"]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="lacks 'gpt_n_head'"):
        load_policy(out)


def test_stats_from_old_in_model_buffers(tmp_path):
    """Pre-0.4 checkpoints keep statistics as ``normalize_inputs.buffer_<key>.<stat>`` buffers."""
    p, out = _export(tmp_path)
    sd = load_file(out / "model.safetensors")
    for f in out.glob("policy_*"):
        f.unlink()
    for feat, d in p.normalizer.stats_dict().items():
        prefix = "normalize_targets" if feat == "action" else "normalize_inputs"
        for stat, v in d.items():
            sd[f"{prefix}.buffer_{feat.replace('.', '_')}.{stat}"] = torch.tensor(np.asarray(v, dtype=np.float32))
            if feat == "action":
                sd[f"unnormalize_outputs.buffer_action.{stat}"] = torch.tensor(np.asarray(v, dtype=np.float32))
    save_file(sd, out / "model.safetensors")
    _assert_same_policy(p, load_policy(out))
    # without any statistics the error says which feature lacks them
    save_file({k: v for k, v in sd.items() if "buffer_" not in k}, out / "model.safetensors")
    with pytest.raises(ValueError, match="no usable normalization statistics.*observation.image"):
        load_policy(out)


def test_hub_id_missing_offline_is_clear(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="robolearn-tests/no-such-policy.*HF_HUB_OFFLINE"):
        load_policy("robolearn-tests/no-such-policy")
    with pytest.raises(FileNotFoundError, match="not a Hugging Face Hub repo id"):
        load_policy("./no/such/folder")


def test_hub_id_resolves_through_snapshot_download(tmp_path, monkeypatch):
    import huggingface_hub

    p, out = _export(tmp_path, "vqbet")
    calls = []

    def fake_snapshot_download(repo_id, repo_type, revision):
        calls.append((repo_id, repo_type, revision))
        return str(out)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    q = load_policy("someone/vqbet_pusht", revision="v1")
    assert calls == [("someone/vqbet_pusht", "model", "v1")]
    _assert_same_policy(p, q)


def test_convert_cli_refuses_non_empty_output(tmp_path, capsys):
    from robolearn.policies.convert import main

    _, out = _export(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    assert main([str(out), str(tmp_path / "busy")]) == 1
    assert "not empty" in capsys.readouterr().err


def test_dilated_diffusion_encoder_is_refused_by_the_lerobot_export(tmp_path):
    """lerobot's Diffusion Policy has no dilated encoder: exporting one would load as another model there."""
    torch.manual_seed(0)
    f = features()
    policy = DiffusionPolicy(f, stats(f), **{**TINY_DIFFUSION, "replace_final_stride_with_dilation": True})
    with pytest.raises(LerobotFormatError, match="replace_final_stride_with_dilation"):
        save_lerobot_pretrained(policy, tmp_path / "out")
