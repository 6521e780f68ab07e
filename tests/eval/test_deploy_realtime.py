"""``eval.py`` deployment's ``dataset.realtime``: a simulated robot steps as fast as it can with ``false`` (DAgger
corrections in minutes instead of real time), holds ``dataset.fps`` with ``true`` (the default), and a robot that is
not a :class:`~robolearn.robots.sim.SimRobot` refuses ``false`` before it connects."""

from __future__ import annotations

import pytest

from tests.compose import compose_config
from tests.eval.test_deploy_dagger import _export_state_act, eval_script


def _deploy(model, out, *extra: str) -> dict:
    cfg = compose_config("eval", [
        f"policy.path={model}", "robot=sim_so101_pick_place", "robot.camera=null", "dataset.fps=5",
        "dataset.episode_time_s=1.0", "eval.n_episodes=2", "keyboard_events=false", f"paths.output_dir={out}",
        *extra], set_hydra=True)
    return eval_script.run_deploy(cfg)


def test_realtime_false_steps_a_simulated_robot_faster_than_fps(tmp_path):
    model = _export_state_act(tmp_path / "model")
    fast = _deploy(model, tmp_path / "fast", "dataset.realtime=false", "teleop=scripted", "takeover=windows",
                   "takeover.windows=[[1,3]]", "dataset.reset_time_s=2")
    assert fast["realtime"] is False
    assert [e["frames"] for e in fast["episodes"]] == [5, 5]
    assert [e["intervention_frames"] for e in fast["episodes"]] == [2, 2]
    # 5 Hz held in wall-clock time would be 5 Hz; a tiny ACT and the MuJoCo step run far faster than that.
    assert all(e["achieved_hz"] > 20 for e in fast["episodes"]), fast["episodes"]
    timed = _deploy(model, tmp_path / "timed")
    assert timed["realtime"] is True
    assert all(e["achieved_hz"] < 5 * 1.2 for e in timed["episodes"]), timed["episodes"]


def test_realtime_false_is_refused_for_a_real_robot(tmp_path):
    model = _export_state_act(tmp_path / "model")
    cfg = compose_config("eval", [f"policy.path={model}", "robot=so101_follower", "robot.port=/dev/null-robolearn-test",
                                  "dataset.realtime=false", "keyboard_events=false", f"paths.output_dir={tmp_path}"],
                         set_hydra=True)
    with pytest.raises(ValueError, match="realtime=false .*SOFollower is not a SimRobot"):
        eval_script.run_deploy(cfg)
