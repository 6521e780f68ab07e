"""SmolVLA (Shukor et al. 2025): SmolVLM2 backbone + flow-matching action expert."""

from robolearn.policies.smolvla.module import SmolVLAPolicy

__all__ = ["SmolVLAPolicy"]
