"""Every policy and experiment config composes with trainer=smoke, and groups swap independently."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from robolearn.utils.schema import register_schemas, signature_defaults

CONF = Path(__file__).resolve().parents[1] / "conf"
POLICIES = sorted(p.stem for p in (CONF / "policy").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (CONF / "sweeps").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("slurm_*.yaml"))


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def _resolve(cfg) -> dict:
    """Resolve everything but the hydra node (whose runtime fields only exist inside a run)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    return {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in cfg.items() if k != "hydra"}


def test_inventory():
    assert {"act", "diffusion"} <= set(POLICIES)
    assert {"pusht_diffusion"} <= set(EXPERIMENTS)
    assert {"slurm_1gpu", "slurm_4gpu_ddp"} <= set(LAUNCHERS)
    for group in ("cpu", "gpu", "ddp", "smoke"):
        assert (CONF / "trainer" / f"{group}.yaml").is_file()
    for group in ("csv", "tensorboard", "wandb"):
        assert (CONF / "logger" / f"{group}.yaml").is_file()


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_composes(policy):
    cfg = _compose([f"policy={policy}", "trainer=smoke"])
    resolved = _resolve(cfg)
    assert resolved["policy"]["_target_"].startswith("robolearn.policies.")
    assert resolved["trainer"]["max_steps"] == 3


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(experiment):
    cfg = _compose([f"experiment={experiment}", "trainer=smoke"])
    resolved = _resolve(cfg)
    # trainer=smoke on the command line replaces the experiment's trainer preset (experiments select theirs with
    # `override /trainer: <name>`, they do not set its values).
    assert resolved["trainer"]["accelerator"] == "cpu"
    assert resolved["trainer"]["max_steps"] == OmegaConf.load(CONF / "trainer" / "smoke.yaml").max_steps
    assert resolved["policy"]["_target_"].startswith("robolearn.policies.")
    assert resolved["dataset"]["_target_"].endswith("DataModule")  # LeRobotDataModule, OnlineRLDataModule, ...


def test_experiment_keeps_its_trainer_preset_unless_overridden():
    assert _resolve(_compose(["experiment=pusht_diffusion"]))["trainer"]["max_steps"] == 200_000
    assert _resolve(_compose(["experiment=pusht_diffusion", "trainer=smoke"]))["trainer"]["max_steps"] == 3
    sac = _resolve(_compose(["experiment=sac_planar_reach", "trainer=smoke"]))["trainer"]
    assert sac["max_steps"] == 3 and sac["gradient_clip_val"] is None  # a policy constraint, kept by the experiment


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_files_define_grids(sweep):
    cfg = _compose([f"sweeps={sweep}", "trainer=smoke"])
    params = cfg.hydra.sweeper.params
    assert params, f"sweeps/{sweep}.yaml sets no hydra.sweeper.params"
    for key, values in params.items():
        assert "," in str(values), f"{sweep}: {key} is not a grid: {values}"


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_slurm_launchers_compose(launcher):
    trainer = "trainer=ddp" if "ddp" in launcher else ("trainer=cpu" if "cpu" in launcher else "trainer=gpu")
    cfg = _compose([f"hydra/launcher={launcher}", trainer])
    launcher_cfg = cfg.hydra.launcher
    assert launcher_cfg._target_.endswith("SlurmLauncher")
    if "cpu" in launcher:  # CPU jobs: no GPU requested, one task
        assert launcher_cfg.gpus_per_node is None and launcher_cfg.tasks_per_node == 1
        assert cfg.trainer.accelerator == "cpu"
        return
    assert launcher_cfg.gpus_per_node == launcher_cfg.tasks_per_node
    assert cfg.trainer.devices == launcher_cfg.tasks_per_node, "one SLURM task per GPU for Lightning DDP"


def test_policy_swap_changes_only_policy():
    a = _resolve(_compose(["trainer=smoke"]))
    b = _resolve(_compose(["policy=act", "trainer=smoke"]))
    assert a["policy"]["_target_"] != b["policy"]["_target_"]
    for key in a:
        if key not in ("policy", "hydra"):
            assert a[key] == b[key], f"policy=act changed '{key}'"


def test_constructor_defaults_are_overridable_and_typos_fail():
    cfg = _compose(["policy=act", "policy.chunk_size=7"])
    assert cfg.policy.chunk_size == 7
    # the default came from the constructor, not from a yaml mirror
    assert "chunk_size" not in (CONF / "policy" / "act.yaml").read_text()
    # the same holds for the DataModule and the Lightning Trainer
    cfg = _compose(["dataset.exclude_features=[observation.environment_state]",
                    "trainer.accumulate_grad_batches=4"])
    assert list(cfg.dataset.exclude_features) == ["observation.environment_state"]
    assert cfg.trainer.accumulate_grad_batches == 4
    with pytest.raises(ConfigCompositionException, match="chunk_sise"):
        _compose(["policy=act", "policy.chunk_sise=7"])


