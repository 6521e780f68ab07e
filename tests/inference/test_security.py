import pickle

import grpc
import pytest
import torch

from robolearn.inference.client import AuthenticationError, InferenceServerError, RobotClient
from robolearn.inference.codec import decode, encode
from robolearn.inference.server import AUTH_METADATA_KEY, PolicyServer, is_loopback, method_path

from .conftest import TOKEN
from .helpers import FakeRobot, STATE_KEYS, tiny_act

AUTH = ((AUTH_METADATA_KEY, f"Bearer {TOKEN}"),)


def good_observation(timestep: int = 0) -> dict:
    return {"type": "observation", "timestep": timestep, "timestamp": 0.0, "task": None,
            "observation": {"observation.state": torch.zeros(len(STATE_KEYS)),
                            "observation.images.front": torch.zeros(16, 16, 3, dtype=torch.uint8)}}


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_client_with_missing_or_wrong_token_is_refused(auth_server, token):
    client = RobotClient(FakeRobot(), auth_server.address, token=token)
    with pytest.raises(AuthenticationError, match="UNAUTHENTICATED.*wrong token.*check the token"):
        client.connect()
    assert auth_server.n_predictions == 0


def test_every_method_checks_the_token(auth_server):
    with grpc.insecure_channel(auth_server.address) as channel:
        for name, msg in [("Ready", {"type": "ready"}), ("Reset", {"type": "reset"}), ("Predict", good_observation())]:
            call = channel.unary_unary(method_path(name))
            with pytest.raises(grpc.RpcError) as err:
                call(encode(msg), timeout=10, metadata=((AUTH_METADATA_KEY, "Bearer nope"),))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert auth_server.n_predictions == 0


def test_client_with_right_token_works(auth_server):
    with RobotClient(FakeRobot(), auth_server.address, token=TOKEN) as client:
        client.step()
        assert client.wait_idle(20)
        assert len(client.queue) == 10


def test_malformed_messages_are_rejected_and_server_keeps_serving(auth_server):
    with grpc.insecure_channel(auth_server.address) as channel:
        predict = channel.unary_unary(method_path("Predict"))
        bad = [
            pickle.dumps(good_observation()),                        # pickle: never unpickled
            b"\x00\x01garbage",                                      # not a message
            encode({"type": "ready"}),                               # wrong message type for Predict
            encode({**good_observation(), "timestep": -1}),          # invalid field
            encode({**good_observation(), "observation": {"observation.state": torch.zeros(3)}}),  # missing camera
            encode({**good_observation(), "observation": {**good_observation()["observation"],
                                                          "observation.state": torch.zeros(5)}}),  # wrong shape
        ]
        details = []
        for payload in bad:
            with pytest.raises(grpc.RpcError) as err:
                predict(payload, timeout=10, metadata=AUTH)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details.append(err.value.details())
        assert "malformed" in details[0] and "malformed" in details[1]
        assert "expected a 'observation' message" in details[2]
        assert "timestep" in details[3]
        assert "observation.images.front" in details[4]
        assert "(5,)" in details[5] and "(3,)" in details[5]
        # oversize: refused by gRPC's limit (2 MiB on this server)
        with pytest.raises(grpc.RpcError) as err:
            predict(b"\x00" * (3 * 1024 * 1024), timeout=10, metadata=AUTH)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # the next good request is served
        reply = decode(predict(encode(good_observation(timestep=5)), timeout=10, metadata=AUTH), expected_type="actions")
    assert reply["actions"].shape == (10, 2) and reply["timesteps"].tolist() == list(range(5, 15))
    assert auth_server.n_predictions == 1


def test_non_finite_observations_are_refused_and_long_inputs_are_not_echoed(auth_server):
    with grpc.insecure_channel(auth_server.address) as channel:
        predict = channel.unary_unary(method_path("Predict"))
        for bad in (float("nan"), float("inf")):
            obs = good_observation()
            obs["observation"]["observation.state"][1] = bad
            with pytest.raises(grpc.RpcError) as err:
                predict(encode(obs), timeout=10, metadata=AUTH)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "'observation.state' has 1 non-finite value(s)" in err.value.details()
        # an error that quotes its input (here a 200,000-character timestep) is cut, in the reply and in the log
        with pytest.raises(grpc.RpcError) as err:
            predict(encode({**good_observation(), "timestep": "x" * 200_000}), timeout=10, metadata=AUTH)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(err.value.details()) < 1200 and "more characters" in err.value.details()
        assert len(auth_server.last_error) < 1200
        reply = decode(predict(encode(good_observation(timestep=1)), timeout=10, metadata=AUTH), expected_type="actions")
    assert torch.isfinite(reply["actions"]).all()
    assert auth_server.n_predictions == 1


def test_non_finite_actions_are_never_sent_nor_executed():
    policy = tiny_act(chunk_size=4)
    with torch.no_grad():
        for p in policy.parameters():
            p.fill_(float("nan"))  # a diverged checkpoint
    robot = FakeRobot()
    with PolicyServer(policy, host="127.0.0.1", port=0) as server, RobotClient(robot, server.address) as client:
        client.step()  # starved tick: sends the first observation
        with pytest.raises(InferenceServerError, match="non-finite action value"):
            client.wait_idle(20)
        assert "non-finite action" in server.last_error
    assert robot.sent == []


def test_refuses_non_loopback_address_without_token(policy):
    for host in ("0.0.0.0", "::", "192.168.1.10", "robot-pc.local"):
        with pytest.raises(ValueError, match="non-loopback.*without a token"):
            PolicyServer(policy, host=host, port=0)
    PolicyServer(policy, host="0.0.0.0", port=0, token=TOKEN)  # allowed with a token (not started here)
    with pytest.raises(ValueError, match="non-empty"):
        PolicyServer(policy, host="127.0.0.1", port=0, token="")


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")
