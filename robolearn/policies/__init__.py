"""Policy families as LightningModules."""

from robolearn.policies.base import PolicyModule  # noqa: E402
from robolearn.policies.normalize import Normalizer  # noqa: E402
from robolearn.policies.pretrained import load_policy, save_pretrained  # noqa: E402

__all__ = ["Normalizer", "PolicyModule", "load_policy", "save_pretrained"]
