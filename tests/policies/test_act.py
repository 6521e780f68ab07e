import lightning as L
import pytest
import torch

from robolearn.policies.act import ACTPolicy, TemporalEnsembler

from .helpers import TINY_ACT, batch, features, loader, observation, stats


def make(image=True, env=False, **kw):
    torch.manual_seed(0)
    f = features(image=image, env=env)
    return ACTPolicy(f, stats(f), **{**TINY_ACT, **kw}), f


def test_shapes_and_delta_indices():
    p, f = make()
    assert p.delta_indices == {"action": [0, 1, 2, 3, 4]}
    b = batch(f, t_act=5)
    loss, info = p(b)
    assert loss.ndim == 0 and set(info) == {"l1_loss", "kld_loss"}
    p.eval()
    assert p.predict_action_chunk(observation(f)).shape == (4, 5, 2)
    assert p.select_action(observation(f)).shape == (4, 2)
    loss, info = p(b)  # eval: L1 only
    assert set(info) == {"l1_loss"} and torch.isclose(loss, info["l1_loss"])


def test_padding_is_excluded_from_l1():
    p, f = make()
    p.eval()
    b = batch(f, t_act=5)
    b["action_is_pad"][:, 3:] = True
    l1 = p(b)[0]
    b["action"][:, 3:] += 100.0  # padded targets do not matter
    assert torch.allclose(p(b)[0], l1)


def test_action_queue_one_inference_per_n_action_steps_and_reset():
    p, f = make(n_action_steps=3)
    p.eval()
    calls = []
    orig = p._predict_chunk
    p._predict_chunk = lambda obs: calls.append(1) or orig(obs)
    obs = observation(f)
    chunk = p.predict_action_chunk(obs)
    calls.clear()
    actions = [p.select_action(obs) for _ in range(3)]
    assert len(calls) == 1
    torch.testing.assert_close(torch.stack(actions, 1), chunk[:, :3])
    p.select_action(obs)
    assert len(calls) == 2
    p.reset()
    assert len(p._action_queue) == 0


def test_temporal_ensembler_hand_computed():
    m = 0.5
    ens = TemporalEnsembler(m, chunk_size=3)
    c1 = torch.tensor([[[1.0], [2.0], [3.0]]])
    c2 = torch.tensor([[[10.0], [20.0], [30.0]]])
    c3 = torch.tensor([[[100.0], [200.0], [300.0]]])
    assert ens.update(c1).item() == 1.0
    w0, w1, w2 = 1.0, torch.exp(torch.tensor(-m)).item(), torch.exp(torch.tensor(-2 * m)).item()
    # step 2: predictions for t=1: c1[1] (oldest, w0) and c2[0] (w1)
    assert ens.update(c2).item() == pytest.approx((w0 * 2 + w1 * 10) / (w0 + w1), rel=1e-6)
    # step 3: t=2 predicted by c1[2], c2[1], c3[0]
    assert ens.update(c3).item() == pytest.approx((w0 * 3 + w1 * 20 + w2 * 100) / (w0 + w1 + w2), rel=1e-6)
    ens.reset()
    assert ens.update(c3).item() == 100.0


def test_temporal_ensembling_policy_requires_one_step():
    with pytest.raises(ValueError, match="n_action_steps=1"):
        make(temporal_ensemble_coeff=0.01)
    p, f = make(temporal_ensemble_coeff=0.01, n_action_steps=1)
    p.eval()
    assert p.select_action(observation(f)).shape == (4, 2)


def test_backbone_param_group():
    p, _ = make(optimizer_lr_backbone=3e-4)
    groups = p.get_optim_params()
    assert len(groups) == 2 and groups[1]["lr"] == 3e-4
    assert sum(x.numel() for g in groups for x in g["params"]) == sum(x.numel() for x in p.parameters() if x.requires_grad)


@pytest.mark.parametrize("image", [True, False])
def test_loss_decreases_with_lightning(image):
    p, f = make(image=image, env=not image, dropout=0.0,
                optimizer=lambda params: torch.optim.Adam(params, lr=1e-3))
    b = batch(f, t_act=5)
    p.eval()
    with torch.no_grad():
        before = p(b)[0].item()
    trainer = L.Trainer(max_steps=15, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    p.train()
    trainer.fit(p, train_dataloaders=loader(b))
    p.eval()
    with torch.no_grad():
        after = p(b)[0].item()
    assert after < before
