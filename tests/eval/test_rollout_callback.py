"""callbacks=rollout_eval inside a trainer=smoke fit of a tiny ACT on a real PushT dataset, evaluated in gym-pusht."""

import csv
import json
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from robolearn.utils.schema import register_schemas
from tests.eval.helpers import PUSHT_DS

REPO = Path(__file__).resolve().parents[2]
TINY_ACT = ["policy=act_tiny", "policy.chunk_size=4"]


def _cfg(tmp_path, overrides):
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "experiment=none", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_rollout_eval_callback_logs_during_fit(tmp_path, shared_datasets):
    sys.path.insert(0, str(REPO))
    import train as train_script

    from robolearn.callbacks.rollout_eval import RolloutEval

    run = tmp_path / "run"
    cfg = _cfg(tmp_path, [
        "dataset=local", f"dataset.root={shared_datasets / PUSHT_DS}", "dataset.num_workers=0", "dataset.batch_size=4",
        "dataset.val_fraction=0.2", *TINY_ACT, "trainer=smoke", "callbacks=rollout_eval", "env=pusht",
        "env.max_episode_steps=3", "env.make.visualization_width=96", "env.make.visualization_height=96",
        "callbacks.rollout_eval.every_n_train_steps=2", "callbacks.rollout_eval.n_episodes=2",
        "callbacks.rollout_eval.batch_size=2", "callbacks.rollout_eval.max_episodes_rendered=1",
        f"paths.root_dir={tmp_path}", f"paths.output_dir={run}",
    ])
    trainer, module, _ = train_script.train(cfg)
    assert trainer.global_step == 3
    (cb,) = [c for c in trainer.callbacks if isinstance(c, RolloutEval)]
    # evaluated at step 2 (period) and at the end of fit (step 3)
    assert [step for step, _ in cb.history] == [2, 3]
    for _, metrics in cb.history:
        assert set(metrics) == {"eval/pc_success", "eval/avg_sum_reward", "eval/avg_max_reward", "eval/avg_max_coverage"}
        assert 0.0 <= metrics["eval/avg_max_reward"] <= 1.0
    info = json.loads((run / "eval" / "step_000002" / "eval_info.json").read_text())
    assert [e["length"] for e in info["per_episode"]] == [3, 3] and [e["seed"] for e in info["per_episode"]] == [1000, 1001]
    assert (run / "eval" / "step_000002" / "videos" / "eval_episode_0.mp4").is_file()

    (metrics_csv,) = sorted((run / "csv").glob("version_*/metrics.csv"))
    with open(metrics_csv) as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval/pc_success")]
    assert [int(r["step"]) for r in rows] == [2, 3]
    assert float(rows[0]["eval/avg_sum_reward"]) == pytest.approx(cb.history[0][1]["eval/avg_sum_reward"])
    # the last evaluation is what train.py returns with objective=eval/pc_success
    assert train_script.objective_value(trainer, "eval/avg_max_coverage") == pytest.approx(
        cb.history[-1][1]["eval/avg_max_coverage"])

    # an evaluation restores train mode and leaves the action queue empty
    module.train()
    cb.evaluate(trainer, module)
    assert module.training and len(module._action_queue) == 0 and len(cb.history) == 3


def test_rollout_eval_needs_an_env(tmp_path):
    from hydra.utils import instantiate

    cfg = _cfg(tmp_path, ["trainer=smoke", "callbacks=rollout_eval", f"paths.output_dir={tmp_path}"])  # env: none
    with pytest.raises(Exception, match="needs a simulated env"):
        instantiate(cfg.callbacks.rollout_eval)
