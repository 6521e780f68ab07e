"""Small shared utilities (config schemas, logging helpers)."""
