import pytest
import torch

from robolearn.inference.client import InferenceServerError, RobotClient
from robolearn.inference.server import PolicyServer

from .helpers import ACTION_KEYS, FakeRobot, policy_input, tiny_act

WAIT = 20.0  # seconds; upper bound for one loopback round trip of the tiny policy


def run_steps(client: RobotClient, n: int) -> list[int]:
    """Tick ``n`` times, waiting after each tick for any request to be answered (deterministic); return the
    queue length after each tick."""
    lengths = []
    for _ in range(n):
        client.step()
        assert client.wait_idle(WAIT)
        lengths.append(len(client.queue))
    return lengths


def test_chunk_round_trip_equals_direct_policy_call(server, policy):
    robot = FakeRobot(seed=0)
    with RobotClient(robot, server.address, chunk_size_threshold=0.0, aggregate_fn_name="latest_only") as client:
        assert client.server_info["policy"] == "ACTPolicy" and client.server_info["action_dim"] == 2
        client.step()  # empty queue: starved tick, then the first observation goes out at timestep 0
        assert client.wait_idle(WAIT)
        ts, queued = client.queue.snapshot()
        expected = policy.predict_action_chunk(policy_input(robot.observations[0]))[0]
        assert ts == list(range(10))
        torch.testing.assert_close(queued, expected, rtol=0, atol=0)
        run_steps(client, 10)  # executes the whole chunk; threshold 0: next request only when empty
    sent = torch.tensor([[a[k] for k in ACTION_KEYS] for a in robot.sent])
    torch.testing.assert_close(sent, expected, rtol=1e-6, atol=1e-6)  # robot actions are python floats
    assert client.n_starved == 1 and client.n_executed == 10
    assert [t.timestep for t in client.round_trips] == [0, 10]
    trip = client.round_trips[0]
    assert trip.round_trip_s > 0 and trip.inference_s > 0 and trip.round_trip_s >= trip.inference_s
    assert client.summary()["round_trip"]["n"] == 2


def test_new_chunk_requested_exactly_below_threshold(server):
    robot = FakeRobot(seed=1)
    # chunk_size 10, threshold 0.5: ask when the queue holds < 5 actions, i.e. right after it drops to 4
    with RobotClient(robot, server.address, chunk_size_threshold=0.5, aggregate_fn_name="latest_only") as client:
        lengths = run_steps(client, 19)
    assert [t.timestep for t in client.round_trips] == [0, 6, 12, 18]
    assert [t.queue_size_at_request for t in client.round_trips] == [0, 4, 4, 4]
    # after each answer the queue holds the rest of the new chunk: 4 overlapping merged, 6 added
    assert [(t.dropped, t.merged, t.added) for t in client.round_trips[1:]] == [(0, 4, 6)] * 3
    assert lengths[:8] == [10, 9, 8, 7, 6, 5, 10, 9]
    assert min(lengths) == 5 and client.n_starved == 1
    assert len(robot.observations) == 4  # an observation is read only when one is sent


def test_threshold_one_requests_after_every_action(server):
    robot = FakeRobot(seed=2)
    with RobotClient(robot, server.address, chunk_size_threshold=1.0) as client:
        run_steps(client, 4)
    assert [t.timestep for t in client.round_trips] == [0, 1, 2, 3]


def test_latest_only_overlap_takes_newest_chunk(server, policy):
    robot = FakeRobot(seed=3)
    with RobotClient(robot, server.address, chunk_size_threshold=0.5, aggregate_fn_name="latest_only") as client:
        run_steps(client, 7)  # second request at timestep 6 has been answered
        ts, queued = client.queue.snapshot()
    second = policy.predict_action_chunk(policy_input(robot.observations[1]))[0]
    assert ts == list(range(6, 16))
    torch.testing.assert_close(queued, second, rtol=0, atol=0)


def test_run_at_fps_executes_actions(server):
    robot = FakeRobot(seed=4)
    with RobotClient(robot, server.address, fps=200.0) as client:
        summary = client.run(max_steps=40)
    assert summary["executed"] + summary["starved"] == 40
    assert summary["executed"] == len(robot.sent) > 0 and summary["chunks"] >= 1


def test_robot_policy_mismatch_is_reported_at_connect(server):
    class TwoJointRobot(FakeRobot):
        @property
        def action_features(self):
            return {"dx": float, "dy": float, "dz": float}

        @property
        def observation_features(self):
            return {"shoulder.pos": float, "cam": (16, 16, 3)}

    client = RobotClient(TwoJointRobot(), server.address)
    with pytest.raises(ValueError, match=r"'observation.state' has shape \(1,\).*expects \(3,\).*"
                                         r"'observation.images.front' missing.*outputs 2 actions"):
        client.connect()


def test_server_error_is_raised_in_control_loop(policy):
    policy.reset()
    with PolicyServer(policy, port=0) as srv:
        robot = FakeRobot()
        client = RobotClient(robot, srv.address)
        client.connect()
        robot.get_observation = lambda: {"shoulder.pos": 0.0, "elbow.pos": 0.0, "gripper.pos": 0.0,
                                         "front": torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()}
        client.step()
        with pytest.raises(InferenceServerError, match=r"INVALID_ARGUMENT.*observation.images.front.*\(16, 16, 3\)"):
            client.wait_idle(WAIT)
        with pytest.raises(RuntimeError, match="receiver stopped after an error"):
            client.step()
        client.close()


def test_client_argument_checks():
    with pytest.raises(ValueError, match="chunk_size_threshold"):
        RobotClient(FakeRobot(), "127.0.0.1:1", chunk_size_threshold=1.5)
    with pytest.raises(ValueError, match="fps"):
        RobotClient(FakeRobot(), "127.0.0.1:1", fps=0)
    with pytest.raises(ValueError, match="aggregate_fn_name"):
        RobotClient(FakeRobot(), "127.0.0.1:1", aggregate_fn_name="nope")


def test_actions_per_chunk_truncates():
    policy = tiny_act(chunk_size=10)
    with PolicyServer(policy, port=0, actions_per_chunk=3) as srv:
        with RobotClient(FakeRobot(), srv.address, chunk_size_threshold=0.0) as client:
            run_steps(client, 1)
            assert client.queue.snapshot()[0] == [0, 1, 2] and client.chunk_size == 3


def test_diffusion_policy_served_with_its_observation_history():
    from robolearn.policies.diffusion import DiffusionPolicy

    from .helpers import policy_features, random_stats

    torch.manual_seed(0)
    feats = policy_features()
    policy = DiffusionPolicy(feats, random_stats(feats), horizon=8, n_action_steps=4, down_dims=(8, 16),
                             diffusion_step_embed_dim=8, spatial_softmax_num_keypoints=4, crop_shape=(12, 12),
                             num_train_timesteps=4, n_groups=2).eval()
    robot = FakeRobot(seed=5)
    with PolicyServer(policy, port=0) as srv, RobotClient(robot, srv.address, chunk_size_threshold=0.0) as client:
        torch.manual_seed(123)
        run_steps(client, 1)
        ts, queued = client.queue.snapshot()
    policy.reset()
    torch.manual_seed(123)
    expected = policy.predict_action_chunk(policy._prepare_observation(policy_input(robot.observations[0])))[0]
    assert ts == [0, 1, 2, 3]
    torch.testing.assert_close(queued, expected)