def test_signature_defaults_skip_injected_args():
    node = signature_defaults("robolearn.datamodules.lerobot.LeRobotDataModule")
    assert node["repo_id"] == "???"
    assert node["val_fraction"] == 0.1
    assert "self" not in node


# --- paper experiments and their sweeps (issue 8) -------------------------------------------------------------------


def _sweep_params(cfg) -> dict[str, list[str]]:
    return {k: [v.strip() for v in str(vals).split(",")] for k, vals in cfg.hydra.sweeper.params.items()}


def test_act_chunk_ablation_with_its_sweep():
    """The issue's command: experiment=act_chunk_ablation sweeps=act_chunk_size hydra/launcher=slurm_1gpu."""
    cfg = _compose(["experiment=act_chunk_ablation", "sweeps=act_chunk_size", "hydra/launcher=slurm_1gpu",
                    "trainer=gpu", "policy.chunk_size=50"])
    assert _sweep_params(cfg) == {"policy.chunk_size": ["1", "10", "20", "50", "100", "200"],
                                  "seed": ["1000", "1001", "1002"]}
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    r = _resolve(cfg)
    assert r["policy"]["n_action_steps"] == 50, "n_action_steps follows the swept chunk_size"
    assert r["policy"]["kl_weight"] == 10.0 and r["policy"]["dim_model"] == 512
    assert r["dataset"]["generator"]["robot"]["env_id"] == "gym_aloha/AlohaTransferCube-v0"
    assert r["env"]["name"] == "aloha_transfer_cube"
    assert r["callbacks"]["rollout_eval"]["every_n_train_steps"] == r["trainer"]["max_steps"]


def test_aloha_experiments_record_their_own_task():
    for exp, env_id, expert, eps in (
        ("aloha_transfer_cube_act", "AlohaTransferCube-v0", "TransferCubeExpert", 50),
        ("aloha_insertion_act", "AlohaInsertion-v0", "InsertionExpert", 50),
        ("aloha_insertion_act debug=smoke", "AlohaInsertion-v0", "InsertionExpert", 2),
    ):
        r = _resolve(_compose([f"experiment={exp}"] if " " not in exp else [f"experiment={exp.split()[0]}", "debug=smoke"]))
        gen = r["dataset"]["generator"]
        assert gen["robot"]["env_id"] == f"gym_aloha/{env_id}", exp
        assert gen["robot"]["expert"]["_target_"].endswith(expert), exp
        assert gen["num_episodes"] == eps and gen["fps"] == gen["robot"]["fps"] == 50, exp
        assert r["policy"]["chunk_size"] == (10 if exp.endswith("smoke") else 100), exp
    smoke = _resolve(_compose(["experiment=aloha_transfer_cube_act", "debug=smoke"]))
    full = _resolve(_compose(["experiment=aloha_transfer_cube_act"]))
    # a smoke dataset never lands in (or is read from) the full dataset's cache folder
    assert smoke["dataset"]["root"] != full["dataset"]["root"]
    assert smoke["dataset"]["generator"]["robot"]["camera_shapes"] == {"top": [48, 64, 3]}
    assert full["dataset"]["generator"]["robot"]["camera_shapes"] == {"top": [480, 640, 3]}


@pytest.mark.parametrize("experiment", ["pusht_diffusion_state", "pusht_diffusion"])
def test_diffusion_inference_steps_sweep(experiment):
    cfg = _compose([f"experiment={experiment}", "sweeps=diffusion_inference_steps", "callbacks=rollout_eval",
                    "env=pusht_keypoints", "policy.noise_scheduler_type=DDIM", "policy.num_inference_steps=10"])
    assert _sweep_params(cfg) == {"policy.noise_scheduler_type": ["DDPM", "DDIM"],
                                  "policy.num_inference_steps": ["100", "10", "5"],
                                  "seed": ["1000", "1001", "1002"]}
    r = _resolve(cfg)
    assert r["policy"]["noise_scheduler_type"] == "DDIM" and r["policy"]["num_inference_steps"] == 10
    assert r["policy"]["num_train_timesteps"] == 100, "only sampling changes"


def test_vqbet_experiment_and_ablation_sweeps_compose():
    r = _resolve(_compose(["experiment=pusht_vqbet", "debug=smoke"]))
    assert r["policy"]["_target_"].endswith("VQBeTPolicy")
    assert r["dataset"]["exclude_features"] == ["observation.environment_state"], "VQ-BeT: image + state only"
    for sweep in ("act_cvae", "act_temporal_ensemble", "seeds3"):
        cfg = _compose(["experiment=aloha_transfer_cube_act", f"sweeps={sweep}"])
        assert "seed" in _sweep_params(cfg)


