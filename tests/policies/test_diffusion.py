import lightning as L
import pytest
import torch

from robolearn.policies.diffusion import DiffusionPolicy

from .helpers import IMG, TINY_DIFFUSION, batch, features, loader, observation, stats


def make(image=True, env=False, **kw):
    torch.manual_seed(0)
    f = features(image=image, env=env)
    return DiffusionPolicy(f, stats(f), **{**TINY_DIFFUSION, **kw}), f


def test_shapes_delta_indices_and_loss():
    p, f = make()
    assert p.delta_indices == {
        "observation.image": [-1, 0], "observation.state": [-1, 0], "action": list(range(-1, 7)),
    }
    b = batch(f, t_obs=2, t_act=8)
    loss, _ = p(b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    p.eval()
    obs = {k: v for k, v in b.items() if k.startswith("observation.") and not k.endswith("_is_pad")}
    assert p.predict_action_chunk(obs).shape == (4, 4, 2)
    assert p.select_action(observation(f)).shape == (4, 2)


def test_crop_larger_than_image_raises():
    with pytest.raises(ValueError, match="crop_shape"):
        make(crop_shape=(IMG[1] + 1, IMG[2]))


def test_observation_history_and_queue():
    p, f = make(n_action_steps=3)
    p.eval()
    seen = []
    orig = p._predict_chunk
    p._predict_chunk = lambda obs, noise=None: seen.append(obs["observation.state"].clone()) or orig(obs, noise)
    o1, o2, o3, o4 = (observation(f, seed=s) for s in range(4))
    p.select_action(o1)
    # a fresh history repeats the first frame
    assert len(seen) == 1
    s0 = p.normalizer.normalize_tensor("observation.state", o1["observation.state"])
    torch.testing.assert_close(seen[0], torch.stack([s0, s0], 1))
    p.select_action(o2)
    p.select_action(o3)
    assert len(seen) == 1  # 3 actions from one inference
    p.select_action(o4)  # history kept up to date while the queue was draining: [o3, o4]
    assert len(seen) == 2
    exp = torch.stack([p.normalizer.normalize_tensor("observation.state", o["observation.state"]) for o in (o3, o4)], 1)
    torch.testing.assert_close(seen[1], exp)
    p.reset()
    assert not p._action_queue and not p._obs_history


def test_ddim_and_inference_steps():
    p, f = make(noise_scheduler_type="DDIM", num_inference_steps=3)
    p.eval()
    assert p.select_action(observation(f)).shape == (4, 2)
    assert len(p.diffusion.noise_scheduler.timesteps) == 3


@pytest.mark.parametrize("image", [False, True])
def test_loss_decreases_with_lightning(image):
    p, f = make(image=image, env=not image, optimizer=lambda params: torch.optim.Adam(params, lr=3e-3),
                lr_scheduler=False)
    b = batch(f, t_obs=2, t_act=8)

    def eval_loss():
        p.eval()
        torch.manual_seed(123)
        with torch.no_grad():
            return sum(p(b)[0].item() for _ in range(4))

    before = eval_loss()
    trainer = L.Trainer(max_steps=30, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    p.train()
    trainer.fit(p, train_dataloaders=loader(b))
    after = eval_loss()
    assert after < before


def test_default_scheduler_as_train_py_composes_it():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from tests.test_configs import _compose

    # conf/policy/diffusion.yaml as train.py composes it: no optimizer/lr_scheduler node, so default_optimizer and
    # default_lr_scheduler build them from the constructor's optimizer_* / scheduler_* arguments
    composed = _compose(["experiment=none", "policy=diffusion"]).policy
    node = OmegaConf.create(OmegaConf.to_container(composed, resolve=True))
    f = features(image=False, env=True)
    p = instantiate(node, features=f, stats=stats(f), **{k: v for k, v in TINY_DIFFUSION.items()})
    b = batch(f, t_obs=2, t_act=8)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    p.train()
    trainer.fit(p, train_dataloaders=loader(b))
    sched = trainer.lr_scheduler_configs[0]
    assert sched.interval == "step"
    # cosine with 500 warmup steps: lr after 2 steps = 1e-4 * 2 / 500
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4 * 2 / 500)


def test_dilated_encoder_doubles_the_feature_map_and_trains():
    """``replace_final_stride_with_dilation``: the backbone's output stride goes from 32 to 16 (a 32x32 frame gives
    2x2 feature cells instead of 1x1), the spatial softmax and the rest are built for it, and a step trains."""
    plain, f = make(crop_shape=None)
    dilated, _ = make(crop_shape=None, replace_final_stride_with_dilation=True)
    h, w = plain.diffusion.rgb_encoder.feature_map_shape[1:]
    assert dilated.diffusion.rgb_encoder.feature_map_shape[1:] == (2 * h, 2 * w)
    loss, _ = dilated(batch(f, t_obs=2, t_act=8))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in dilated.diffusion.rgb_encoder.parameters() if p.requires_grad)
