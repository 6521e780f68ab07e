"""ACT (Action Chunking Transformer, Zhao et al. 2023)."""

from robolearn.policies.act.model import ACT
from robolearn.policies.act.module import ACTPolicy, TemporalEnsembler

__all__ = ["ACT", "ACTPolicy", "TemporalEnsembler"]
