"""One optimizer/scheduler convention for every policy (docs/architecture.md, "Optimizer and scheduler").

For every trainable ``conf/policy`` config, composed as train.py composes it: ``policy.<lr key>=X`` reaches the
optimizer that ``configure_optimizers()`` builds, and an explicit ``policy.optimizer`` node together with a
non-default ``optimizer_*`` value raises. Also: the lerobot export and fine-tuning read the same values. Tiny model
sizes only (architecture overrides; never an optimizer key)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.policies.base import PolicyModule
from tests.test_configs import CONF, _compose

from .helpers import features, stats

STEPS = 100  # the stand-in trainer's estimated_stepping_batches
LR = 1.23e-3

# Per policy class: cheap architecture overrides, the features it is built on, and for each learning-rate key the
# parameter groups (index or "name") whose lr it sets.
FAMILIES = {
    "ACTPolicy": dict(
        overrides=["policy.dim_model=32", "policy.n_heads=2", "policy.dim_feedforward=64", "policy.n_encoder_layers=1",
                   "policy.n_vae_encoder_layers=1", "policy.latent_dim=8", "policy.chunk_size=5",
                   "policy.n_action_steps=5"],
        features=dict(image=False, env=True), lr_keys={"optimizer_lr": [0]}),
    "DiffusionPolicy": dict(
        overrides=["policy.down_dims=[16,32]", "policy.diffusion_step_embed_dim=16", "policy.n_groups=4",
                   "policy.horizon=8", "policy.n_action_steps=2"],
        features=dict(image=False, env=True), lr_keys={"optimizer_lr": [0]}),
    "VQBeTPolicy": dict(
        overrides=["policy.vqvae_embedding_dim=32", "policy.vqvae_enc_hidden_dim=32", "policy.gpt_input_dim=64",
                   "policy.gpt_output_dim=64", "policy.gpt_hidden_dim=64", "policy.gpt_n_layer=1",
                   "policy.gpt_n_head=2", "policy.n_vqvae_training_steps=1"],
        features=dict(image=False, env=True), lr_keys={"optimizer_lr": [0, 2], "optimizer_vqvae_lr": [1]}),
    "TDMPCPolicy": dict(
        overrides=["policy.latent_dim=8", "policy.mlp_dim=16", "policy.state_encoder_hidden_dim=8",
                   "policy.q_ensemble_size=2"],
        features=dict(image=False), lr_keys={"optimizer_lr": [0]}),
    "SACPolicy": dict(
        overrides=["policy.latent_dim=8", "policy.state_encoder_hidden_dim=8"],
        features=dict(image=False),
        lr_keys={"actor_lr": ["actor"], "critic_lr": ["critic"], "temperature_lr": ["temperature"]}),
    "RewardClassifier": dict(
        overrides=["policy.vision_backbone=test_resnet", "policy.hidden_dim=16"],
        features=dict(image=True), lr_keys={"optimizer_lr": [0]}),
    "Pi0Policy": dict(
        overrides=["debug=smoke", "policy.tokenizer_name=unused"],
        features=dict(image=True, img=(3, 28, 28)), lr_keys={"optimizer_lr": [0]}),
    "SmolVLAPolicy": dict(
        overrides=["debug=smoke", "policy.load_vlm_weights=true"],
        features=dict(image=True), lr_keys={"optimizer_lr": [0]}),
}
FAMILIES["Pi05Policy"] = FAMILIES["Pi0Policy"]


def _policy_class(name: str) -> type | None:
    """The PolicyModule subclass ``conf/policy/<name>.yaml`` builds, or None (a loader/factory or not a
    PolicyModule: pretrained, finetune, scripted)."""
    target = get_object(_compose(["experiment=none", f"policy={name}"]).policy._target_)
    return target if isinstance(target, type) and issubclass(target, PolicyModule) else None


TRAINABLE = sorted(p.stem for p in (CONF / "policy").glob("*.yaml") if _policy_class(p.stem) is not None)


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory) -> Path:
    from robolearn.policies.smolvla.tiny import write_tiny_smolvlm

    return write_tiny_smolvlm(tmp_path_factory.mktemp("smolvlm_tiny"), image_size=32)


def _features(image: bool, env: bool = False, img: tuple[int, int, int] | None = None) -> dict[str, PolicyFeature]:
    f = features(image=image, env=env)
    if img is not None:
        f["observation.image"] = PolicyFeature(FT.VISUAL, img)
    return f


def _stats(f: dict[str, PolicyFeature]) -> dict:
    """helpers.stats plus the quantiles π0.5's QUANTILES normalization reads."""
    out = stats(f)
    for d in out.values():
        d["q01"], d["q99"] = d["min"], d["max"]
    return out


