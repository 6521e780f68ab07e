"""RobotEnv ("robot as an environment") and the SO-101 kinematics: on the simulated SO-101 and on the real follower's
code over the pty fake Feetech bus."""

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from hydra.utils import instantiate
from omegaconf import OmegaConf

from robolearn.record.events import TAB, KeyboardEvents
from robolearn.record.takeover import StepWindows
from robolearn.robots.kinematics import ARM_JOINTS, SO101Kinematics
from robolearn.robots.motors import MotorCalibration, save_calibration
from robolearn.robots.robot import RobotError
from robolearn.robots.sim import SO101SimRobot
from robolearn.robots.so_follower import SOFollower
from robolearn.rl.robot_env import ClassifierReward, KeySuccessReward, RobotEnv
from robolearn.teleop.scripted import ScriptedTeleop
from robolearn.teleop.teleoperator import Teleoperator
from tests.robots.fake_feetech import PACKET_TIMEOUT_MS, FakeFeetechBus

CONF = Path(__file__).resolve().parents[2] / "conf"
NAMES = [*ARM_JOINTS, "gripper"]
ARM_KEYS = [f"{j}.pos" for j in ARM_JOINTS]
# One servo tick is 360/4095 deg; at the SO-101's ~0.4 m reach that is <= 0.6 mm per joint, so positions read back
# from the fake servos are compared within 2 mm.
TICK_TOL_M = 2e-3


# ------------------------------------------------------------------------------------------------ kinematics
def reachable_configs(kin, n, seed):
    """Joint configurations inside 60 % of each joint's range (no limit is active at the solution)."""
    rng = np.random.default_rng(seed)
    lim = kin.joint_limits
    return rng.uniform(0.6 * lim[:, 0], 0.6 * lim[:, 1], size=(n, 5))


@pytest.mark.parametrize("units,point", [("degrees", "gripperframe"), ("radians", "grasp")])
def test_ik_fk_round_trip(units, point):
    kin = SO101Kinematics(units, point)
    scale = 1.0 if units == "radians" else 180 / np.pi
    rng = np.random.default_rng(1)
    for q in reachable_configs(kin, 8, seed=0):
        x = kin.fk(q)
        seed = q + rng.normal(0.0, 0.2 * scale, size=5)  # start ~11 deg away from the configuration
        q2, err = kin.ik(x, seed)
        # The solver stops below ik_tolerance_m = 1e-5 m; 1e-4 m is 50x below the servos' resolution (TICK_TOL_M).
        assert np.linalg.norm(kin.fk(q2) - x) < 1e-4 and err < 1e-4
        lim = kin.joint_limits
        assert np.all(q2 >= lim[:, 0] - 1e-9) and np.all(q2 <= lim[:, 1] + 1e-9)
    # a point 2 m away is out of reach: the error says so instead of a silent wrong answer
    _, err = kin.ik([2.0, 0.0, 0.2], np.zeros(5))
    assert err > 1.0
    assert kin.fk(np.zeros(5)).shape == (3,)
    with pytest.raises(ValueError, match="5 values"):
        kin.fk([0.0] * 6)
    with pytest.raises(ValueError, match="non-finite.*elbow_flex"):
        kin.fk([0, 0, np.nan, 0, 0])
    with pytest.raises(ValueError, match="units"):
        SO101Kinematics("turns")


def test_degrees_and_radians_agree():
    deg, rad = SO101Kinematics("degrees"), SO101Kinematics("radians")
    q = reachable_configs(rad, 1, seed=3)[0]
    np.testing.assert_allclose(deg.fk(np.rad2deg(q)), rad.fk(q), atol=1e-12)
    np.testing.assert_allclose(deg.joint_limits, np.rad2deg(rad.joint_limits))


def test_fk_matches_the_simulator():
    """The kinematics' grasp point is the point the simulated SO-101 reports (grasp.x/y/z, float32)."""
    kin = SO101Kinematics("radians", "grasp")
    with SO101SimRobot(camera=None) as robot:
        obs = robot.reset(seed=0)
        for t in range(8):
            q = [obs[k] for k in ARM_KEYS]
            grasp = [obs["grasp.x"], obs["grasp.y"], obs["grasp.z"]]
            # measured differences <= 0.4 mm (float32 observations of a moving arm)
            np.testing.assert_allclose(kin.fk(q), grasp, atol=1e-3)
            robot.send_action({"delta_x": 1.0, "delta_y": 0.5 * (-1) ** t, "delta_z": -0.5, "gripper": 1.0})
            obs = robot.get_observation()


