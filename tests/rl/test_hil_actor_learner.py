"""HIL-SERL actor–learner over gRPC on loopback: transitions and weights are exchanged, a malformed message is
rejected while the learner keeps serving, a killed actor process does not stop the learner, interventions are
flagged and reach both buffers, actor episodes are recorded to a LeRobotDataset."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import gymnasium as gym
import pytest
import torch

from tests.presets import smoke_policy_kwargs
from robolearn.envs.planar_arm import PlanarReachPD
from robolearn.inference.codec import encode
from robolearn.policies.sac import SACPolicy
from robolearn.rl.hil.actor import HILActor, LearnerClient, LearnerRejected, writer_features
from robolearn.rl.hil.interventions import ScriptedIntervention
from robolearn.rl.hil.learner import RemoteActorDataModule
from robolearn.rl.hil.protocol import IS_INTERVENTION, method_path, stack_transitions

REPO = Path(__file__).resolve().parents[2]
ENV_ID = "robolearn.envs.planar_arm:robolearn/PlanarReach-v0"
FEATURES_MAP = {"agent_pos": "observation.state", "environment_state": "observation.environment_state"}
TINY = smoke_policy_kwargs("sac")


def make_env(steps: int = 20) -> gym.Env:
    return gym.make(ENV_ID, control="velocity", max_episode_steps=steps)


def policy_factory(**kw):
    return SACPolicy(**kw, **TINY)


@pytest.fixture
def learner():
    dm = RemoteActorDataModule(ENV_ID, FEATURES_MAP, env_kwargs={"control": "velocity", "max_episode_steps": 20},
                               batch_size=8, online_step_before_learning=10, stats_steps=20, port=0,
                               weights_push_every=2, wait_timeout_s=60, drq_pad=0)
    policy = SACPolicy(features=dm.features, stats=dm.stats, **TINY)
    dm.connect(policy)
    yield dm
    dm.close()


def test_transitions_and_weights_roundtrip(learner):
    client = LearnerClient(learner.server.address, timeout_s=10)
    actor = HILActor(make_env(), FEATURES_MAP, client, policy_factory, push_every=5, pull_every=1000)
    info = actor.connect()
    assert info["policy"] == "SACPolicy" and actor.weights_version == 1
    for _ in range(25):
        actor.step()
    actor.flush()
    assert actor.sent == 25
    assert learner.ingest() == 25 and len(learner.online_buffer) == 25
    assert len(learner.offline_buffer) == 0  # no interventions
    batch = learner.next_batch()
    assert batch["action"].shape == (8, 2)
    # change the learner's weights, publish, pull: the actor holds exactly the learner's tensors
    with torch.no_grad():
        for p in learner.policy.parameters():
            p.add_(torch.randn_like(p))
    version = learner.publish_weights()
    assert actor.pull_weights() and actor.weights_version == version
    theirs, ours = learner.policy.state_dict(), actor.policy.state_dict()
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[k], ours[k]) for k in theirs)
    assert not actor.pull_weights()  # nothing newer: no payload sent
    # weights are published every weights_push_every (2) batches
    learner.next_batch()
    assert learner.server.weights_version == version + 1
    client.close()


def test_malformed_messages_are_rejected_and_learner_continues(learner):
    channel = grpc.insecure_channel(learner.server.address)
    push = channel.unary_unary(method_path("PushTransitions"))
    with pytest.raises(grpc.RpcError) as err:  # a pickle is not msgpack
        push(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins", timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in err.value.details()
    client = LearnerClient(learner.server.address, timeout_s=5)
    env = make_env()
    actor = HILActor(env, FEATURES_MAP, client, policy_factory)
    actor.connect()
    good = [actor.step() for _ in range(3)]
    actor.pending.clear()
    bad = stack_transitions(good)
    bad["observation.state"] = bad["observation.state"][:, :3]
    with pytest.raises(LearnerRejected, match="observation.state"):
        client.push(bad)
    no_flag = {k: v for k, v in stack_transitions(good).items() if k != IS_INTERVENTION}
    with pytest.raises(LearnerRejected, match="is_intervention"):
        client.push(no_flag)
    with pytest.raises(grpc.RpcError):
        channel.unary_unary(method_path("GetWeights"))(encode({"type": "get_weights", "have_version": "x"}), timeout=5)
    assert learner.server.rejected == 4 and "have_version" in learner.server.last_error
    assert client.push(stack_transitions(good))["accepted"] == 3  # still serving
    assert learner.ingest() == 3
    channel.close()
    client.close()


def test_episode_reports_carry_the_simulators_success_when_given(learner, monkeypatch):
    """An episode's optional ``sim_success`` (RobotEnv's simulator verdict beside a reward classifier) reaches the
    learner's episode log as env/sim_success; None is dropped; a non-number is refused like a missing field."""
    from robolearn.rl.hil.protocol import validate_episodes

    base = {"episode_return": 1.0, "success": True, "length": 3, "env_step": 3, "interventions": 0}
    assert validate_episodes([{**base, "sim_success": False}])[0]["sim_success"] == 0.0
    assert "sim_success" not in validate_episodes([{**base, "sim_success": None}])[0]
    with pytest.raises(ValueError, match="sim_success"):
        validate_episodes([{**base, "sim_success": "yes"}])
    logged = []
    monkeypatch.setattr(learner, "_log_episode", lambda ep, extra=None: logged.append(ep))
    client = LearnerClient(learner.server.address, timeout_s=10)
    actor = HILActor(make_env(), FEATURES_MAP, client, policy_factory, push_every=100)
    actor.connect()
    batch = stack_transitions([actor.step() for _ in range(3)])
    actor.pending.clear()
    client.push(batch, [{**base, "sim_success": False}, {**base, "sim_success": None}])
    assert learner.ingest() == 3
    assert [ep.sim_success for ep in logged] == [False, None]
    client.close()


