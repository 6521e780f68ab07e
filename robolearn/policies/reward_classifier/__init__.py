"""Reward classifier: binary success prediction from camera frames (HIL-SERL's learned reward, Luo et al. 2024)."""

from robolearn.policies.reward_classifier.model import SuccessClassifierNet
from robolearn.policies.reward_classifier.module import RewardClassifier

__all__ = ["RewardClassifier", "SuccessClassifierNet"]