def _build(name: str, overrides: list[str], request) -> PolicyModule:
    """``conf/policy/<name>.yaml`` composed as train.py does (plus ``overrides``), instantiated on tiny features."""
    family = FAMILIES.get(_policy_class(name).__name__)
    assert family is not None, f"conf/policy/{name}.yaml: add its class to FAMILIES in {Path(__file__).name}"
    extra = list(family["overrides"])
    if "SmolVLA" in _policy_class(name).__name__:
        extra.append(f"policy.vlm_model_name={request.getfixturevalue('vlm_dir')}")
    cfg = _compose(["experiment=none", f"policy={name}", *extra, *overrides])
    f = _features(**family["features"])
    torch.manual_seed(0)
    policy = instantiate(cfg.policy, features=f, stats=_stats(f))
    policy._trainer = types.SimpleNamespace(estimated_stepping_batches=STEPS)
    return policy


def _optimizer(policy: PolicyModule) -> torch.optim.Optimizer:
    out = policy.configure_optimizers()
    return out["optimizer"] if isinstance(out, dict) else out


def _group_lrs(optimizer: torch.optim.Optimizer, selectors: list) -> list[float]:
    """The lr each selected group starts from (``initial_lr`` when a scheduler rescales ``lr``)."""
    groups = optimizer.param_groups
    picked = [groups[s] if isinstance(s, int) else next(g for g in groups if g.get("name") == s) for s in selectors]
    return [g.get("initial_lr", g["lr"]) for g in picked]


def test_every_trainable_policy_config_is_covered():
    assert {"act", "act_cpu", "diffusion", "diffusion_cpu", "vqbet", "tdmpc", "sac", "reward_classifier", "pi0",
            "pi05", "smolvla"} <= set(TRAINABLE)
    for cls in {_policy_class(n) for n in TRAINABLE}:
        assert cls.__name__ in FAMILIES, cls
        defaults = cls.optimizer_hparam_defaults()  # every listed name is a constructor argument with a default
        assert set(defaults) == {*cls.optimizer_hparams, *cls.lr_scheduler_hparams}


@pytest.mark.parametrize("name", TRAINABLE)
def test_lr_key_reaches_the_optimizer(name, request):
    family = FAMILIES[_policy_class(name).__name__]
    for key, selectors in family["lr_keys"].items():
        composed = _compose(["experiment=none", f"policy={name}"]).policy
        assert composed.optimizer is None and composed.lr_scheduler is None, "no yaml repeats the policy's optimizer"
        # without an override: the value the config holds (the constructor default or the preset's) is used
        default = float(composed[key])
        assert _group_lrs(_optimizer(_build(name, [], request)), selectors) == [pytest.approx(default)] * len(selectors)
        # with policy.<key>=X: X is used
        opt = _optimizer(_build(name, [f"policy.{key}={LR}"], request))
        assert _group_lrs(opt, selectors) == [pytest.approx(LR)] * len(selectors), key