# ------------------------------------------------------------------------------------------- simulated SO-101
def sim_env(**kw):
    robot = SO101SimRobot(camera="workspace", image_size=16, max_episode_steps=kw.pop("sim_steps", 300))
    args = dict(action_mode="ee", kinematics=SO101Kinematics("radians", "grasp"), max_ee_step_m=0.02,
                reset_mode="scripted", max_episode_steps=40)
    args.update(kw)
    return RobotEnv(robot, **args)


def test_sim_reset_step_and_workspace_bounds():
    bounds = [[0.15, -0.15, 0.05], [0.35, 0.15, 0.25]]
    env = sim_env(workspace_bounds=bounds, max_episode_steps=30)
    try:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs) and info["is_intervention"] is False
        assert obs["agent_pos"].shape == (6,) and obs["pixels"]["workspace"].shape == (16, 16, 3)
        x0 = env.ee_position()
        obs, reward, terminated, truncated, info = env.step(np.asarray([0.0, 0.0, -0.02, 1.0], np.float32))
        assert env.ee_position()[2] < x0[2] - 0.003  # moved down (the simulated servos lag the 2 cm target)
        assert info["is_intervention"] is False and "teleop_action" not in info
        # push up and out for many steps: the end-effector stays in the box (sim tracking lag: a few mm)
        for _ in range(25):
            obs, reward, terminated, truncated, info = env.step(np.asarray([0.02, 0.02, 0.02, 1.0], np.float32))
        ee = env.ee_position()
        assert np.all(ee <= np.asarray(bounds[1]) + 5e-3), ee
        assert ee[2] > bounds[1][2] - 0.02  # and it did reach the top of the box
        # an action outside the action space is clipped to it: 1 m per step becomes max_ee_step_m
        sent = env.step(np.asarray([0.0, -1.0, 0.0, 1.0], np.float32))[4]["action_sent"]
        assert sent["delta_y"] == pytest.approx(-0.02 / env.robot.ee_delta_scale_m)
        # time limit
        for _ in range(10):
            *_, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
        assert truncated and env._step == 30
    finally:
        env.close()


def test_sim_non_finite_action_never_reaches_the_simulator():
    env = sim_env()
    try:
        env.reset(seed=1)
        before = env.robot.sim.unwrapped.data.time
        for bad in (np.nan, np.inf):
            with pytest.raises(RobotError, match=r"non-finite action.*dz=(nan|inf)"):
                env.step(np.asarray([0.0, 0.0, bad, 1.0]))
        assert env.robot.sim.unwrapped.data.time == before
        with pytest.raises(ValueError, match=r"shape \(4,\)"):
            env.step(np.zeros(6))
    finally:
        env.close()


def _expert_driven_sim_env(window: tuple[int, int], max_episode_steps: int) -> RobotEnv:
    """The simulated SO-101 in end-effector mode, its scripted expert taking over on the steps of ``window``."""
    robot = SO101SimRobot(camera=None)
    return RobotEnv(robot, action_mode="ee", kinematics=SO101Kinematics("radians", "grasp"), max_ee_step_m=0.03,
                    reset_mode="scripted", teleop=ScriptedTeleop(robot), trigger=StepWindows([list(window)]),
                    max_episode_steps=max_episode_steps)


def test_sim_interventions_by_scripted_expert():
    """StepWindows: the scripted expert drives steps 2..4; the flags and teleop actions follow."""
    env = _expert_driven_sim_env(window=(2, 5), max_episode_steps=20)
    try:
        env.reset(seed=2)
        flags = []
        for t in range(7):
            _, _, _, _, info = env.step(np.zeros(4, np.float32))
            flags.append(info["is_intervention"])
            assert info["takeover_started"] == (t == 2)  # only the step where the expert took over
            if info["is_intervention"]:
                assert info["teleop_action"].shape == (4,) and info["teleop_action"].dtype == np.float32
                # the executed action is the expert's, in metres (clipped to the action space)
                assert info["action_sent"]["gripper"] == pytest.approx(float(info["teleop_action"][3]))
            else:
                assert "teleop_action" not in info
                assert info["action_sent"] == {"delta_x": 0.0, "delta_y": 0.0, "delta_z": 0.0, "gripper": 0.0}
        assert flags == [False, False, True, True, True, False, False]
    finally:
        env.close()


