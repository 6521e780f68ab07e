"""π0.5 (Physical Intelligence 2025) — implemented in :mod:`robolearn.policies.pi0`; this package gives lerobot's
``type: "pi05"`` its ``robolearn.policies.pi05.lerobot_format`` module, as every lerobot type has."""

from robolearn.policies.pi0.module import Pi05Policy

__all__ = ["Pi05Policy"]