@pytest.mark.parametrize("name", TRAINABLE)
def test_optimizer_node_replaces_the_default_and_refuses_optimizer_args(name, request):
    cls = _policy_class(name)
    sgd = "policy.optimizer={_target_: torch.optim.SGD, _partial_: true, lr: 0.5, momentum: 0.9}"
    if not cls.optimizer_hparams:  # SAC: only parameter-group learning rates, which hold with any optimizer
        node = "policy.optimizer={_target_: torch.optim.SGD, _partial_: true, momentum: 0.9}"
        opt = _optimizer(_build(name, [node, f"policy.actor_lr={LR}"], request))
        assert type(opt) is torch.optim.SGD and _group_lrs(opt, ["actor"]) == [pytest.approx(LR)]
        with pytest.raises(ValueError, match=r"policy\.optimizer sets lr=0\.5, but every parameter group"):
            _optimizer(_build(name, [sgd], request))
        return
    preset = _compose(["experiment=none", f"policy={name}"]).policy
    defaults = cls.optimizer_hparam_defaults()
    # the node alone (with the preset's optimizer_* reset to the defaults) is a full replacement
    resets = [f"policy.{k}={defaults[k]}" for k in cls.optimizer_hparams if preset[k] != defaults[k]]
    opt = _optimizer(_build(name, [sgd, *resets], request))
    assert type(opt) is torch.optim.SGD and opt.param_groups[0].get("initial_lr", opt.param_groups[0]["lr"]) == 0.5
    # the node together with a non-default optimizer_* value: refused, naming both
    arg = cls.optimizer_hparams[0]
    with pytest.raises(InstantiationException) as err:
        _build(name, [sgd, *resets, f"policy.{arg}={LR}"], request)
    assert isinstance(err.value.__cause__, ValueError)
    message = str(err.value.__cause__)
    assert "policy.optimizer = torch.optim.sgd.SGD" in message and f"{arg}={LR!r}" in message, message
    assert f"policy.{arg}={defaults[arg]!r}" in message, "the message names the reset"


@pytest.mark.parametrize("name", ["act_cpu", "diffusion_cpu"])
def test_presets_with_their_own_values_refuse_a_node_until_reset(name, request):
    """act_cpu's optimizer_lr (1e-4) and diffusion_cpu's (3e-4) are not the defaults: a node alone is refused."""
    with pytest.raises(InstantiationException, match=r"optimizer_lr=0\.000[13]"):
        _build(name, ["policy.optimizer={_target_: torch.optim.SGD, _partial_: true, lr: 0.5}"], request)


@pytest.mark.parametrize("name", [n for n in TRAINABLE if _policy_class(n).lr_scheduler_hparams])
def test_scheduler_args_reach_the_schedule_and_refuse_a_replacement(name, request):
    cls = _policy_class(name)
    preset = _compose(["experiment=none", f"policy={name}"]).policy
    defaults = cls.optimizer_hparam_defaults()
    resets = [f"policy.{k}={defaults[k]}" for k in cls.lr_scheduler_hparams if preset[k] != defaults[k]]
    # the warm-up length reaches the built schedule: lr factor at step 0 differs with 7 vs 70 warm-up steps
    firsts = []
    for warmup in (7, 70):
        out = _build(name, [f"policy.scheduler_warmup_steps={warmup}"], request).configure_optimizers()
        group = out["optimizer"].param_groups[0]
        sched = out["lr_scheduler"]["scheduler"]
        for _ in range(3):
            sched.step()
        firsts.append(group["lr"] / group["initial_lr"])
    assert firsts[0] > firsts[1], firsts
    # lr_scheduler=false (no scheduler) alone is fine; with a non-default scheduler_* value it is refused
    out = _build(name, ["policy.lr_scheduler=false", *resets], request).configure_optimizers()
    assert not isinstance(out, dict)
    with pytest.raises(InstantiationException, match=r"policy\.lr_scheduler = False \(no scheduler\).*"
                                                     r"scheduler_warmup_steps=7"):
        _build(name, ["policy.lr_scheduler=false", *resets, "policy.scheduler_warmup_steps=7"], request)


