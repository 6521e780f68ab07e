"""Deployment with a teleoperator (robolearn.record.deploy / takeover / rename): the reset phase between episodes,
rename_map, takeover and hand-back (Tab, step windows, deviation from the expert) with the per-frame
``intervention`` flag, and recording only the corrections."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from robolearn.datasets.lerobot_dataset import LeRobotDataset
from robolearn.datasets.writer import LeRobotDatasetWriter
from robolearn.record.deploy import deploy, deploy_features, policy_action_fn, reset_phase
from robolearn.record.events import TAB, KeyboardEvents
from robolearn.record.rename import check_rename_map
from robolearn.record.takeover import Deviation, StepWindows
from robolearn.utils.terminal_keys import parse_keys
from tests.record.fakes import FakeRobot as _Robot


class _Teleop:
    """Teleoperator action ``x = 100 + s``, ``y = 1``; counts its calls."""

    name = "fake_teleop"
    action_features = property(lambda self: {"x": float, "y": float})

    def __init__(self):
        self.calls, self.is_connected = 0, True

    def reset(self):
        pass

    def get_action(self, obs=None):
        self.calls += 1
        return {"x": 100.0 + obs["s"], "y": 1.0}


class _Policy(torch.nn.Module):
    """Action ``x = s``, ``y = 0``; logs ``"reset"`` and ``"act"`` in call order."""

    input_features = {"observation.state": None}

    def __init__(self):
        super().__init__()
        self.log = []

    def reset(self):
        self.log.append("reset")

    def select_action(self, batch):
        self.log.append("act")
        return torch.cat([batch["observation.state"], torch.zeros(1, 1)], dim=1)


def _writer(root, robot, with_teleop=True, fps=50):
    return LeRobotDatasetWriter.create("t/dep", fps, deploy_features(robot, use_video=False, with_teleop=with_teleop),
                                       root=root)


def _column(ds, key):
    return [ds[i][key].numpy().reshape(-1).tolist() for i in range(len(ds))]


# ---------------------------------------------------------------------------------------------------- reset phase
def test_reset_phase_runs_the_teleop_and_records_nothing(tmp_path):
    robot, teleop, policy = _Robot(), _Teleop(), _Policy()
    w = _writer(tmp_path / "d", robot)
    res = deploy(policy, robot, fps=50, num_episodes=2, episode_time_s=0.1, reset_time_s=0.06, teleop=teleop,
                 writer=w, realtime=False)
    w.finalize()
    # Episode 0: 5 policy steps; reset phase: 3 teleop steps (y = 1); episode 1: 5 policy steps; no reset after it.
    assert [a["y"] for a in robot.sent] == [0.0] * 5 + [1.0] * 3 + [0.0] * 5
    assert [a["x"] for a in robot.sent[5:8]] == [105.0, 106.0, 107.0]  # the teleop drove on from the episode's end
    assert teleop.calls == 13  # read every step (episodes too), so an expert's plan follows the robot
    assert [r["frames"] for r in res] == [5, 5] and [r["intervention_frames"] for r in res] == [0, 0]
    ds = LeRobotDataset("t/dep", root=tmp_path / "d")
    assert ds.meta.total_episodes == 2 and len(ds) == 10
    assert _column(ds, "action") == [[float(i), 0.0] for i in range(5)] * 2  # only the policy's frames
    assert _column(ds, "intervention") == [[False]] * 10


def test_reset_phase_without_teleop_waits_and_ends_on_right_arrow():
    robot, events = _Robot(), KeyboardEvents(listen=False)
    t0 = time.monotonic()
    assert reset_phase(robot, None, 10, 0.2, events) == 0
    assert time.monotonic() - t0 >= 0.19 and robot.sent == []  # no command while a person resets the scene
    events.press("right")
    t0 = time.monotonic()
    reset_phase(robot, None, 10, 30.0, events)
    assert time.monotonic() - t0 < 1.0


# ---------------------------------------------------------------------------------------------------- rename_map
class _CameraPolicy(torch.nn.Module):
    """Takes ``observation.state`` and ``observation.images.top``; keeps the batches it saw."""

    input_features = {"observation.state": None, "observation.images.top": None}

    def __init__(self):
        super().__init__()
        self.seen = []

    def reset(self):
        pass

    def select_action(self, batch):
        self.seen.append(batch)
        return torch.tensor([[0.0, 0.0, 0.1, 1.0]])


def test_rename_map_maps_robot_keys_to_policy_inputs(tmp_path):
    from robolearn.robots.sim import SO101SimRobot

    robot = SO101SimRobot(fps=10, image_size=16)
    policy = _CameraPolicy()
    w = _writer(tmp_path / "d", robot, with_teleop=False, fps=10)
    robot.connect()
    try:
        feats = deploy_features(robot)
        with pytest.raises(KeyError, match=r"policy inputs \['observation.images.top'\] are not provided.*"
                                           r"observation.images.workspace"):
            policy_action_fn(policy, robot, feats)
        first = robot.reset(seed=0)["workspace"]
        res = deploy(policy, robot, fps=10, num_episodes=1, episode_time_s=0.3, writer=w, seed=0, realtime=False,
                     rename_map={"observation.images.workspace": "observation.images.top"})
    finally:
        robot.disconnect()
    w.finalize()
    assert res[0]["frames"] == 3
    batch = policy.seen[0]
    assert set(batch) == {"observation.state", "observation.images.top", "task"}
    expected = torch.from_numpy(first).permute(2, 0, 1).float()[None] / 255
    torch.testing.assert_close(batch["observation.images.top"], expected)
    ds = LeRobotDataset("t/dep", root=tmp_path / "d")
    assert "observation.images.workspace" in ds.features and "observation.images.top" not in ds.features


def test_bad_rename_map_names_the_key_and_the_available_ones():
    keys = ["observation.state", "observation.images.workspace"]
    with pytest.raises(KeyError, match=r"\['observation.images.front'\] are not observation keys of the robot.*"
                                       r"\['observation.state', 'observation.images.workspace'\]"):
        check_rename_map({"observation.images.front": "observation.images.top"}, keys)
    with pytest.raises(ValueError, match=r"same name \['observation.state'\]"):
        check_rename_map({"observation.images.workspace": "observation.state"}, keys)
    with pytest.raises(ValueError, match=r"targets \['observation.images.wrist'\] are not inputs of the policy.*"
                                         r"observation.images.top"):
        check_rename_map({"observation.images.workspace": "observation.images.wrist"}, keys,
                         ["observation.state", "observation.images.top"])
    with pytest.raises(ValueError, match="non-empty strings"):
        check_rename_map({"observation.state": ""}, keys)
    assert check_rename_map(None, keys) == {}


# ---------------------------------------------------------------------------------------------------- takeover
def test_tab_takes_over_and_hands_back_with_flags_and_a_policy_reset(tmp_path):
    assert parse_keys(b"\t") == [TAB]  # what the terminal reader delivers for Tab
    events = KeyboardEvents(listen=False)
    robot, teleop, policy = _Robot(keys={2: TAB, 4: TAB}, events=events), _Teleop(), _Policy()
    w = _writer(tmp_path / "d", robot)
    res = deploy(policy, robot, fps=50, num_episodes=1, episode_time_s=0.12, teleop=teleop, writer=w,
                 events=events, realtime=False)
    w.finalize()
    ds = LeRobotDataset("t/dep", root=tmp_path / "d")
    assert _column(ds, "intervention") == [[False], [False], [True], [True], [False], [False]]
    assert _column(ds, "action") == [[0.0, 0.0], [1.0, 0.0], [102.0, 1.0], [103.0, 1.0], [4.0, 0.0], [5.0, 0.0]]
    # The policy is not run while the person drives, and its queue is reset when control comes back.
    assert policy.log == ["reset", "act", "act", "reset", "act", "act"]
    assert res[0]["takeovers"] == 1 and res[0]["intervention_frames"] == 2


def test_scripted_takeover_on_the_simulated_so101_flags_expert_frames(tmp_path):
    """StepWindows [[2, 5]] on robot=sim_so101_pick_place (no camera), teleop=scripted: frames 2-4 of every episode
    hold the expert's action and intervention=True, the others the policy's; the policy restarts at hand-back."""
    from robolearn.robots.sim import SO101SimRobot
    from robolearn.teleop.scripted import ScriptedTeleop

    class LoggingExpert(ScriptedTeleop):
        def __init__(self, robot):
            super().__init__(robot)
            self.actions = []

        def get_action(self, observation=None):
            self.actions.append(super().get_action(observation))
            return self.actions[-1]

    class ConstantPolicy(_Policy):
        def select_action(self, batch):
            self.log.append("act")
            return torch.tensor([[0.2, -0.1, 0.3, 1.0]])

    robot = SO101SimRobot(fps=10, camera=None)
    teleop, policy = LoggingExpert(robot), ConstantPolicy()
    w = LeRobotDatasetWriter.create("t/dep", 10, deploy_features(robot, use_video=False, with_teleop=True),
                                    root=tmp_path / "d")
    robot.connect()
    try:
        res = deploy(policy, robot, fps=10, num_episodes=2, episode_time_s=0.8, teleop=teleop,
                     takeover=StepWindows([[2, 5]]), writer=w, seed=0, realtime=False)
    finally:
        robot.disconnect()
    w.finalize()
    ds = LeRobotDataset("t/dep", root=tmp_path / "d")
    flags = np.asarray([f[0] for f in _column(ds, "intervention")], bool)
    assert flags.tolist() == [False, False, True, True, True, False, False, False] * 2
    actions = np.asarray(_column(ds, "action"), np.float32)
    expert = np.asarray([list(a.values()) for a in teleop.actions], np.float32)
    np.testing.assert_array_equal(actions[flags], expert[flags])
    np.testing.assert_allclose(actions[~flags], [[0.2, -0.1, 0.3, 1.0]] * 10, atol=1e-6)
    assert not np.allclose(expert[2:5], [0.2, -0.1, 0.3, 1.0])  # the expert really acted differently
    # Per episode: reset, steps 0-2 (the policy's action at step 2 is replaced), reset at hand-back, steps 5-7.
    assert policy.log == ["reset", "act", "act", "act", "reset", "act", "act", "act"] * 2
    assert [(r["takeovers"], r["intervention_frames"]) for r in res] == [(1, 3), (1, 3)]


def test_deviation_trigger_takes_over_holds_and_hands_back():
    d = Deviation(threshold=0.5, hold_steps=3)
    assert not d.take_over(0, {"x": 0.0, "g": 1.0}, {"x": 0.4, "g": 1.0})
    assert d.take_over(1, {"x": 0.0, "g": 1.0}, {"x": 0.0, "g": 0.0})  # the gripper differs by 1
    assert [d.hand_back(s, {}) for s in (2, 3, 4)] == [False, False, True]
    assert d.take_over(7, {"x": float("nan"), "g": 1.0}, {"x": 0.0, "g": 1.0})  # a NaN action never reaches the arm
    d.reset()
    assert d.hand_back(0, {})
    with pytest.raises(ValueError, match="threshold"):
        Deviation(threshold=0.0)
    with pytest.raises(ValueError, match="hold_steps"):
        Deviation(threshold=0.5, hold_steps=0)
    with pytest.raises(ValueError, match=r"\[5, 2\]"):
        StepWindows([[5, 2]])


def test_deviation_patience_lets_the_policy_err_before_taking_over():
    d = Deviation(threshold=0.5, hold_steps=2, patience=3)
    far, near, expert = {"x": 1.0}, {"x": 0.1}, {"x": 0.0}
    # Two deviating steps, then a close one: the streak restarts.
    assert [d.take_over(s, a, expert) for s, a in enumerate([far, far, near, far, far])] == [False] * 5
    assert d.take_over(5, far, expert)  # the third deviating step in a row
    assert [d.hand_back(s, expert) for s in (6, 7)] == [False, True]
    # After the hand-back the count starts again from zero.
    assert [d.take_over(s, far, expert) for s in (7, 8, 9)] == [False, False, True]
    d.reset()
    assert not d.take_over(0, far, expert)
    d.reset()  # a new episode forgets the streak
    assert not d.take_over(0, far, expert) and not d.take_over(1, far, expert)
    # A non-finite action never waits for patience.
    assert Deviation(threshold=0.5, patience=5).take_over(0, {"x": float("inf")}, expert)
    with pytest.raises(ValueError, match="patience"):
        Deviation(threshold=0.5, patience=0)


def test_record_only_corrections_saves_one_episode_per_takeover(tmp_path):
    robot, teleop, policy = _Robot(), _Teleop(), _Policy()
    w = _writer(tmp_path / "d", robot)
    res = deploy(policy, robot, fps=50, num_episodes=1, episode_time_s=0.16, teleop=teleop,
                 takeover=StepWindows([[1, 3], [6, 8]]), record_autonomous=False, writer=w, realtime=False)
    w.finalize()
    assert res[0]["frames"] == 8 and res[0]["takeovers"] == 2
    ds = LeRobotDataset("t/dep", root=tmp_path / "d")
    assert ds.meta.total_episodes == 2  # steps 1-2, and steps 6-7 (saved at the episode's end)
    assert _column(ds, "action") == [[101.0, 1.0], [102.0, 1.0], [106.0, 1.0], [107.0, 1.0]]
    assert _column(ds, "intervention") == [[True]] * 4
    assert _column(ds, "episode_index") == [[0], [0], [1], [1]]


def test_deploy_rejects_bad_settings(tmp_path):
    robot, policy = _Robot(), _Policy()
    with pytest.raises(ValueError, match="need a teleoperator"):
        deploy(policy, robot, fps=10, num_episodes=1, episode_time_s=1, takeover=StepWindows([[0, 1]]))
    with pytest.raises(ValueError, match="need a teleoperator"):
        deploy(policy, robot, fps=10, num_episodes=1, episode_time_s=1, record_autonomous=False)
    with pytest.raises(ValueError, match="episode_time_s"):
        deploy(policy, robot, fps=10, num_episodes=1, episode_time_s=0)
    with pytest.raises(ValueError, match="reset_time_s"):
        deploy(policy, robot, fps=10, num_episodes=1, episode_time_s=1, reset_time_s=float("inf"))
    w = _writer(tmp_path / "d", robot, with_teleop=False)
    with pytest.raises(ValueError, match=r"keys \['intervention'\]"):
        deploy(policy, robot, fps=50, num_episodes=1, episode_time_s=0.1, teleop=_Teleop(), writer=w)
