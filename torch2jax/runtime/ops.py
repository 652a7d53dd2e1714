"""Tensor operations whose torch semantics jax.numpy does not have directly."""
