"""HIL-SERL (Luo et al. 2024): learner and actor as separate processes over gRPC, human interventions.

Modules import lazily-heavy pieces themselves; import from the submodules:
:mod:`~robolearn.rl.hil.learner` (``RemoteActorDataModule``, ``TransitionServer``),
:mod:`~robolearn.rl.hil.actor` (``HILActor``, ``LearnerClient``, ``run_actor``),
:mod:`~robolearn.rl.hil.interventions` (keyboard, gamepad, leader-arm and scripted sources),
:mod:`~robolearn.rl.hil.protocol` (messages), :mod:`~robolearn.rl.hil.roles` (``role=`` dispatch of train.py).
"""
