"""gym-aloha scripted experts: IK against hand-checked poses, waypoint plans, render-free stepping, and full
successful episodes of both tasks (render-free, ~1-3 s each)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

gym_aloha = pytest.importorskip("gym_aloha")

from robolearn.envs.aloha import headless_reset, headless_step  # noqa: E402
from robolearn.envs.aloha.experts import (  # noqa: E402
    INSERT_ALIGN_STEP,
    insertion_stage,
    plan_transfer_cube,
)
from robolearn.envs.aloha.ik import GRASP_OFFSET, ArmIK  # noqa: E402
from robolearn.envs.aloha.plan import Waypoint, gripper_quat, interpolate, quat_to_mat, slerp  # noqa: E402
from robolearn.envs.aloha_scripted import InsertionExpert, TransferCubeExpert  # noqa: E402
from robolearn.envs.expert import ScriptedExpert  # noqa: E402

START_ARM = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])  # gym_aloha.constants.START_ARM_POSE, one arm
# gripper_link origin at START_ARM_POSE, as documented in gym-aloha's end-effector task (ACT's init mocap).
RIGHT_LINK_START = np.array([0.31718881, 0.49999888, 0.29525084])
LEFT_LINK_START = np.array([-0.31718881, 0.5, 0.29525084])


@pytest.fixture(scope="module")
def cube_env():
    env = gym.make("gym_aloha/AlohaTransferCube-v0")
    yield env
    env.close()


@pytest.fixture(scope="module")
def insertion_env():
    env = gym.make("gym_aloha/AlohaInsertion-v0")
    yield env
    env.close()


def _rollout(env, expert, seed: int, max_steps: int = 300) -> list[float]:
    headless_reset(env, seed)
    expert.reset()
    rewards = []
    for _ in range(max_steps):
        rewards.append(headless_step(env, expert.act(None)))
        if rewards[-1] == 4:
            break
    return rewards


# --- IK ---------------------------------------------------------------------------------------------------


def test_forward_kinematics_matches_documented_start_pose(cube_env):
    model = cube_env.unwrapped._env.physics.model.ptr
    for side, link in (("right", RIGHT_LINK_START), ("left", LEFT_LINK_START)):
        ik = ArmIK(model, side)
        point, rot = ik.forward(START_ARM)
        np.testing.assert_allclose(point - rot @ GRASP_OFFSET, link, atol=1e-6)
        # Both grippers point at the table centre, nearly level: x axis ~ -+x world.
        assert rot[0, 0] == pytest.approx(-1.0 if side == "right" else 1.0, abs=0.01)


def test_ik_reaches_pitched_down_grasp_pose(cube_env):
    ik = ArmIK(cube_env.unwrapped._env.physics.model.ptr, "right")
    target = np.array([0.1, 0.45, 0.05])
    rot = quat_to_mat(gripper_quat([-0.5, 0.0, -np.sqrt(3) / 2], [0.0, -1.0, 0.0]))  # 60 deg below horizontal
    result = ik.solve(target, rot, START_ARM)
    assert result.success
    point, reached = ik.forward(result.qpos)
    assert np.linalg.norm(point - target) < 1e-3
    np.testing.assert_allclose(reached[:, 0], [-0.5, 0.0, -np.sqrt(3) / 2], atol=1e-2)
    assert np.all(result.qpos >= ik.lower) and np.all(result.qpos <= ik.upper)


def test_ik_unreachable_target_reports_failure(cube_env):
    ik = ArmIK(cube_env.unwrapped._env.physics.model.ptr, "left")
    result = ik.solve([2.0, 0.5, 0.2], np.eye(3), START_ARM, max_iters=30)
    assert not result.success and result.position_error > 1.0
    with pytest.raises(ValueError, match="side must be one of"):
        ArmIK(cube_env.unwrapped._env.physics.model.ptr, "middle")


# --- plans ------------------------------------------------------------------------------------------------


def test_gripper_quat_and_slerp_hand_checked():
    rot = quat_to_mat(gripper_quat([0.0, 0.0, -1.0], [0.0, 1.0, 0.0]))  # pointing straight down
    np.testing.assert_allclose(rot, [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-12)
    half = slerp(np.array([1.0, 0, 0, 0]), np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]), 0.5)
    np.testing.assert_allclose(half, [np.cos(np.pi / 8), 0, 0, np.sin(np.pi / 8)], atol=1e-12)
    with pytest.raises(ValueError, match="parallel"):
        gripper_quat([1.0, 0.0, 0.0], [2.0, 0.0, 0.0])


def test_interpolate_linear_between_waypoints_and_holds_outside():
    q = np.array([1.0, 0, 0, 0])
    wps = [Waypoint(10, np.zeros(3), q, 0.0), Waypoint(30, np.array([0.2, 0.0, -0.1]), q, 1.0)]
    pos, quat, grip = interpolate(wps, 15)
    np.testing.assert_allclose(pos, [0.05, 0.0, -0.025])
    assert grip == pytest.approx(0.25)
    np.testing.assert_allclose(interpolate(wps, 0)[0], [0, 0, 0])
    np.testing.assert_allclose(interpolate(wps, 99)[0], [0.2, 0.0, -0.1])
    with pytest.raises(ValueError, match="strictly increase"):
        interpolate([wps[1], wps[0]], 5)
    with pytest.raises(ValueError, match="empty"):
        interpolate([], 5)


def test_transfer_cube_plan_from_known_cube_pose():
    start = (np.array([0.2, 0.5, 0.3]), np.array([1.0, 0, 0, 0]))
    plan = plan_transfer_cube(np.array([0.1, 0.55]), start, start)
    right = {w.step: w for w in plan["right"]}
    np.testing.assert_allclose(right[60].position, [0.1, 0.55, 0.10])  # 8 cm above the cube centre
    np.testing.assert_allclose(right[90].position, [0.1, 0.55, 0.023])  # grasp point at the cube centre
    assert (right[90].gripper, right[110].gripper) == (1.0, 0.0)  # open on the way down, closed at 110
    np.testing.assert_allclose(right[150].position, [0.0, 0.5, 0.25])  # the hand-over point
    np.testing.assert_allclose(quat_to_mat(right[90].quat)[:, 0], [-0.5, 0.0, -np.sqrt(3) / 2], atol=1e-12)
    left = {w.step: w for w in plan["left"]}
    np.testing.assert_allclose(quat_to_mat(left[165].quat)[:, 1], [0, 0, 1], atol=1e-12)  # vertical pinch
    assert left[165].gripper == 1.0 and left[185].gripper == 0.0
    assert right[195].gripper == 0.0 and right[210].gripper == 1.0  # right lets go after the left closed


def test_insertion_stage_corrects_by_measured_offsets():
    now = Waypoint(INSERT_ALIGN_STEP, np.array([0.2, 0.5, 0.2]), np.array([1.0, 0, 0, 0]), 0.0)
    stage = insertion_stage(now, peg=np.array([0.15, 0.49, 0.185]), socket=np.array([-0.1, 0.5, 0.2]))
    assert [w.step for w in stage] == [INSERT_ALIGN_STEP, INSERT_ALIGN_STEP + 15, INSERT_ALIGN_STEP + 65]
    # The peg touches the pin with its centre at socket + 0.10 m along x; aligned 4 cm before, pushed 1 cm past.
    np.testing.assert_allclose(stage[1].position, [0.09, 0.51, 0.215])
    np.testing.assert_allclose(stage[2].position, [0.04, 0.51, 0.215])


# --- env plumbing -----------------------------------------------------------------------------------------


def test_headless_reset_places_objects_like_env_reset(cube_env):
    physics = cube_env.unwrapped._env.physics
    headless_reset(cube_env, 3)
    headless = physics.named.data.qpos["red_box_joint"].copy()
    rng = np.random.RandomState(3)  # gym_aloha.utils.sample_box_pose
    np.testing.assert_allclose(headless[:3], rng.uniform([0.0, 0.4, 0.05], [0.2, 0.6, 0.05]))
    with pytest.raises(ValueError, match=r"shape \(14,\)"):
        headless_step(cube_env, np.zeros(7))


def test_experts_reject_wrong_env_and_act_before_reset(cube_env):
    with pytest.raises(ValueError, match="task='insertion'"):
        InsertionExpert(cube_env)
    expert = TransferCubeExpert(cube_env)
    assert isinstance(expert, ScriptedExpert)
    with pytest.raises(RuntimeError, match="before reset"):
        expert.act(None)
    with pytest.raises(ValueError, match="gym_aloha AlohaEnv"):
        headless_reset(gym.make("CartPole-v1"), 0)


# --- full episodes ----------------------------------------------------------------------------------------


def test_transfer_cube_episode_succeeds(cube_env):
    expert = TransferCubeExpert(cube_env)
    rewards = _rollout(cube_env, expert, seed=7)
    action = expert.joint_plan[0]
    assert action.shape == (14,)
    assert rewards[-1] == 4 and len(rewards) <= 300
    # Stages in order: right lifts the cube (2) before the left holds it in the air (4).
    assert rewards.index(2) < rewards.index(4)
    cube = cube_env.unwrapped._env.physics.named.data.qpos["red_box_joint"][:3]
    assert cube[2] > 0.15  # held up at the hand-over point (0.25 m)


def test_insertion_episode_succeeds(insertion_env):
    expert = InsertionExpert(insertion_env)
    rewards = _rollout(insertion_env, expert, seed=11)
    assert rewards[-1] == 4 and len(rewards) <= 300
    assert rewards.index(2) < INSERT_ALIGN_STEP < rewards.index(4)
    qpos = insertion_env.unwrapped._env.physics.named.data.qpos
    peg, socket = qpos["red_peg_joint"][:3], qpos["blue_socket_joint"][:3]
    assert abs(peg[1] - socket[1]) < 0.008 and abs(peg[2] - socket[2]) < 0.008  # on the socket axis
    assert peg[0] - socket[0] == pytest.approx(0.10, abs=0.01)  # peg end at the pin's face
