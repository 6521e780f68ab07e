"""``python eval.py ...`` as a user runs it: an exported tiny ACT on PushT, and the compose path in-process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.eval.helpers import PUSHT_DS, export_tiny_pusht_act
from tests.compose import compose_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~10 s of imports in a fresh interpreter; test_run_eval_in_process_pretrained covers the path
def test_eval_py_subprocess_pretrained_pusht(shared_datasets, tmp_path):
    model = export_tiny_pusht_act(shared_datasets / PUSHT_DS, tmp_path / "pretrained_model")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "eval.py", f"policy.path={model}", "env=pusht", "eval.n_episodes=2", "eval.batch_size=2",
           "seed=1000", "env.max_episode_steps=4", "eval.max_episodes_rendered=1", "eval.progress=false",
           "env.make.visualization_width=96", "env.make.visualization_height=96", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((run_dir / "eval_info.json").read_text())
    assert info["env"] == "pusht" and info["n_episodes"] == 2 and info["seed"] == 1000
    assert [e["seed"] for e in info["per_episode"]] == [1000, 1001]
    assert [e["length"] for e in info["per_episode"]] == [4, 4]
    assert {"pc_success", "avg_sum_reward", "avg_max_reward", "pc_success_ci95", "avg_max_coverage"} <= set(info["aggregated"])
    assert (run_dir / "eval_plot.png").is_file() and (run_dir / "videos" / "eval_episode_0.mp4").is_file()
    assert not (run_dir / "videos" / "eval_episode_1.mp4").exists()


def _compose(overrides):
    return compose_config("eval", overrides)


@pytest.mark.parametrize("env", sorted(p.stem for p in (REPO / "conf" / "env").glob("*.yaml") if p.stem != "none"))
def test_every_env_config_instantiates(env):
    from hydra.utils import instantiate

    from robolearn.envs.factory import EnvSpec

    cfg = _compose([f"env={env}", "policy=scripted"])
    spec = instantiate(cfg.env)
    assert isinstance(spec, EnvSpec) and spec.name == env and spec.fps > 0
    assert all(v.startswith("observation.") for v in spec.features_map.values())


def test_run_eval_in_process_pretrained(shared_datasets, tmp_path):
    """``python eval.py policy.path=<exported dir> env=pusht ...`` composed and run in this process."""
    from hydra.core.hydra_config import HydraConfig

    sys.path.insert(0, str(REPO))
    import eval as eval_script

    model = export_tiny_pusht_act(shared_datasets / PUSHT_DS, tmp_path / "pretrained_model")
    cfg = _compose([f"policy.path={model}", "env=pusht", "eval.n_episodes=3", "eval.batch_size=2", "seed=5",
                    "env.max_episode_steps=3", "eval.max_episodes_rendered=1", "eval.progress=false",
                    "env.make.visualization_width=96", "env.make.visualization_height=96",
                    f"paths.output_dir={tmp_path / 'run'}"])
    HydraConfig.instance().set_config(cfg)
    info = eval_script.run_eval(cfg)
    assert [e["seed"] for e in info["per_episode"]] == [5, 6, 7] and info["batch_size"] == 2
    assert [e["length"] for e in info["per_episode"]] == [3, 3, 3]
    assert (tmp_path / "run" / "eval_info.json").is_file() and (tmp_path / "run" / "eval_plot.png").is_file()
    assert [p.name for p in (tmp_path / "run" / "videos").iterdir()] == ["eval_episode_0.mp4"]


def test_run_eval_in_process_scripted(tmp_path):
    """eval.py's run_eval on a composed config (policy=scripted on a state-only SO-101 env)."""
    from hydra.core.hydra_config import HydraConfig

    sys.path.insert(0, str(REPO))
    import eval as eval_script  # the repository's eval.py

    cfg = _compose(["policy=scripted", "env=so101_pick_place", "env.make.camera=null",
                    "~env.features_map.pixels", "~env.features_map.environment_state", "env.max_episode_steps=3",
                    "eval.n_episodes=2", "eval.batch_size=2", "eval.max_episodes_rendered=0", "eval.progress=false",
                    f"paths.output_dir={tmp_path}"])
    HydraConfig.instance().set_config(cfg)
    info = eval_script.run_eval(cfg)
    assert [e["length"] for e in info["per_episode"]] == [3, 3]
    assert json.loads((tmp_path / "eval_info.json").read_text())["per_episode"] == info["per_episode"]


def test_eval_without_env_is_an_error():
    sys.path.insert(0, str(REPO))
    import eval as eval_script

    cfg = _compose(["policy=scripted", "env=none"])
    with pytest.raises(ValueError, match="needs a simulated env"):
        eval_script.run_eval(cfg)
