"""Resume checks, bad input, keyboard events, the rate keeper, keyboard/scripted teleops, replay and deploy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.datasets.lerobot_dataset import LeRobotDataset
from robolearn.datasets.writer import LeRobotDatasetWriter
from robolearn.record.events import KeyboardEvents
from robolearn.utils.terminal_keys import parse_keys
from robolearn.record.frames import check_teleop_matches
from robolearn.record.loop import RateKeeper, control_loop
from robolearn.record.session import check_resume_compatible, record_dataset, replay_episode
from robolearn.teleop.keyboard import KeyboardEndEffectorTeleop
from tests.record.conftest import FEATURES, assert_synth_episodes, synth_frame, write_synth
from tests.record.fakes import FakeRobot as _Robot


# ------------------------------------------------------------------------------------------------ resume / input
def test_resume_mismatch_names_both_sides(tmp_path):
    write_synth(tmp_path / "ds", [0])
    w = LeRobotDatasetWriter.resume(tmp_path / "ds")
    with pytest.raises(ValueError, match=r"fps=10.*fps=30"):
        check_resume_compatible(w, 30, FEATURES)
    other = {**FEATURES, "action": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]}}
    with pytest.raises(ValueError, match=r"\['action'\].*'shape': \[2\].*'shape': \[3\]"):
        check_resume_compatible(w, 10, other)
    check_resume_compatible(w, 10, FEATURES)  # same: no error


def test_bad_frames_raise_naming_the_key_and_keep_saved_episodes(tmp_path):
    w = write_synth(tmp_path / "ds", [0])
    bad = synth_frame(1, 0)
    del bad["action"]
    with pytest.raises(ValueError, match=r"missing \['action'\]"):
        w.add_frame(bad)
    bad = synth_frame(1, 0)
    bad["observation.state"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"'observation.state': expected shape \[3\], got \[4\]"):
        w.add_frame(bad)
    w.add_frame(synth_frame(1, 0))
    w.finalize()
    assert_synth_episodes(tmp_path / "ds", [0])


class _Teleop:
    def __init__(self, keys=("x", "y")):
        self.keys, self.is_connected = keys, False

    action_features = property(lambda self: {k: float for k in self.keys})

    def connect(self):
        self.is_connected = True

    def disconnect(self):
        self.is_connected = False

    def reset(self):
        pass

    def get_action(self, obs):
        return {"x": obs["s"], "y": -obs["s"]}


def test_teleop_robot_key_mismatch_lists_both(tmp_path):
    with pytest.raises(ValueError, match=r"\['x', 'z'\].*\['x', 'y'\]"):
        check_teleop_matches(_Teleop(("x", "z")), _Robot())
    with pytest.raises(ValueError, match="do not match"):
        record_dataset(_Robot(), _Teleop(("x", "z")), {"repo_id": "t/t", "root": str(tmp_path / "d"), "fps": 100,
                                                      "episode_time_s": 0.1, "num_episodes": 1})
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------------------------------------ events / loop
def test_parse_keys_and_events():
    assert parse_keys(b"\x1b[C\x1b[Dw\x1b") == ["right", "left", "w", "esc"]
    ev = KeyboardEvents(listen=False).start()
    assert ev.source is None  # stdin is not a terminal under pytest, or listen=False
    ev.press("left")
    assert ev.rerecord_episode and ev.exit_early and not ev.stop_recording
    ev.start_episode()
    assert not ev.exit_early and not ev.rerecord_episode
    ev.press("esc")
    assert ev.stop_recording and ev.exit_early


def test_record_events_exit_early_rerecord_and_stop(tmp_path):
    """Episode 0: → after 3 frames (kept, 3 frames). Episode 1: ← after 2 (discarded), then re-recorded fully
    (5 frames). Episode 2: Esc after 4 frames (kept), recording stops although 5 episodes were asked."""
    ev = KeyboardEvents(listen=False)
    script = iter([{3: "right"}, {2: "left"}, {}, {4: "esc"}])
    robot = _Robot(events=ev)
    orig_reset = robot.reset

    def reset(seed=None):
        robot.keys = next(script)
        return orig_reset(seed)
    robot.reset = reset
    cfg = {"repo_id": "t/ev", "single_task": "t", "root": str(tmp_path / "d"), "fps": 200, "episode_time_s": 0.025,
           "reset_time_s": 0, "num_episodes": 5}
    w = record_dataset(robot, _Teleop(), cfg, events=ev, play_sounds=False)
    assert w.total_episodes == 3
    ds = LeRobotDataset("t/ev", root=tmp_path / "d")
    lengths = [int((ds.episode_data_index["to"] - ds.episode_data_index["from"])[i]) for i in range(3)]
    assert lengths == [3, 5, 4]
    assert ds[3]["action"].tolist() == [0.0, -0.0]  # the re-recorded episode starts again at state 0


def test_rate_keeper_counts_overruns_with_a_fake_clock():
    t = [0.0]
    slept = []
    rk = RateKeeper(10, clock=lambda: t[0], sleep=lambda s: (slept.append(s), t.__setitem__(0, t[0] + s)))
    rk.start()
    for work in (0.02, 0.15, 0.05, 0.30, 0.01):  # seconds of work per iteration; period 0.1 s
        t[0] += work
        rk.wait()
    s = rk.stats
    assert s.frames == 5 and s.overruns == 2
    assert s.max_iteration_s == pytest.approx(0.30)
    # 0.1 + 0.15 (overrun) + 0.1 + 0.30 (overrun) + 0.1 = 0.75 s
    assert s.duration_s == pytest.approx(0.75) and s.achieved_hz == pytest.approx(5 / 0.75)
    assert s.slow and "2 overruns" in s.report()


def test_control_loop_frame_count_and_timestamps(tmp_path):
    robot = _Robot()
    w = LeRobotDatasetWriter.create("t/l", 50, {"observation.state": {"dtype": "float32", "shape": [1], "names": ["s"]},
                                               "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]}},
                                    root=tmp_path / "d")
    feats = {k: v for k, v in w.features.items() if k in ("observation.state", "action")}
    stats = control_loop(robot, _Teleop().get_action, 50, 0.1, writer=w, features=feats, task="t")
    assert stats.frames == 5 and w.num_buffered_frames == 5
    w.save_episode()
    ds = LeRobotDataset("t/l", root=tmp_path / "d")
    assert [round(float(ds[i]["timestamp"]), 6) for i in range(5)] == [0.0, 0.02, 0.04, 0.06, 0.08]
    assert [float(ds[i]["observation.state"]) for i in range(5)] == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------------------------------ teleops
def test_keyboard_teleop_keys_to_deltas():
    kb = KeyboardEndEffectorTeleop(step=0.5, listen=False)
    kb.connect()
    for k in "wwwar ":
        kb.press(k)
    assert kb.get_action() == {"delta_x": 1.0, "delta_y": 0.5, "delta_z": 0.5, "gripper": 0.0}
    assert kb.get_action() == {"delta_x": 0.0, "delta_y": 0.0, "delta_z": 0.0, "gripper": 0.0}
    kb.press("f"), kb.press(" ")
    assert kb.get_action() == {"delta_x": 0.0, "delta_y": 0.0, "delta_z": -0.5, "gripper": 1.0}


# ------------------------------------------------------------------------------------------------ sim: replay / deploy
@pytest.fixture(scope="module")
def sim_dataset(tmp_path_factory):
    from robolearn.robots.sim import SO101SimRobot
    from robolearn.teleop.scripted import ScriptedTeleop

    root = tmp_path_factory.mktemp("sim") / "ds"
    robot = SO101SimRobot(fps=10, image_size=16)
    cfg = {"repo_id": "t/sim", "single_task": "pick", "root": str(root), "fps": 10, "episode_time_s": 0.8,
           "reset_time_s": 0, "num_episodes": 1, "video": False}
    record_dataset(robot, ScriptedTeleop(robot), cfg, seed=5, play_sounds=False)
    return root


def test_replay_reproduces_recorded_actions_and_states(sim_dataset):
    from robolearn.robots.sim import SO101SimRobot

    robot = SO101SimRobot(fps=10, image_size=16)
    states = []
    orig = robot.send_action

    def send(action):
        states.append([robot.get_observation()[k] for k in robot.state_names])
        return orig(action)
    robot.send_action = send
    recorded, sent = replay_episode(robot, sim_dataset, "t/sim", 0, seed=5)
    assert recorded.shape == (8, 4)
    np.testing.assert_allclose(sent, recorded, atol=1e-6)
    ds = LeRobotDataset("t/sim", root=sim_dataset)
    rec_states = np.stack([ds[i]["observation.state"].numpy() for i in range(len(ds))])
    np.testing.assert_allclose(np.asarray(states, np.float32), rec_states, atol=1e-5)


def test_sim_robot_demonstration_noise_reports_the_commanded_action():
    """With DART noise the simulated SO-101 executes a perturbed move but reports (and record.py records) the
    command; the perturbation is drawn from the reset seed."""
    from robolearn.robots.sim import SO101SimRobot
    from robolearn.teleop.scripted import ScriptedTeleop

    def run(noise: float, seed: int = 3):
        robot = SO101SimRobot(fps=10, camera=None, action_noise=noise)
        teleop = ScriptedTeleop(robot)
        robot.connect()
        try:
            robot.reset(seed=seed)
            commands, sent, states = [], [], []
            for _ in range(6):
                command = teleop.get_action()
                commands.append(list(command.values()))
                sent.append(list(robot.send_action(command).values()))
                states.append([robot.get_observation()[k] for k in robot.state_names])
            return np.asarray(commands), np.asarray(sent), np.asarray(states)
        finally:
            robot.disconnect()

    clean_cmd, clean_sent, clean_states = run(0.0)
    noisy_cmd, noisy_sent, noisy_states = run(0.5)
    np.testing.assert_array_equal(noisy_sent, noisy_cmd)  # the commanded action is what is reported
    np.testing.assert_array_equal(clean_sent, clean_cmd)
    assert not np.allclose(noisy_states, clean_states)  # ... while the arm went elsewhere
    np.testing.assert_array_equal(run(0.5)[2], noisy_states)  # same seed, same perturbation
    with pytest.raises(ValueError, match="missed_grasps"):
        SO101SimRobot(camera=None, missed_grasps=2.0)


class _TinyPolicy(torch.nn.Module):
    """Linear map of the state plus the image mean; records the batches it sees."""

    input_features = {"observation.state": None, "observation.images.workspace": None}

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 4)
        self.seen = []

    def reset(self):
        pass

    def select_action(self, batch):
        self.seen.append(batch)
        img = batch["observation.images.workspace"]
        return torch.tanh(self.lin(batch["observation.state"])) * 0.5 + img.mean() * 0.0


def test_deploy_runs_policy_on_sim_and_records(tmp_path):
    from robolearn.record.deploy import deploy
    from robolearn.record.frames import robot_dataset_features
    from robolearn.robots.sim import SO101SimRobot

    torch.manual_seed(0)
    robot = SO101SimRobot(fps=10, image_size=16)
    policy = _TinyPolicy()
    w = LeRobotDatasetWriter.create("t/dep", 10, robot_dataset_features(robot, use_video=False),
                                    root=tmp_path / "d")
    robot.connect()
    try:
        res = deploy(policy, robot, fps=10, num_episodes=2, episode_time_s=0.4, writer=w, seed=0)
    finally:
        robot.disconnect()
    assert [r["frames"] for r in res] == [4, 4] and all(r["success"] is False for r in res)
    b = policy.seen[0]
    assert b["observation.state"].shape == (1, 6) and b["observation.state"].dtype == torch.float32
    img = b["observation.images.workspace"]
    assert img.shape == (1, 3, 16, 16) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1
    ds = LeRobotDataset("t/dep", root=tmp_path / "d")
    assert ds.meta.total_episodes == 2
    for i in (0, 5):
        with torch.no_grad():
            expected = torch.tanh(policy.lin(ds[i]["observation.state"][None])) * 0.5
        np.testing.assert_allclose(ds[i]["action"].numpy(), expected[0].numpy(), atol=1e-6)
