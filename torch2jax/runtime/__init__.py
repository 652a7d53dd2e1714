"""Runtime support imported by translated code: needs jax, equinox and optax only (never torch, never libcst).

Translated files do `import torch2jax.runtime as t2j` and call `t2j.nn.Linear(...)`, `t2j.topk(...)`, etc.
"""
from torch2jax.runtime import nn
from torch2jax.runtime.ops import *  # noqa: F401,F403  (tensor-op helpers where jnp's semantics differ from torch's)