def test_pi0_schedule_peaks_at_the_optimizers_lr(request):
    """With an explicit optimizer node, π0's default schedule still ends at scheduler_decay_lr."""
    node = "policy.optimizer={_target_: torch.optim.AdamW, _partial_: true, lr: 1e-3}"
    out = _build("pi0", [node, "policy.scheduler_warmup_steps=1", "policy.scheduler_decay_steps=3"],
                 request).configure_optimizers()
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    for _ in range(5):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2.5e-6)


def test_lerobot_export_writes_the_policys_values():
    from robolearn.policies.act import lerobot_format as act_format
    from robolearn.policies.act import ACTPolicy
    from robolearn.policies.diffusion import lerobot_format as diffusion_format
    from robolearn.policies.diffusion import DiffusionPolicy
    from robolearn.policies.lerobot_compat import policy_kwargs

    from .helpers import TINY_ACT, TINY_DIFFUSION

    f = features(image=False, env=True)
    act = ACTPolicy(f, stats(f), **TINY_ACT, optimizer_lr=3e-5, optimizer_weight_decay=0.0)
    config = act_format.lerobot_config_from_kwargs(policy_kwargs(act), act.features)
    written = (config["optimizer_lr"], config["optimizer_weight_decay"], config["optimizer_lr_backbone"])
    assert written == (3e-5, 0.0, 1e-5)
    back = act_format.kwargs_from_lerobot_config(config)
    assert (back["optimizer_lr"], back["optimizer_weight_decay"]) == (3e-5, 0.0)

    diffusion = DiffusionPolicy(f, stats(f), **TINY_DIFFUSION, optimizer_lr=3e-4, optimizer_betas=(0.9, 0.99),
                                scheduler_warmup_steps=200)
    config = diffusion_format.lerobot_config_from_kwargs(policy_kwargs(diffusion), diffusion.features)
    assert config["optimizer_lr"] == 3e-4 and config["optimizer_betas"] == [0.9, 0.99]
    assert config["optimizer_eps"] == 1e-8 and config["optimizer_weight_decay"] == 1e-6
    assert config["scheduler_name"] == "cosine" and config["scheduler_warmup_steps"] == 200
    back = diffusion_format.kwargs_from_lerobot_config(config)
    assert back["optimizer_lr"] == 3e-4 and back["optimizer_betas"] == [0.9, 0.99]
    assert back["scheduler_warmup_steps"] == 200


def test_finetune_overrides_replace_the_checkpoints_settings_of_the_other_kind():
    from robolearn.policies.act import ACTPolicy
    from robolearn.policies.diffusion import DiffusionPolicy
    from robolearn.policies.finetune import apply_overrides

    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
    # a new export (optimizer_lr in its hyper-parameters) + an optimizer node: the node replaces optimizer_lr
    out = apply_overrides(ACTPolicy, {"optimizer_lr": 1e-4, "chunk_size": 5}, {"optimizer": sgd})
    assert "optimizer_lr" not in out and out["chunk_size"] == 5 and callable(out["optimizer"])
    # an export with an optimizer node + optimizer_lr: the policy's own optimizer with that lr
    out = apply_overrides(ACTPolicy, {"optimizer": sgd, "optimizer_lr": 1e-4}, {"optimizer_lr": 3e-5})
    assert "optimizer" not in out and out["optimizer_lr"] == 3e-5
    # an export written before the convention (diffusion_cpu: nodes + scheduler_warmup_steps 200): its nodes trained
    legacy = {"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3e-4},
              "lr_scheduler": {"_target_": "diffusers.optimization.get_scheduler", "_partial_": True,
                               "name": "cosine", "num_warmup_steps": 200},
              "scheduler_warmup_steps": 200, "optimizer_lr": 1e-4}
    out = apply_overrides(DiffusionPolicy, legacy, {})
    assert "scheduler_warmup_steps" not in out and out["optimizer_lr"] == 1e-4 and callable(out["lr_scheduler"])
    f = features(image=False, env=True)
    from .helpers import TINY_DIFFUSION

    DiffusionPolicy(f, stats(f), **TINY_DIFFUSION, **out)  # builds: no conflict left
