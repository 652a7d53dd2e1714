"""Torch-compatible Equinox layers: batch-first, NCHW, torch's parameter names and shapes, torch's default init."""
from torch2jax.runtime.nn.attention import MultiheadAttention
