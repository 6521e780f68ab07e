"""lerobot ``type: "pi05"`` checkpoints: the π0 name map with π0.5's config (see
:mod:`robolearn.policies.pi0.lerobot_format_pi05`)."""

from robolearn.policies.pi0.lerobot_format_pi05 import *  # noqa: F401,F403
