"""Small helpers shared by the layer constructors."""
import jax
import jax.numpy as jnp


def param_dtype(dtype):
    """torch's default parameter dtype is float32; `device=` is accepted by the layers and ignored."""
    return jnp.float32 if dtype is None else dtype


def hashable(value):
    """Lists (which torch accepts for sizes) as tuples, so that layers can keep them as static fields under jit."""
    return tuple(value) if isinstance(value, list) else value


def split_key(key, num, layer):
    """`num` subkeys for a layer's random initialisation, with a clear error when no key was given."""
    if key is None:
        raise ValueError(f"{layer} draws random initial parameters: pass key=jax.random.key(...)")
    return jax.random.split(key, num)
