"""Hand-written idiomatic Equinox + optax training steps for the models benchmarks/step_speed.py times the
translator's steps against (the same architecture, initialisation scheme, optimizer rule and batch)."""
