"""RQ entry points. Thin on purpose: they find the process's context and call the engine."""
