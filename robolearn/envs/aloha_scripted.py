"""Scripted experts for gym-aloha's ``AlohaTransferCube-v0`` and ``AlohaInsertion-v0``.

Both implement :class:`robolearn.envs.expert.ScriptedExpert`: construct with the env, call ``reset()``
right after every ``env.reset(...)``, then ``act(observation)`` once per ``env.step`` for the 14-d joint
action. The implementation lives in :mod:`robolearn.envs.aloha` (IK, waypoint plans, render-free stepping).

Example::

    env = gym.make("gym_aloha/AlohaTransferCube-v0")
    expert = TransferCubeExpert(env)
    obs, info = env.reset(seed=0)
    expert.reset()
    obs, reward, terminated, truncated, info = env.step(expert.act(obs))
"""

from robolearn.envs.aloha.experts import InsertionExpert, TransferCubeExpert

__all__ = ["InsertionExpert", "TransferCubeExpert"]
