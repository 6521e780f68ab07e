"""Diffusion Policy (Chi et al. 2023), CNN / 1-D U-Net variant."""

from robolearn.policies.diffusion.model import ConditionalUnet1D, DiffusionModel, RgbEncoder
from robolearn.policies.diffusion.module import DiffusionPolicy

__all__ = ["ConditionalUnet1D", "DiffusionModel", "DiffusionPolicy", "RgbEncoder"]
