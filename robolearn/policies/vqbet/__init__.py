"""VQ-BeT (Lee et al. 2024): residual VQ-VAE action codes + causal GPT."""

from robolearn.policies.vqbet.module import VQBeTPolicy

__all__ = ["VQBeTPolicy"]