def test_cpu_scaled_experiments_are_state_only_pusht():
    for exp in ("cpu_scaled_pusht_diffusion_state", "cpu_scaled_act_chunk"):
        for debug in ("none", "smoke"):
            name = f"{exp} debug={debug}"
            r = _resolve(_compose([f"experiment={exp}", f"debug={debug}", "policy.chunk_size=50"] if "act" in exp
                                  else [f"experiment={exp}", f"debug={debug}"]))
            assert r["dataset"]["exclude_features"] == ["observation.image"], name
            if "act" in exp:
                assert r["policy"]["n_action_steps"] == 50, name


@pytest.mark.parametrize("policy", ["diffusion", "diffusion_cpu"])
def test_diffusion_warmup_lives_in_one_place(policy):
    # the constructor argument that DiffusionPolicy.default_lr_scheduler reads; no lr_scheduler node repeats it
    cfg = _resolve(_compose(["experiment=none", f"policy={policy}", "policy.scheduler_warmup_steps=123"]))
    assert cfg["policy"]["scheduler_warmup_steps"] == 123 and cfg["policy"]["lr_scheduler"] is None


# Things debug=smoke must shrink in every experiment: the run length, and the size of the data it generates.
SMOKE_MAX_STEPS = OmegaConf.load(CONF / "trainer" / "smoke.yaml").max_steps


@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if e != "none"])
def test_debug_smoke_shortens_every_experiment(experiment):
    full = _resolve(_compose([f"experiment={experiment}"]))
    smoke = _resolve(_compose([f"experiment={experiment}", "debug=smoke"]))
    assert smoke["trainer"]["max_steps"] == SMOKE_MAX_STEPS and smoke["trainer"]["accelerator"] == "cpu"
    assert smoke["trainer"]["limit_val_batches"] <= 1
    # a smoke run never writes into (or resumes) the real run's folders, nor generates into its dataset cache
    assert smoke["paths"]["log_dir"] != full["paths"]["log_dir"]
    generator = full["dataset"].get("generator") or {}
    if "num_episodes" in generator:  # demonstrations recorded on first use: fewer, into their own folder
        assert smoke["dataset"]["root"] != full["dataset"]["root"]
        assert smoke["dataset"]["generator"]["num_episodes"] < generator["num_episodes"]
    elif generator:  # a converted dataset (PushT's 206 demonstrations): the same folder, a slice of its episodes
        assert len(smoke["dataset"]["episodes"]) <= 20
    rollout = smoke["callbacks"].get("rollout_eval")
    if rollout:
        assert rollout["n_episodes"] <= 2 and smoke["env"]["max_episode_steps"] <= 20
    if "online_step_before_learning" in full["dataset"]:
        assert smoke["dataset"]["online_step_before_learning"] <= 50
    # the policy is the smoke size of its family wherever one is written
    family = smoke["policy"]["_target_"].rsplit(".", 1)[1]
    small = {"ACTPolicy": ("dim_model", 32), "DiffusionPolicy": ("down_dims", [16, 32]),
             "VQBeTPolicy": ("gpt_n_layer", 1), "TDMPCPolicy": ("mlp_dim", 32)}
    if family in small:
        key, value = small[family]
        assert smoke["policy"][key] == value, (experiment, key)


def test_debug_smoke_presets_name_existing_options():
    """Every conf/debug_presets/<group>/<debug>/<option>.yaml shrinks an option that exists in conf/<group>/."""
    for preset in sorted((CONF / "debug_presets").glob("*/*/*.yaml")):
        group, debug, option = preset.parent.parent.name, preset.parent.name, preset.stem
        assert (CONF / "debug" / f"{debug}.yaml").is_file(), preset
        assert (CONF / group / f"{option}.yaml").is_file(), f"{preset}: no conf/{group}/{option}.yaml"


@pytest.mark.parametrize("family", ["act", "diffusion"])
def test_tiny_policy_is_its_family_at_the_smoke_size(family):
    tiny = _resolve(_compose([f"policy={family}_tiny"]))["policy"]
    full = _resolve(_compose([f"policy={family}"]))["policy"]
    sizes = OmegaConf.to_container(OmegaConf.load(CONF / "debug_presets" / "policy" / "smoke" / f"{family}.yaml"),
                                   resolve=True)
    assert {k: tiny[k] for k in sizes} == sizes
    assert {k: v for k, v in tiny.items() if k not in sizes} == {k: v for k, v in full.items() if k not in sizes}


def test_pusht_task_string_is_the_datasets_everywhere(shared_datasets):
    """A language policy is prompted in the sim with the task it was trained on: lerobot's PushT string."""
    import pyarrow.parquet as pq

    from robolearn.tools.convert.zarr_replay import PUSHT_TASK

    lerobot_tasks = pq.read_table(shared_datasets / "lerobot_written_pusht_random" / "meta" / "tasks.parquet")
    assert lerobot_tasks.column("task").to_pylist() == [PUSHT_TASK]
    for path in (CONF / "env" / "pusht.yaml", CONF / "env" / "pusht_keypoints.yaml", CONF / "robot" / "sim_pusht.yaml"):
        assert OmegaConf.load(path).task == PUSHT_TASK, path
