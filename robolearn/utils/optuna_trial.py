"""Names shared by the Optuna sweeper (``hydra_plugins/robolearn_optuna_sweeper``) and the pruning callback
(:mod:`robolearn.callbacks.optuna_pruning`); no heavy imports, because Hydra imports the sweeper plugin at the start
of every application."""

# The trial user attribute the pruning callback sets to the step at which the run stopped; the sweeper then tells the
# study the trial was pruned.
PRUNED_ATTR = "pruned_at_step"
