"""Issue 15's programs: `steps` (each step type's decisions, pure) and `service` (the runner)."""
