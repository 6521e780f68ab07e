"""VQ-BeT: phases, shapes, optimizer groups and schedule, and a tiny ``train.py policy=vqbet`` run."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.presets import smoke_policy_kwargs
from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies.vqbet import VQBeTPolicy

from .helpers import batch, features, loader, observation, stats

REPO = Path(__file__).resolve().parents[2]
# the smoke sizes, with short windows (and a GPT context and crop to match them and the 32x32 test images)
TINY = smoke_policy_kwargs("vqbet", n_obs_steps=2, n_action_pred_token=2, action_chunk_size=3, crop_shape=[28, 28],
                           use_group_norm=True, gpt_block_size=16)
T_ACT = 2 + 2 + 3 - 2  # n_obs_steps + n_action_pred_token + action_chunk_size - 2


def _policy(**kw):
    torch.manual_seed(0)
    f = features()
    return VQBeTPolicy(f, stats(f), **{**TINY, **kw})


def test_delta_indices_and_token_layout():
    p = _policy()
    assert p.delta_indices == {"observation.image": [-1, 0], "observation.state": [-1, 0], "action": [-1, 0, 1, 2, 3]}
    assert p.vqbet.select_target_actions_indices.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    b = p.normalizer.normalize(batch(features(), b=3, t_obs=2, t_act=T_ACT))
    tokens = p.vqbet.tokens(b["observation.state"], torch.stack([b["observation.image"]], dim=2))
    assert tokens.shape == (3, 2 * 3 + 1, 8)
    # per step [rgb, state, action query]; the query tokens are the learnt action token
    for i in (2, 5, 6):
        torch.testing.assert_close(tokens[:, i], p.vqbet.action_token[0].expand(3, -1))


def test_phase_one_loss_and_phase_two_loss():
    p = _policy().train()
    b = p.normalizer.normalize(batch(features(), b=4, t_obs=2, t_act=T_ACT))
    loss, info = p.compute_loss(b)
    assert {"recon_l1_error", "commitment_loss", "n_different_codes", "n_different_combinations"} <= set(info)
    assert 1 <= info["n_different_codes"] <= 2 * 4
    torch.testing.assert_close(loss, info["recon_l1_error"] + 5 * info["commitment_loss"])
    p.freeze_vqvae()
    loss, info = p.compute_loss(b)
    assert set(info) >= {"classification_loss", "offset_loss", "equal_primary_code_rate", "action_mse_error"}
    torch.testing.assert_close(loss, info["classification_loss"] + 1e4 * info["offset_loss"])


def test_phase_switch_in_training_step():
    """VQ-VAE (and codebooks by EMA) learn for n_vqvae_training_steps, then freeze while the GPT learns."""
    p = _policy(n_vqvae_training_steps=2, dropout=0.0)
    vq, gpt = p.vqbet.action_head.vqvae_model, p.vqbet.policy

    def snap():
        return (vq.encoder[0].weight.clone(), vq.vq_layer.layers[0]._codebook.embed.clone(),
                gpt.transformer.wte.weight.clone(), bool(vq.discretized))

    snaps = {}

    class Snapshot(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            snaps[trainer.global_step] = snap()

    trainer = L.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[Snapshot()])
    trainer.fit(p, loader(batch(features(), b=4, t_obs=2, t_act=T_ACT)))
    snaps[4] = snap()
    (enc0, book0, wte0, d0), (enc2, book2, wte2, d2) = snaps[0], snaps[2]
    assert not d0 and not d2, "phase 1 lasts n_vqvae_training_steps optimizer steps"
    assert not torch.equal(enc0, enc2) and not torch.equal(book0, book2)
    assert torch.equal(wte0, wte2), "the GPT must not move in phase 1"
    enc4, book4, wte4, d4 = snaps[4]
    assert d4 and bool(vq.vq_layer.freeze_codebook)
    assert torch.equal(enc2, enc4) and torch.equal(book2, book4), "the VQ-VAE is frozen in phase 2"
    assert not torch.equal(wte2, wte4)


def test_select_action_queue_and_shapes():
    p = _policy().eval()
    p.freeze_vqvae()
    obs = observation(features(), b=3)
    actions = [p.select_action(obs) for _ in range(4)]
    assert all(a.shape == (3, 2) for a in actions)
    assert len(p._action_queue) == 2  # 3 queued, 3 popped, then a new chunk of 3 with one popped
    chunk = p.predict_action_chunk({k: torch.stack([v, v], dim=1) for k, v in obs.items()})
    assert chunk.shape == (3, 3, 2)
    p.reset()
    assert not p._action_queue and not p._obs_history


def test_optimizer_groups_and_schedule():
    p = _policy(n_vqvae_training_steps=10, scheduler_warmup_steps=4)
    groups = p.get_optim_params()
    vq_ids = {id(t) for t in p.vqbet.action_head.vqvae_model.parameters()}
    assert {id(t) for t in groups[1]["params"]} == vq_ids and groups[1]["lr"] == 1e-3
    assert groups[2]["weight_decay"] == 0.0
    all_ids = [id(t) for g in groups for t in g["params"]]
    assert sorted(all_ids) == sorted(id(t) for t in p.parameters()) and len(all_ids) == len(set(all_ids))
    opt = p.default_optimizer(groups)
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["betas"] == (0.95, 0.999)
    sched = p.default_lr_scheduler(opt)  # no trainer: one-step horizon
    factors = [sched.lr_lambdas[0](s) for s in (0, 9, 10, 12, 14)]
    assert factors == [1.0, 1.0, 0.0, 0.5, 1.0]


def test_invalid_features_raise():
    f = {"observation.state": PolicyFeature(FT.STATE, (2,)), "action": PolicyFeature(FT.ACTION, (2,))}
    with pytest.raises(ValueError, match="needs observation.state and a camera or observation.environment_state"):
        VQBeTPolicy(f, stats(f), **TINY)
    both = features(env=True)
    with pytest.raises(ValueError, match="reads cameras or observation.environment_state, not both"):
        VQBeTPolicy(both, stats(both), **TINY)
    with pytest.raises(ValueError, match="gpt_block_size"):
        _policy(gpt_block_size=4)


def test_state_only_variant_reads_the_environment_state(tmp_path):
    """Without cameras, one projected environment-state token per step; it trains, predicts, reloads, and
    refuses lerobot's format (lerobot's VQ-BeT has no such input)."""
    from robolearn.policies import load_policy, save_pretrained
    from robolearn.policies.lerobot_compat import LerobotFormatError
    from robolearn.policies.vqbet.lerobot_format import lerobot_config_from_kwargs

    torch.manual_seed(0)
    f = features(image=False, env=True)
    p = VQBeTPolicy(f, stats(f), **TINY)
    assert not hasattr(p.vqbet, "rgb_encoder")
    b = p.normalizer.normalize(batch(f, b=3, t_obs=2, t_act=T_ACT))
    tokens = p.vqbet.tokens(b["observation.state"], None, b["observation.environment_state"])
    assert tokens.shape == (3, 2 * 3 + 1, 8)  # per step [env state, state, action query]
    torch.testing.assert_close(tokens[:, 0], p.vqbet.env_state_projector(b["observation.environment_state"][:, 0]))
    p.freeze_vqvae()
    loss, _ = p.compute_loss(b)
    loss.backward()
    assert p.vqbet.env_state_projector[0].weight.grad.abs().sum() > 0
    p.eval()
    obs = observation(f)
    out = save_pretrained(p, tmp_path / "vqbet_state")
    q = load_policy(out)
    p.reset()
    torch.manual_seed(1)
    expected = p.select_action(obs)
    torch.manual_seed(1)
    torch.testing.assert_close(q.select_action(obs), expected)
    with pytest.raises(LerobotFormatError, match="state-only variant"):
        lerobot_config_from_kwargs({}, f)


def test_train_py_vqbet_phases(tmp_path, shared_datasets):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    sys.path.insert(0, str(REPO))
    import train as train_script
    from robolearn.utils.schema import register_schemas

    GlobalHydra.instance().clear()
    register_schemas()
    overrides = [
        "dataset=local", f"dataset.root={shared_datasets / 'lerobot_written_pusht_random'}", "dataset.num_workers=0",
        "dataset.batch_size=4", "dataset.val_fraction=0.2", "policy=vqbet", "debug=smoke", "trainer.max_steps=5",
        "trainer.val_check_interval=5", "policy.n_vqvae_training_steps=3", "policy.n_obs_steps=2",
        "policy.n_action_pred_token=2", "policy.action_chunk_size=3", "policy.gpt_block_size=16",
        f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "experiment=none", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    trainer, module, dm = train_script.train(cfg)
    assert trainer.global_step == 5 and module.discretized
    (metrics,) = sorted((tmp_path / "run" / "csv").glob("version_*/metrics.csv"))
    with open(metrics) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/phase")]
    phases = [float(r["train/phase"]) for r in rows]
    assert phases == [1.0, 1.0, 1.0, 2.0, 2.0]
    assert all(torch.isfinite(torch.tensor(float(r["train/loss_step"]))) for r in rows)
    module.eval()
    val = next(iter(dm.val_dataloader()))
    obs = {k: val[k][:, -1] for k in ("observation.image", "observation.state")}
    module.reset()
    assert module.select_action(obs).shape == (4, 2)
