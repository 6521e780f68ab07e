"""Policy families as LightningModules."""
