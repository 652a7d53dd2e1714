"""Torch-compatible Equinox layers: batch-first, NCHW, torch's parameter names and shapes, torch's default init."""