def test_rlif_penalty_makes_the_rejected_policy_action_an_extra_terminal_transition():
    """EnvActor(intervention_penalty=p): at the takeover step the policy's own action (not executed) becomes an extra
    transition with reward -p and next.done; the executed transition is unchanged (the expert's action)."""
    from robolearn.rl.actor import EnvActor

    env = _expert_driven_sim_env(window=(2, 5), max_episode_steps=20)
    fmap = {"agent_pos": "observation.state"}
    try:
        actor = EnvActor(env, fmap, seed=2, intervention_penalty=0.5)
        policy = np.array([0.01, -0.01, 0.0, 1.0], np.float32)
        extra = []
        for t in range(7):
            tr, _ = actor.step(lambda obs: torch.from_numpy(policy)[None])
            extra.append(actor.rejected)
            if t == 2:
                rej = actor.rejected
                assert float(rej["next.reward"]) == -0.5 and bool(rej["next.done"])
                assert float(rej["complementary_info.is_intervention"]) == 0.0
                np.testing.assert_allclose(rej["action"].numpy(), policy)
                assert float(tr["complementary_info.is_intervention"]) == 1.0 and not bool(tr["next.done"])
                assert not np.allclose(tr["action"].numpy(), policy)  # the executed one is the expert's
                assert torch.equal(rej["observation.state"], tr["observation.state"])
        assert [e is not None for e in extra] == [False, False, True, False, False, False, False]
        with pytest.raises(ValueError, match="intervention_penalty"):
            EnvActor(env, fmap, intervention_penalty=-1.0)
        off = EnvActor(env, fmap, seed=2)
        for _ in range(4):
            off.step(lambda obs: torch.from_numpy(policy)[None])
            assert off.rejected is None
    finally:
        env.close()


def test_sim_expert_succeeds_through_the_env_with_sim_reward():
    """The scripted expert holding control the whole episode completes the task: reward 1, terminated, success."""
    env = _expert_driven_sim_env(window=(0, 200), max_episode_steps=200)
    try:
        env.reset(seed=0)
        total = 0.0
        for t in range(200):
            _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
            total += reward
            assert info["is_intervention"]
            if terminated or truncated:
                break
        assert terminated and info["is_success"] and total == 1.0
    finally:
        env.close()


def test_sim_teleop_reset_keyboard_reward_and_classifier_reward():
    robot = SO101SimRobot(camera="workspace", image_size=16)
    key = KeySuccessReward(listen=False)
    env = RobotEnv(robot, action_mode="ee", kinematics=SO101Kinematics("radians", "grasp"), reset_mode="teleop",
                   teleop=ScriptedTeleop(robot), reset_time_s=0.5, reward=key, max_episode_steps=10)
    try:
        _, info = env.reset(seed=0)
        assert info["reset_steps"] == 5  # 0.5 s at 10 fps, driven by the teleoperator
        assert env.step(np.zeros(4))[1:4] == (0.0, False, False)
        key.press("x")
        assert env.step(np.zeros(4))[1:4] == (0.0, False, False)
        key.press("s")
        _, reward, terminated, _, info = env.step(np.zeros(4))
        assert reward == 1.0 and terminated and info["is_success"]
    finally:
        env.close()
    seen = []

    def classifier(inputs):
        seen.append({k: tuple(v.shape) for k, v in inputs.items()})
        return float(inputs["observation.images.workspace"].mean() > -1)  # always "success"

    env = sim_env(reward=ClassifierReward(classifier, {"workspace": "observation.images.workspace"},
                                          state_key="observation.state"))
    try:
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(np.zeros(4))
        assert reward == 1.0 and terminated and info["is_success"]
        assert info["sim_success"] is False  # the simulator's own verdict, beside the classifier's false success
        assert seen == [{"observation.images.workspace": (1, 3, 16, 16), "observation.state": (1, 6)}]
    finally:
        env.close()


