"""``ScriptedPolicy``: returns the action of the scripted expert that runs inside each env.

The expert must live beside its simulator (it reads privileged state), so it is not part of this object:
:class:`robolearn.envs.expert_wrapper.ExpertActionWrapper` runs it in the env (in the worker process for an
``AsyncVectorEnv``) and the rollout passes its action in the batch under ``"expert.action"``. The
evaluation wraps the envs with the env config's ``expert`` because this class sets ``requires_expert``.
"""

from __future__ import annotations

from typing import Any

import torch

EXPERT_BATCH_KEY = "expert.action"


class ScriptedPolicy(torch.nn.Module):
    """Policy surface (``reset`` / ``select_action``) over the in-env scripted expert.

    It has no input features (so the feature check passes for any env) and no parameters.
    """

    requires_expert = True
    input_features: dict = {}

    def reset(self) -> None:
        """Nothing to reset: each env's expert is reset with its env."""

    def select_action(self, observation: dict[str, Any]) -> torch.Tensor:
        """Return ``observation["expert.action"]``, ``(B, action_dim)`` float32, in the env's action units.

        Raises:
            KeyError: the batch has no expert action (the env was not wrapped with its scripted expert).
        """
        if EXPERT_BATCH_KEY not in observation:
            raise KeyError(f"ScriptedPolicy needs {EXPERT_BATCH_KEY!r} in the batch (the env's scripted expert "
                           f"action); got keys {sorted(observation)}. Does the env config set `expert`?")
        return torch.as_tensor(observation[EXPERT_BATCH_KEY], dtype=torch.float32)
