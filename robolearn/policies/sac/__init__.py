"""SAC (Soft Actor-Critic, Haarnoja et al. 2018) for online RL inside Lightning (HIL-SERL's learner, Luo et al. 2024)."""

from robolearn.policies.sac.model import (CriticEnsemble, DiscreteCritic, ObservationEncoder, TanhGaussianActor,
                                         polyak_update)
from robolearn.policies.sac.module import SACPolicy

__all__ = ["CriticEnsemble", "DiscreteCritic", "ObservationEncoder", "SACPolicy", "TanhGaussianActor", "polyak_update"]
