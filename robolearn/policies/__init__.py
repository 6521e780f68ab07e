"""Policy families as LightningModules."""

from robolearn.policies.base import PolicyModule  # noqa: E402
from robolearn.policies.normalize import Normalizer  # noqa: E402
from robolearn.policies.pretrained import load_policy, save_pretrained  # noqa: E402

__all__ = ["Normalizer", "PolicyModule", "load_policy", "save_pretrained", "save_lerobot_pretrained"]


def save_lerobot_pretrained(policy, directory):
    """Export ``policy`` as a lerobot 0.6.1 ``pretrained_model`` folder (see
    :func:`robolearn.policies.lerobot_compat.save_lerobot_pretrained`)."""
    from robolearn.policies.lerobot_compat import save_lerobot_pretrained as _save

    return _save(policy, directory)
