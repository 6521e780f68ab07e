import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir

from robolearn.inference.client import RobotClient, run_from_config
from robolearn.inference.server import server_from_config
from robolearn.policies import save_pretrained
from robolearn.utils.schema import CONF_DIR, register_schemas

from .helpers import FakeRobot, tiny_act


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def composed(name: str, overrides: list[str], hydra_node: bool = False):
    register_schemas()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=hydra_node)


@pytest.fixture(scope="module")
def saved_policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "pretrained_model"
    save_pretrained(tiny_act(chunk_size=10), path)
    return path


def test_configs_compose():
    serve = composed("serve", ["policy.path=/some/dir", "port=9000", "token=abc"], hydra_node=True)
    client = composed("robot_client", ["robot=so101_follower", "robot.port=/dev/ttyACM0"], hydra_node=True)
    assert serve.policy.path == "/some/dir" and serve.host == "127.0.0.1" and serve.port == 9000 and serve.token == "abc"
    assert serve.hydra.output_subdir is None  # the token is not written to the run folder
    assert client.robot._target_.endswith("SOFollower") and client.chunk_size_threshold == 0.5
    assert client.aggregate_fn_name == "weighted_average" and client.hydra.output_subdir is None


def test_serve_and_client_from_config(saved_policy):
    serve = composed("serve", [f"policy.path={saved_policy}", "port=0", "token=tok", "actions_per_chunk=8"])
    with server_from_config(serve) as server:
        assert type(server.policy).__name__ == "ACTPolicy"
        cfg = composed("robot_client", [f"server_address={server.address}", "token=tok", "fps=100",
                                        "duration_s=0.3", "aggregate_fn_name=average"])
        robot = FakeRobot()
        summary = run_from_config(cfg, robot=robot)
    assert summary["chunks"] >= 1 and summary["executed"] == len(robot.sent) > 0
    assert not robot.is_connected  # the client run connected and released it


def test_client_without_robot_says_what_to_pass():
    with pytest.raises(ValueError, match="no robot selected: pass robot="):
        run_from_config(composed("robot_client", []))


@pytest.mark.slow
def test_server_cli_process(saved_policy, tmp_path):
    port = free_port()
    env = {**os.environ, "ROBOLEARN_INFERENCE_TOKEN": "cli-token", "PROJECT_ROOT": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "robolearn.inference.server", f"policy.path={saved_policy}",
                             f"port={port}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        client = RobotClient(FakeRobot(), f"127.0.0.1:{port}", token="cli-token", timeout_s=5)
        deadline = time.monotonic() + 120
        while True:  # wait for the server process to listen
            try:
                client.connect()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        with client:
            client.step()
            assert client.wait_idle(20) and len(client.queue) == 10
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    assert "serving ACTPolicy" in out and "auth on" in out
    assert not list(tmp_path.rglob("config.yaml"))  # Hydra did not save the run config (it holds the token)
