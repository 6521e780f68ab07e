"""gym-aloha helpers: end-effector scripted experts (ACT-style), their IK and waypoint plans, and
render-free stepping for fast rollouts."""

from robolearn.envs.aloha.experts import InsertionExpert, TransferCubeExpert
from robolearn.envs.aloha.headless import headless_reset, headless_step

__all__ = ["InsertionExpert", "TransferCubeExpert", "headless_reset", "headless_step"]
