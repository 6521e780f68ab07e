"""The scripted expert of an env used as a policy (``eval.py policy=scripted``)."""

from robolearn.policies.scripted.policy import ScriptedPolicy

__all__ = ["ScriptedPolicy"]