def test_episode_stats_carry_the_simulators_success_beside_the_reward_sources():
    """EnvActor's EpisodeStats.sim_success: the simulator's verdict from RobotEnv's info, whatever the reward."""
    from robolearn.rl.actor import EnvActor

    env = _expert_driven_sim_env(window=(0, 200), max_episode_steps=200)
    try:
        actor = EnvActor(env, {"agent_pos": "observation.state"}, seed=0)
        finished = None
        while finished is None:
            _, finished = actor.step(lambda obs: torch.zeros(1, 4))
        assert finished.success and finished.sim_success is True
    finally:
        env.close()


def test_sim_env_checker_and_config():
    env = sim_env(workspace_bounds=[[0.1, -0.2, 0.02], [0.45, 0.2, 0.3]])
    try:
        check_env(env, skip_render_check=False)
    finally:
        env.close()
    cfg = OmegaConf.load(CONF / "env" / "robot_so101_sim.yaml")
    cfg.make.robot.image_size = 16
    spec = instantiate(cfg)
    a, b = spec.make_env(), spec.make_env()
    try:
        assert a.robot is not b.robot and a.max_episode_steps == 300 and a.action_mode == "ee"
        obs, _ = a.reset(seed=0)
        feats = spec.features(a.observation_space)
        assert feats["observation.state"].shape == (6,) and feats["observation.images.workspace"].shape == (3, 16, 16)
        np.testing.assert_allclose(a.workspace, [[0.1, -0.2, 0.02], [0.45, 0.2, 0.3]])
    finally:
        a.close()
        b.close()


def test_gymnasium_make_by_id():
    """Code that only knows gymnasium ids (dataset.env_id / env_kwargs) builds the same env."""
    import gymnasium as gym

    env = gym.make("robolearn.rl.robot_env:robolearn/RobotEnv-v0", max_episode_steps=3,
                   robot={"_target_": "robolearn.robots.sim.SO101SimRobot", "camera": None},
                   kinematics={"_target_": "robolearn.robots.kinematics.SO101Kinematics", "units": "radians",
                               "point": "grasp"},
                   action_mode="ee", reset_mode="scripted", workspace_bounds=[[0.1, -0.2, 0.02], [0.45, 0.2, 0.3]])
    try:
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"agent_pos"} and env.unwrapped.workspace is not None
        for _ in range(3):
            *_, truncated, info = env.step(np.zeros(4, np.float32))
        assert truncated and info["is_intervention"] is False
    finally:
        env.close()


def test_construction_errors():
    robot = SO101SimRobot(camera=None)
    with pytest.raises(ValueError, match=r"action_mode='joint' needs '<motor>.pos' actions.*delta_x"):
        RobotEnv(robot, action_mode="joint")
    with pytest.raises(ValueError, match="needs kinematics"):
        RobotEnv(robot, action_mode="ee")
    with pytest.raises(ValueError, match="units 'degrees' differ"):
        RobotEnv(robot, action_mode="ee", kinematics=SO101Kinematics("degrees"))
    kin = SO101Kinematics("radians", "grasp")
    with pytest.raises(ValueError, match="workspace_bounds must be"):
        RobotEnv(robot, action_mode="ee", kinematics=kin, workspace_bounds=[[0, 0, 0], [-1, 1, 1]])
    with pytest.raises(ValueError, match="reset_mode='home' sends joint targets"):
        RobotEnv(robot, action_mode="ee", kinematics=kin, reset_mode="home")
    with pytest.raises(ValueError, match="needs a teleoperator"):
        RobotEnv(robot, action_mode="ee", kinematics=kin, reset_mode="scripted", trigger=StepWindows([[0, 1]]))
    robot.disconnect()


# ------------------------------------------------------------------------------ follower on the fake Feetech bus
def calibration():
    """Body joints 1000..3000 ticks (0 deg at 2000), wrist_roll a full turn, gripper 2000..3000; no homing offset."""
    ranges = {n: (1000, 3000) for n in NAMES} | {"wrist_roll": (0, 4095), "gripper": (2000, 3000)}
    return {n: MotorCalibration(i + 1, 0, 0, *ranges[n]) for i, n in enumerate(NAMES)}


