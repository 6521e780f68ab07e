"""robolearn: Hydra + Lightning robot learning."""
