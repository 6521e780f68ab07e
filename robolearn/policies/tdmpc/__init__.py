"""TD-MPC (Hansen et al. 2022, "Temporal Difference Learning for Model Predictive Control")."""

from robolearn.policies.tdmpc.model import TOLD, TDMPCObservationEncoder
from robolearn.policies.tdmpc.module import TDMPCPolicy
from robolearn.policies.tdmpc.planner import PlannerConfig, estimate_value, plan

__all__ = ["TOLD", "PlannerConfig", "TDMPCObservationEncoder", "TDMPCPolicy", "estimate_value", "plan"]