@pytest.fixture
def follower(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "calibration"))
    with FakeFeetechBus() as fake:
        for i in range(1, 7):
            fake.servo(i).actual = 2000
        fake.servo(1).actual = 2000 + round(30 * 4095 / 360)  # shoulder_pan at +30 deg
        save_calibration(calibration(), tmp_path / "f" / "arm.json")
        robot = SOFollower(fake.port, id="arm", calibration_dir=tmp_path / "f", input_fn=lambda p: "",
                           print_fn=lambda *a: None, packet_timeout_ms=PACKET_TIMEOUT_MS, max_relative_target=10.0)
        yield robot, fake
        if robot.is_connected:
            robot.disconnect()


class FixedTeleop(Teleoperator):
    """A leader arm stand-in: always the same joint targets."""

    def __init__(self, action):
        super().__init__()
        self.action, self._connected = dict(action), False

    @property
    def action_features(self):
        return {k: float for k in self.action}

    @property
    def is_connected(self):
        return self._connected

    def connect(self, calibrate=True):
        self._connected = True

    def get_action(self, observation=None):
        return dict(self.action)

    def disconnect(self):
        self._connected = False


def test_follower_joint_space_home_reset_step_bounds_and_finite_check(follower):
    robot, fake = follower
    home = {k: 0.0 for k in ARM_KEYS} | {"shoulder_lift.pos": 20.0}
    env = RobotEnv(robot, action_mode="joint", kinematics=SO101Kinematics("degrees"), reset_mode="home", home=home,
                   reset_steps=4, real_time=False, reward=KeySuccessReward(listen=False), max_episode_steps=5)
    try:
        assert env.action_space.shape == (6,)
        np.testing.assert_allclose(env.action_space.high, [110, 100, 96.82987, 95.0, 162.78913, 100], rtol=1e-5)
        obs, info = env.reset()
        # from pan +30 to home in 4 interpolated steps of 7.5 deg (under max_relative_target = 10 deg)
        assert info["reset_steps"] == 4
        np.testing.assert_allclose(obs["agent_pos"][:5], [0, 20, 0, 0, 0], atol=0.1)
        target = np.asarray([10.0, 25.0, -5.0, 5.0, 0.0, 10.0], np.float32)
        obs, reward, terminated, truncated, info = env.step(target)
        np.testing.assert_allclose(obs["agent_pos"], target, atol=0.1)
        assert (reward, terminated, truncated, info["is_intervention"]) == (0.0, False, False, False)
        # out-of-bounds gripper command is clipped to 100 before the robot's own max_relative_target clamp
        sent = env.step(np.asarray([10.0, 25.0, -5.0, 5.0, 0.0, 500.0], np.float32))[4]["action_sent"]
        assert sent["gripper.pos"] == pytest.approx(20.0)  # present 10 + 10 per step
        goals = [fake.servo(i).get("Goal_Position") for i in range(1, 7)]
        with pytest.raises(RobotError, match=r"non-finite action.*elbow_flex\.pos=nan"):
            env.step(np.asarray([10.0, 25.0, np.nan, 5.0, 0.0, 30.0]))
        assert [fake.servo(i).get("Goal_Position") for i in range(1, 7)] == goals
    finally:
        env.close()
    assert not robot.is_connected  # the env connected it (torque on), so close() disconnected it (torque off)
    assert fake.servo(2).get("Torque_Enable") == 0


def test_follower_end_effector_space_and_workspace(follower):
    robot, fake = follower
    kin = SO101Kinematics("degrees")
    home = {k: 0.0 for k in ARM_KEYS} | {"shoulder_lift.pos": -20.0, "elbow_flex.pos": 30.0}
    x_home = kin.fk([0.0, -20.0, 30.0, 0.0, 0.0])
    bounds = [[x_home[0] - 0.1, -0.1, x_home[2] - 0.1], [x_home[0] + 0.025, 0.1, x_home[2] + 0.1]]
    env = RobotEnv(robot, action_mode="ee", kinematics=kin, workspace_bounds=bounds, max_ee_step_m=0.01,
                   reset_mode="home", home=home, reset_steps=5, real_time=False, reward=KeySuccessReward(listen=False))
    try:
        env.reset()
        x0 = env.ee_position()
        np.testing.assert_allclose(x0, x_home, atol=TICK_TOL_M)
        # two steps of +1 cm in x: the arm's FK (from the servos' positions) follows
        for k in (1, 2):
            _, _, _, _, info = env.step(np.asarray([0.01, 0.0, 0.0, 20.0], np.float32))
            assert info["ik_error_m"] < 1e-4
            np.testing.assert_allclose(env.ee_position(), x0 + [0.01 * k, 0, 0], atol=TICK_TOL_M)
        # the third step would leave the box at x0 + 2.5 cm: the target is clipped onto it
        env.step(np.asarray([0.01, 0.0, 0.0, 20.0], np.float32))
        assert env.ee_position()[0] == pytest.approx(bounds[1][0], abs=TICK_TOL_M)
        assert env._obs["gripper.pos"] == pytest.approx(20.0, abs=0.2)
    finally:
        env.close()


