"""HIL-SERL on the simulated SO-101 through the Robot interface (issue 18): the composed experiment, interventions of
the RobotEnv's scripted expert reaching both learner buffers with the expert's action, and a short
``train.py experiment=hil_serl_so101_sim role=both`` run whose replay buffers survive a learner restart
(``ckpt_path=auto``)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file

from robolearn.rl.buffer_checkpoint import read_meta
from robolearn.rl.hil.protocol import IS_INTERVENTION
from tests.presets import smoke_policy_kwargs

REPO = Path(__file__).resolve().parents[2]
ENV_ID = "robolearn.rl.robot_env:robolearn/RobotEnv-v0"


def _compose(overrides: list[str]):
    from robolearn.utils.schema import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return compose("train", overrides=overrides)


def test_experiment_composes_a_robot_env_actor_with_scripted_interventions():
    cfg = _compose(["experiment=hil_serl_so101_sim"])
    ds = cfg.dataset
    assert ds._target_ == "robolearn.rl.hil.learner.RemoteActorDataModule" and ds.env_id == ENV_ID
    assert ds._recursive_ is False  # every process builds its own robot from env_kwargs
    kw = ds.env_kwargs
    assert kw.robot._target_ == "robolearn.robots.sim.SO101SimRobot" and kw.robot.camera is None
    assert kw.action_mode == "ee" and kw.reward == "sim" and kw.environment_state is True and kw.cameras is False
    assert kw.teleop._target_ == "robolearn.teleop.scripted.ScriptedTeleop"
    assert kw.trigger._target_ == "robolearn.record.takeover.Deviation"
    assert dict(ds.features_map) == {"agent_pos": "observation.state",
                                     "environment_state": "observation.environment_state"}
    assert ds.save_replay_buffers is True and ds.replay_buffers_keep >= 1
    assert cfg.policy._target_ == "robolearn.policies.sac.SACPolicy" and cfg.actor.intervention is None
    assert cfg.trainer.gradient_clip_val is None and cfg.get("role", "learner") == "learner"
    smoke = _compose(["experiment=hil_serl_so101_sim", "debug=smoke"])
    assert smoke.role == "both" and smoke.dataset.port == 0 and smoke.trainer.max_steps == 3
    assert smoke.policy.actor_network_kwargs.hidden_dims == [16]


def _env_kwargs(windows):
    return dict(robot={"_target_": "robolearn.robots.sim.SO101SimRobot", "fps": 10, "camera": None,
                       "max_episode_steps": 8},
                kinematics={"_target_": "robolearn.robots.kinematics.SO101Kinematics", "units": "radians",
                            "point": "grasp"},
                action_mode="ee", max_ee_step_m=0.02, workspace_bounds=[[0.1, -0.2, 0.02], [0.45, 0.2, 0.3]],
                reward="sim", reset_mode="scripted", cameras=False, environment_state=True,
                teleop={"_target_": "robolearn.teleop.scripted.ScriptedTeleop"},
                trigger={"_target_": "robolearn.record.takeover.StepWindows", "windows": windows})


def test_robot_env_interventions_carry_the_expert_action_into_both_buffers():
    import gymnasium as gym

    from robolearn.policies.sac import SACPolicy
    from robolearn.rl.hil.actor import HILActor, LearnerClient
    from robolearn.rl.hil.learner import RemoteActorDataModule

    fmap = {"agent_pos": "observation.state", "environment_state": "observation.environment_state"}
    dm = RemoteActorDataModule(ENV_ID, fmap, env_kwargs=_env_kwargs([[0, 3]]), batch_size=4,
                               online_step_before_learning=4, stats_steps=8, port=0, drq_pad=0, wait_timeout_s=60)
    tiny = smoke_policy_kwargs("sac")
    dm.connect(SACPolicy(features=dm.features, stats=dm.stats, **tiny))
    env = gym.make(ENV_ID, **_env_kwargs([[0, 3]]))
    client = LearnerClient(dm.server.address, timeout_s=30)
    try:
        actor = HILActor(env, fmap, client, lambda **kw: SACPolicy(**kw, **tiny), intervention=None, push_every=100)
        actor.connect()
        ts = [actor.step() for _ in range(16)]  # two 8-step episodes, the expert drives steps 0-2 of each
        flags = [float(t[IS_INTERVENTION]) for t in ts]
        assert flags == ([1.0] * 3 + [0.0] * 5) * 2 and actor.interventions == 6
        assert dm.ingest() == 16
        assert len(dm.online_buffer) == 16 and len(dm.offline_buffer) == 6
        off = dm.offline_buffer.gather(torch.arange(6))
        assert torch.all(off[IS_INTERVENTION] == 1)
        assert torch.equal(off["action"][:3], torch.stack([t["action"] for t in ts[:3]]))
        # the executed action is the expert's (info["teleop_action"]), not the policy's: replay it on a fresh env
        ref = gym.make(ENV_ID, **_env_kwargs([[0, 3]]))
        ref.reset(seed=actor.env_actor.seed)
        _, _, _, _, info = ref.step(np.zeros(4, np.float32))
        np.testing.assert_allclose(ts[0]["action"].numpy(), info["teleop_action"], atol=1e-6)
        assert ts[0]["observation.environment_state"].shape == (15,) and ts[0]["observation.state"].shape == (6,)
        assert float(ts[0]["action"][:3].abs().max()) <= 0.02 + 1e-6
        ref.close()
    finally:
        client.close()
        env.close()
        dm.close()


def _train(run_dir: Path, log_dir: Path, steps: int, *extra: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "MUJOCO_GL": "egl"}
    cmd = [sys.executable, "train.py", "experiment=hil_serl_so101_sim", "debug=smoke", f"trainer.max_steps={steps}",
           "trainer.val_check_interval=3", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}",
           f"paths.log_dir={log_dir}", *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_learner_and_actor_through_robot_env_and_buffers_survive_a_learner_restart(tmp_path):
    run = tmp_path / "run"
    _train(run, tmp_path, 6)  # learner + actor subprocess (role=both from debug=smoke)
    ckpts = run / "checkpoints"
    assert (ckpts / "step_000006.ckpt").is_file()
    first = ckpts / "replay_buffers" / "step_000006"
    meta = read_meta(first)["buffers"]
    n_on, n_off = meta["online"]["size"], meta["offline"]["size"]
    assert n_on >= 40 and 0 < n_off <= n_on  # warm-up transitions arrived; the expert's went to both buffers
    state = torch.load(ckpts / "step_000006.ckpt", map_location="cpu", weights_only=False)["RemoteActorDataModule"]
    assert state["replay_buffers"] == {"folder": "step_000006", "online": n_on, "offline": n_off}
    saved = load_file(str(first / "online.safetensors"))
    assert saved["observation.environment_state"].shape == (n_on, 15) and saved["action"].shape == (n_on, 4)
    assert torch.isfinite(saved["action"]).all() and float(saved["action"][:, :3].abs().max()) <= 0.02 + 1e-6
    inter = saved["complementary_info.is_intervention"].reshape(-1) > 0.5
    assert int(inter.sum()) == n_off
    # RLIF's reward (actor.intervention_penalty: 1): each takeover also sent the policy's rejected action, reward -1,
    # ending its episode, to the online buffer only
    rejected = saved["next.reward"].reshape(-1) < -0.5
    assert rejected.any() and not inter[rejected].any() and saved["next.done"].reshape(-1)[rejected].all()
    offline = load_file(str(first / "offline.safetensors"))
    assert torch.equal(offline["action"], saved["action"][inter])  # the same transitions in both buffers
    assert (run / "actor" / ".hydra" / "overrides.yaml").is_file()  # the actor's run folder is inside the learner's
    actor_cfg = OmegaConf.load(run / "actor" / ".hydra" / "config.yaml")
    assert actor_cfg.actor.num_threads == 1  # role=both split the cores: the actor keeps its one thread
    with open(next((run / "csv").glob("version_*/metrics.csv"))) as fh:
        episodes = [r for r in csv.DictReader(fh) if r.get("env/success")]
    assert episodes and all(r["env/intervention_rate"] not in ("", None) for r in episodes)  # one row per episode
    assert 0.0 < max(float(r["env/intervention_rate"]) for r in episodes) <= 1.0

    out = _train(run, tmp_path, 9, "ckpt_path=auto")  # the learner restarts (a new actor too)
    assert "Restored all states from the checkpoint" in out
    assert f"replay buffers restored from {first}: online {n_on}, offline {n_off} transitions" in out
    second = read_meta(ckpts / "replay_buffers" / "step_000009")["buffers"]
    assert second["online"]["size"] >= n_on and second["offline"]["size"] >= n_off
    resumed = load_file(str(ckpts / "replay_buffers" / "step_000009" / "online.safetensors"))
    for key, value in saved.items():
        if key != "__generator_state__":
            assert torch.equal(resumed[key][:n_on], value), key  # the restored transitions, then the new ones
    assert not any(p.name.startswith(".") for p in (ckpts / "replay_buffers").iterdir())
