import lightning as L
import torch
from omegaconf import OmegaConf

from robolearn.callbacks import EMA, ExportPretrained
from robolearn.policies import load_policy, save_pretrained
from robolearn.policies.act import ACTPolicy
from robolearn.policies.diffusion import DiffusionPolicy

from .helpers import TINY_ACT, TINY_DIFFUSION, batch, features, loader, observation, stats


def test_save_pretrained_load_policy_identical_outputs(tmp_path):
    torch.manual_seed(0)
    f = features()
    p = ACTPolicy(f, stats(f), **TINY_ACT).eval()
    out = save_pretrained(p, tmp_path / "pretrained_model", config={"seed": 3, "policy": {"optimizer": {"lr": 1}}})
    assert sorted(x.name for x in out.iterdir()) == ["config.yaml", "model.safetensors", "stats.json"]
    cfg = OmegaConf.load(out / "config.yaml")
    assert cfg.seed == 3 and cfg.policy._target_ == "robolearn.policies.act.module.ACTPolicy"
    assert cfg.policy.features["observation.image"].shape == [3, 32, 32]
    q = load_policy(out)
    assert not q.training
    obs = observation(f)
    torch.testing.assert_close(q.predict_action_chunk(obs), p.predict_action_chunk(obs), rtol=0, atol=0)
    # overwrite in place leaves no temp folders behind
    save_pretrained(p, out)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["pretrained_model"]


def test_load_policy_overrides_inference_settings(tmp_path):
    import pytest

    torch.manual_seed(0)
    f = features()
    p = DiffusionPolicy(f, stats(f), **TINY_DIFFUSION, noise_scheduler_type="DDPM").eval()
    out = save_pretrained(p, tmp_path / "pretrained_model")
    # DDPM samples with every training timestep unless told otherwise
    assert load_policy(out).diffusion.num_inference_steps == TINY_DIFFUSION["num_train_timesteps"]
    q = load_policy(out, overrides={"noise_scheduler_type": "DDIM", "num_inference_steps": 2})
    assert type(q.diffusion.noise_scheduler).__name__ == "DDIMScheduler" and q.diffusion.num_inference_steps == 2
    assert q.predict_action_chunk(observation(f)).shape[-1] == 2
    a = ACTPolicy(f, stats(f), **TINY_ACT).eval()
    out = save_pretrained(a, tmp_path / "act")
    e = load_policy(out, overrides={"n_action_steps": 1, "temporal_ensemble_coeff": 0.01})
    assert e.temporal_ensembler is not None
    with pytest.raises(ValueError, match=r"config.yaml: overrides \['num_inference_step'\] are not arguments of "
                                         r"the saved ACTPolicy config; it holds \[.*'chunk_size'"):
        load_policy(out, overrides={"num_inference_step": 3})


def test_lightning_checkpoint_reloads(tmp_path):
    torch.manual_seed(0)
    f = features(image=False, env=True)
    p = DiffusionPolicy(f, stats(f), **TINY_DIFFUSION)
    b = batch(f, t_obs=2, t_act=8)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(p, train_dataloaders=loader(b))
    ckpt = tmp_path / "x.ckpt"
    trainer.save_checkpoint(ckpt)
    q = DiffusionPolicy.load_from_checkpoint(ckpt, map_location="cpu")
    assert q.hparams["horizon"] == 8
    for k, v in p.state_dict().items():
        torch.testing.assert_close(q.state_dict()[k], v)
    p.eval(); q.eval()
    obs = observation(f)
    noise = torch.randn(4, 8, 2)
    torch.manual_seed(1)  # DDPM draws variance noise at every step
    a = q.predict_action_chunk(obs, noise=noise)
    torch.manual_seed(1)
    torch.testing.assert_close(a, p.predict_action_chunk(obs, noise=noise))


def test_export_callback_with_ema(tmp_path):
    torch.manual_seed(0)
    f = features(image=False, env=True)
    p = ACTPolicy(f, stats(f), **TINY_ACT, optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-2))
    p.run_config = {"note": "hi"}
    ema = EMA(power=0.75)
    export = ExportPretrained(dirpath=tmp_path)
    b = batch(f)
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[ema, export])
    trainer.fit(p, train_dataloaders=loader(b))
    assert ema.num_updates == 3
    q = load_policy(tmp_path / "pretrained_model")
    assert OmegaConf.load(tmp_path / "pretrained_model" / "config.yaml").note == "hi"
    name = "model.action_head.weight"
    torch.testing.assert_close(dict(q.named_parameters())[name], ema.shadow[name])
    # checkpoint keeps the callback state
    ckpt = tmp_path / "c.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)["callbacks"]
    (ema_state,) = [v for k, v in state.items() if k.startswith("EMA")]
    assert ema_state["num_updates"] == 3
    assert (tmp_path / "pretrained_model").is_dir()


def test_export_copies_only_tensors_that_share_or_view_a_storage(tmp_path):
    """Plain parameters are written from their own memory; tied weights and views are copied so safetensors can
    write them, and every value round-trips."""
    from safetensors.torch import load_file, save_file

    from robolearn.policies.pretrained import _owning_tensors

    plain = torch.randn(4, 3)
    fused = torch.randn(6, 3)
    state = {"plain": plain, "tied_a": plain, "view": fused[2:4], "fused": fused, "t": torch.randn(3, 2).t()}
    owned = _owning_tensors(state)
    assert owned["plain"].data_ptr() == plain.data_ptr()  # no copy
    assert owned["tied_a"].data_ptr() != plain.data_ptr()
    assert owned["view"].untyped_storage().nbytes() == owned["view"].nbytes
    assert owned["t"].is_contiguous()
    save_file(owned, str(tmp_path / "w.safetensors"))
    back = load_file(str(tmp_path / "w.safetensors"))
    for k, v in state.items():
        assert torch.equal(back[k], v), k
