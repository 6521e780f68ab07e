"""π0 and π0.5 (Physical Intelligence) vision-language-action flow-matching policies."""

from robolearn.policies.pi0.module import Pi0Policy, Pi05Policy

__all__ = ["Pi0Policy", "Pi05Policy"]
