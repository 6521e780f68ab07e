"""Real-time chunking over the async client/server (robolearn.inference.rtc): a tiny random π0 served on loopback
continues the client's queued plan (the frozen prefix equals the remainder the client sent, the chunk replaces the
queued tail); the delay is fixed or measured; a policy without flow matching is refused by the client at connect
time, by the server per request, and through conf/robot_client.yaml; malformed RTC fields are refused."""

from __future__ import annotations

import pytest
import torch

from robolearn.features import FeatureType as FT
from robolearn.features import PolicyFeature
from robolearn.inference.client import RobotClient, RoundTrip, run_from_config
from robolearn.inference.rtc import ClientRTC
from robolearn.inference.server import PolicyServer
from robolearn.policies.pi0 import Pi0Policy
from tests.policies.test_pi0 import make_tokenizer
from tests.policies.test_pi0 import stats as vla_stats
from tests.presets import smoke_policy_kwargs

from .helpers import H, STATE_KEYS, W, FakeRobot
from .test_cli import composed
from .test_server_client import WAIT

CHUNK = 8


class RecordingServer(PolicyServer):
    """Keeps every Predict request it answers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests: list[dict] = []

    def _predict(self, msg: dict) -> dict:
        self.requests.append(msg)
        return super()._predict(msg)


@pytest.fixture(scope="module")
def pi0():
    f = {"observation.state": PolicyFeature(FT.STATE, (len(STATE_KEYS),)),
         "observation.images.front": PolicyFeature(FT.VISUAL, (3, H, W)),
         "action": PolicyFeature(FT.ACTION, (2,))}
    torch.manual_seed(0)
    policy = Pi0Policy(f, vla_stats(f), tokenizer_name="unused",
                       **smoke_policy_kwargs("pi0", chunk_size=CHUNK, n_action_steps=CHUNK, num_inference_steps=4))
    policy.tokenizer = make_tokenizer()
    return policy.eval()


def test_rtc_round_trip_continues_the_queued_plan(pi0):
    robot = FakeRobot(seed=3)
    rtc = {"enabled": True, "execution_horizon": 5, "max_guidance_weight": 5.0, "schedule": "exp",
           "inference_delay": 2}
    with RecordingServer(pi0, host="127.0.0.1", port=0) as server, \
            RobotClient(robot, server.address, chunk_size_threshold=0.75, aggregate_fn_name="weighted_average",
                        task="push the block", rtc=rtc) as client:
        assert client.server_info["supports_rtc"] is True
        client.step()  # empty queue: the first request has no plan to continue
        assert client.wait_idle(WAIT)
        first_ts, first = client.queue.snapshot()
        assert first_ts == list(range(CHUNK))
        for _ in range(3):  # 8 -> 5 queued: below 0.75 * 8 = 6, the third tick sends the next request
            client.step()
            assert client.wait_idle(WAIT)
        after_ts, after = client.queue.snapshot()
    first_req, second_req = server.requests
    assert "prev_chunk" not in first_req["rtc"]
    sent = second_req["rtc"]
    assert second_req["timestep"] == 3 and sent["inference_delay"] == 2 and sent["execution_horizon"] == 5
    torch.testing.assert_close(sent["prev_chunk"], first[3:])  # the not-yet-executed remainder, timesteps 3..7
    # nothing executed while waiting: the new chunk (timesteps 3..10) replaced the queued tail, not blended with it
    assert after_ts == list(range(3, 3 + CHUNK))
    trip = client.round_trips[1]
    assert (trip.dropped, trip.merged, trip.added, trip.inference_delay) == (0, 5, 3, 2)
    torch.testing.assert_close(after[:2], first[3:5], rtol=1e-5, atol=1e-5)  # frozen prefix = the committed plan
    assert torch.isfinite(after).all()
    sent_actions = torch.tensor([[a["dx"], a["dy"]] for a in robot.sent])
    torch.testing.assert_close(sent_actions, first[:3], rtol=1e-6, atol=1e-6)


def test_measured_delay_uses_recent_round_trips():
    settings = ClientRTC(enabled=True)
    assert settings.delay([], fps=30) == 0
    trips = [RoundTrip(0, 0, 0.01, 0.01, 8, dropped=0, merged=0, added=8),
             RoundTrip(6, 2, 0.09, 0.08, 8, dropped=3, merged=2, added=3),  # 0.09 s at 30 Hz: 2.7 -> 3 steps
             RoundTrip(12, 2, 0.02, 0.01, 8, dropped=1, merged=1, added=6)]
    assert settings.delay(trips, fps=30) == 3
    assert settings.delay(trips, fps=100) == 9  # ceil(0.09 * 100)
    assert settings.delay(trips[-1:], fps=30) == 1
    assert ClientRTC(enabled=True, inference_delay=4).delay(trips, fps=30) == 4
    # the default horizon is the whole queued remainder; an empty queue sends no plan
    assert settings.request(torch.ones(7, 2), 2)["execution_horizon"] == 7
    assert ClientRTC(enabled=True, execution_horizon=4).request(torch.ones(7, 2), 2)["execution_horizon"] == 4
    assert "prev_chunk" not in settings.request(torch.ones(0, 2), 2) and "prev_chunk" not in settings.request(None, 2)
    with pytest.raises(ValueError, match="unknown rtc setting"):
        ClientRTC.from_config({"enabled": True, "horizon": 3})
    with pytest.raises(ValueError, match="inference_delay"):
        ClientRTC(inference_delay=-1)


def test_non_flow_matching_policy_is_refused(server):
    """``server``: the tiny ACT of conftest.py."""
    assert server._ready({})["supports_rtc"] is False
    with pytest.raises(ValueError, match="does not support real-time chunking"):
        RobotClient(FakeRobot(), server.address, rtc={"enabled": True}).connect()
    obs = FakeRobot().get_observation()
    msg = {"type": "observation", "timestep": 0,
           "observation": {"observation.state": torch.tensor([obs[k] for k in STATE_KEYS], dtype=torch.float32),
                           "observation.images.front": torch.from_numpy(obs["front"])},
           "rtc": {"inference_delay": 1, "execution_horizon": 5, "max_guidance_weight": 5.0, "schedule": "exp"}}
    with pytest.raises(ValueError, match="ACTPolicy does not support it"):
        server._predict(msg)
    # through the client's config: refused at connect time, before any action is sent
    cfg = composed("robot_client", [f"server_address={server.address}", "fps=100", "duration_s=0.2",
                                    "rtc.enabled=true"])
    robot = FakeRobot()
    with pytest.raises(ValueError, match="rtc.enabled=true but the served policy ACTPolicy"):
        run_from_config(cfg, robot=robot)
    assert robot.sent == []


def test_malformed_rtc_fields_are_refused(pi0):
    server = PolicyServer(pi0, host="127.0.0.1", port=0)
    obs = FakeRobot().get_observation()
    base = {"type": "observation", "timestep": 0, "task": "push the block",
            "observation": {"observation.state": torch.tensor([obs[k] for k in STATE_KEYS], dtype=torch.float32),
                            "observation.images.front": torch.from_numpy(obs["front"])}}
    good = {"inference_delay": 1, "execution_horizon": 5, "max_guidance_weight": 5.0, "schedule": "exp"}
    reply = server._predict({**base, "rtc": {**good, "prev_chunk": torch.zeros(4, 2)}})
    assert reply["actions"].shape == (CHUNK, 2) and torch.isfinite(reply["actions"]).all()
    for bad, match in [({"prev_chunk": torch.full((4, 2), float("nan"))}, "non-finite"),
                       ({"prev_chunk": torch.zeros(4, 3)}, r"float \(L, 2\)"),
                       ({"inference_delay": -1}, "inference_delay"),
                       ({"schedule": "cosine"}, "schedule"),
                       ({"max_guidance_weight": "big"}, "max_guidance_weight")]:
        with pytest.raises(ValueError, match=match):
            server._predict({**base, "rtc": {**good, **bad}})