def test_interventions_are_flagged_and_reach_both_buffers(learner):
    client = LearnerClient(learner.server.address, timeout_s=10)
    source = ScriptedIntervention(PlanarReachPD, steps=[0, 1, 2])
    env = make_env(steps=10)
    actor = HILActor(env, FEATURES_MAP, client, policy_factory, intervention=source, push_every=100)
    actor.connect()
    flags, expert_actions = [], []
    for _ in range(20):  # two 10-step episodes, the expert acts at steps 0-2 of each
        t = actor.step()
        flags.append(float(t[IS_INTERVENTION]))
    assert flags == ([1.0] * 3 + [0.0] * 7) * 2 and actor.interventions == 6
    assert learner.ingest() == 20
    assert len(learner.online_buffer) == 20 and len(learner.offline_buffer) == 6
    off = learner.offline_buffer.gather(torch.arange(6))
    on = learner.online_buffer.gather(torch.arange(20))
    assert torch.all(off[IS_INTERVENTION] == 1)
    assert torch.equal(off["action"][:3], on["action"][:3])  # the same transitions in both buffers
    # the expert's action replaced the policy's: a fresh PD expert on the same start state agrees
    env2 = make_env(steps=10)
    env2.reset(seed=0)
    pd = PlanarReachPD(env2)
    pd.reset()
    assert torch.allclose(on["action"][0], torch.as_tensor(pd.act(None)))
    client.close()


def test_killing_the_actor_process_does_not_crash_the_learner(learner):
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        import gymnasium as gym
        from robolearn.policies.sac import SACPolicy
        from robolearn.rl.hil.actor import HILActor, LearnerClient
        env = gym.make({ENV_ID!r}, control="velocity", max_episode_steps=20)
        actor = HILActor(env, {FEATURES_MAP!r}, LearnerClient({learner.server.address!r}, timeout_s=30),
                         lambda **kw: SACPolicy(**kw, **{TINY!r}), push_every=5)
        actor.run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        batch = learner.next_batch()  # waits for the warm-up transitions from the actor process
        assert batch["action"].shape == (8, 2)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    received = learner.received_transitions
    time.sleep(0.2)
    for _ in range(5):  # keeps training on what it has
        assert learner.next_batch()["action"].shape == (8, 2)
    assert learner.ingest() >= 0 and learner.received_transitions >= received
    # and serves the next actor
    client = LearnerClient(learner.server.address, timeout_s=5)
    assert client.ready()["policy"] == "SACPolicy"
    client.close()


def test_actor_records_episodes_to_a_lerobot_dataset(learner, tmp_path):
    from robolearn.datasets.lerobot_dataset import LeRobotDataset
    from robolearn.datasets.writer import LeRobotDatasetWriter

    client = LearnerClient(learner.server.address, timeout_s=10)
    actor = HILActor(make_env(steps=5), FEATURES_MAP, client, policy_factory,
                     intervention=ScriptedIntervention(PlanarReachPD, steps=[0]))
    actor.connect()
    root = tmp_path / "hil_rec"
    writer = LeRobotDatasetWriter.create("local/hil_rec", 20, writer_features(actor.features, use_videos=False),
                                         root=root, use_videos=False)
    actor.writer, actor.task = writer, "reach"
    for _ in range(10):
        actor.step()
    writer.finalize()
    ds = LeRobotDataset("local/hil_rec", root=root)
    assert ds.meta.total_episodes == 2 and len(ds) == 10
    flags = [float(ds[i][IS_INTERVENTION]) for i in range(10)]
    assert flags == [1.0, 0, 0, 0, 0] * 2
    client.close()