def test_follower_intervention_from_a_leader_and_tab(follower):
    robot, fake = follower
    leader_pose = {k: 0.0 for k in ARM_KEYS} | {"shoulder_lift.pos": 5.0, "gripper.pos": 50.0}
    teleop = FixedTeleop(leader_pose)
    events = KeyboardEvents(listen=False)
    env = RobotEnv(robot, action_mode="joint", kinematics=SO101Kinematics("degrees"), reset_mode="home",
                   reset_steps=4, real_time=False, reward=KeySuccessReward(listen=False), teleop=teleop,
                   events=events, max_episode_steps=50)
    try:
        env.reset()
        policy = np.asarray([5.0, -5.0, 0.0, 0.0, 0.0, 10.0], np.float32)
        flags = []
        for t in range(5):
            if t in (2, 4):
                events.press(TAB)  # take over at step 2, hand back at step 4
            obs, _, _, _, info = env.step(policy)
            flags.append(info["is_intervention"])
            assert info["takeover_started"] == (t == 2)  # only the step where the expert took over
            if info["is_intervention"]:
                np.testing.assert_allclose(info["teleop_action"], [leader_pose[k] for k in env.action_keys])
                np.testing.assert_allclose(obs["agent_pos"][[1]], [5.0], atol=0.1)  # the leader's pose is executed
            else:
                np.testing.assert_allclose(obs["agent_pos"][:5], policy[:5], atol=0.1)
        assert flags == [False, False, True, True, False]
        with pytest.raises(ValueError, match="teleoperator .* acts on"):
            RobotEnv(robot, action_mode="joint", kinematics=SO101Kinematics("degrees"), teleop=FixedTeleop({"x": 0}))
    finally:
        env.close()


