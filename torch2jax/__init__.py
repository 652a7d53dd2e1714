"""torch2jax: translate PyTorch source to JAX and check the translation numerically.

Importing this package is cheap: it imports neither torch nor jax (nor libcst) until a function needs them.
"""
from __future__ import annotations

__all__ = ["translate", "translate_file", "Translation", "Diagnostic", "load_state_dict", "to_state_dict", "check"]
__version__ = "0.1.0"

_LAZY = {
    "translate": ("torch2jax.pipeline", "translate"),
    "translate_file": ("torch2jax.files", "translate_file"),
    "Translation": ("torch2jax.result", "Translation"),
    "Diagnostic": ("torch2jax.diagnostics", "Diagnostic"),
    "load_state_dict": ("torch2jax.runtime.state_dict", "load_state_dict"),
    "to_state_dict": ("torch2jax.runtime.state_dict", "to_state_dict"),
    "check": ("torch2jax.check", "check"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'torch2jax' has no attribute {name!r}")
