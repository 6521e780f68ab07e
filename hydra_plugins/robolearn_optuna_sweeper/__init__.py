"""robolearn's Optuna sweeper, a Hydra plugin (``hydra/sweeper=robolearn_optuna``); see :mod:`.optuna_sweeper`."""