def test_real_arm_hil_experiment_builds_and_steps_its_env_from_the_composed_config(tmp_path, monkeypatch):
    """experiment=hil_serl_so101_real: the actor's env built as run_actor builds it (gymnasium id + env_kwargs of the
    composed config) over the follower from conf/robot/so101_follower.yaml on the fake bus, with a fake `front`
    camera; the policy sees joints + camera only; Tab hands the arm to the leader and back; `s` ends the episode as
    a success; close() stops the key reader and disconnects the arm and the leader."""
    import gymnasium as gym

    from robolearn.envs.observation import env_policy_features
    from robolearn.features import FeatureType, PolicyFeature
    from robolearn.rl.actor import mapped_features
    from tests.compose import compose_config

    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "calibration"))
    with FakeFeetechBus() as fake:
        for cal in calibration().values():  # the servos hold the calibration file's values: connect asks nothing
            servo = fake.servo(cal.id)
            servo.actual = 2000
            servo.set("Min_Position_Limit", cal.range_min)
            servo.set("Max_Position_Limit", cal.range_max)
        save_calibration(calibration(), tmp_path / "f" / "arm.json")
        cfg = compose_config("train", [
            "experiment=hil_serl_so101_real", f"robot.port={fake.port}", "robot.id=arm",
            f"robot.calibration_dir={tmp_path / 'f'}", f"+robot.packet_timeout_ms={PACKET_TIMEOUT_MS}",
            "robot.cameras={front: {type: fake, width: 32, height: 24}}", "teleop.port=unused",
            "+dataset.env_kwargs.events.listen=false", "+dataset.env_kwargs.real_time=false",
            "dataset.env_kwargs.reward={_target_: robolearn.rl.robot_env.KeySuccessReward, listen: false}"])
        ds = cfg.dataset
        assert ds.env_kwargs.robot._target_ == "robolearn.robots.so_follower.SOFollower"
        assert ds.env_kwargs.teleop._target_ == "robolearn.teleop.so_leader.SOLeader"
        kwargs = dict(ds.env_kwargs)
        leader_pose = {k: 0.0 for k in ARM_KEYS} | {"shoulder_lift.pos": 5.0, "gripper.pos": 50.0}
        kwargs["teleop"] = FixedTeleop(leader_pose)  # the leader arm's code is tested on its own fake bus elsewhere
        env = gym.make(str(ds.env_id), max_episode_steps=int(ds.max_episode_steps), **kwargs)
        robot_env = env.unwrapped
        try:
            features = env_policy_features(env.observation_space, mapped_features(ds.features_map))
            assert sorted(features) == ["observation.images.front", "observation.state"]
            assert features["observation.images.front"].shape == (3, 24, 32)
            action = {"action": PolicyFeature(FeatureType.ACTION, env.action_space.shape)}
            instantiate(cfg.policy, features={**features, **action}, stats=None)  # SAC builds its camera encoder
            obs, _ = env.reset(seed=0)
            assert set(obs) == {"agent_pos", "pixels"} and obs["pixels"]["front"].shape == (24, 32, 3)
            policy = np.zeros(env.action_space.shape, np.float32)
            flags = []
            for t in range(4):
                if t in (1, 3):
                    robot_env.events.press(TAB)  # the leader takes over at step 1 and hands back at step 3
                if t == 3:
                    robot_env.reward_source.press("s")
                obs, reward, terminated, _, info = env.step(policy)
                flags.append(info["is_intervention"])
            assert flags == [False, True, True, False] and terminated and reward == 1.0
        finally:
            env.close()
        assert not robot_env.robot.is_connected and not kwargs["teleop"].is_connected


def test_hil_env_with_a_saved_reward_classifier_on_the_armless_camera(tmp_path):
    """experiments/hil_serl_so101.py --reward classifier's env, built from the composed config as the actor builds
    it: a saved RewardClassifier (load_policy) reads the arm-less camera and the joints at every step; the
    simulator's own verdict travels beside it."""
    import sys

    from robolearn.features import FeatureType, PolicyFeature
    from robolearn.policies.pretrained import save_pretrained
    from robolearn.policies.reward_classifier import RewardClassifier
    from robolearn.rl.robot_env import make_robot_env
    from tests.compose import compose_config

    sys.path.insert(0, str(CONF.parent / "experiments"))
    import hil_serl_so101 as hil

    size = 16
    feats = {"observation.state": PolicyFeature(FeatureType.STATE, (6,)),
             hil.CLASSIFIER_IMAGE_KEY: PolicyFeature(FeatureType.VISUAL, (3, size, size)),
             "action": PolicyFeature(FeatureType.ACTION, (6,))}
    stats = {"observation.state": {k: np.full(6, v, np.float32) for k, v in
                                   (("mean", 0.0), ("std", 1.0), ("min", -1.0), ("max", 1.0))}}
    classifier = RewardClassifier(feats, stats=stats, use_state=True, use_imagenet_stats=True, hidden_dim=8)
    args = hil.parse_args(["--out", str(tmp_path), "--reward", "classifier"])
    (cls_run, run), _ = hil.plan_runs(args)
    save_pretrained(classifier, cls_run.run_dir / "checkpoints" / "pretrained_model")
    overrides = [o for o in run.overrides if o.lstrip("+").startswith("dataset.env_kwargs")]
    kw = compose_config("train", ["experiment=hil_serl_so101_sim", *overrides,
                                  f"dataset.env_kwargs.robot.image_size={size}"]).dataset.env_kwargs
    env = make_robot_env(**OmegaConf.to_container(kw), max_episode_steps=5)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["pixels"][hil.CLASSIFIER_CAMERA].shape == (size, size, 3)
        _, reward, _, _, info = env.step(np.zeros(4, np.float32))
        p = env.reward_source.last_probability
        assert 0.0 <= p <= 1.0 and reward == float(p >= 0.5) and info["is_success"] == (p >= 0.5)
        assert info["sim_success"] is False
    finally:
        env.close()
