import pytest

from robolearn.inference.server import PolicyServer

from .helpers import tiny_act

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def policy():
    return tiny_act(chunk_size=10)


@pytest.fixture
def server(policy):
    """A server on a free loopback port, no authentication."""
    policy.reset()
    with PolicyServer(policy, host="127.0.0.1", port=0) as srv:
        yield srv


@pytest.fixture
def auth_server(policy):
    """A server on a free loopback port that requires TOKEN."""
    policy.reset()
    with PolicyServer(policy, host="127.0.0.1", port=0, token=TOKEN, max_message_bytes=2 * 1024 * 1024) as srv:
        yield srv
