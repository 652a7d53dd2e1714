"""torch.save / torch.load for translated code: any picklable object (a state_dict, a checkpoint dict with epoch
and optimizer state), its JAX arrays stored as numpy arrays and given back as JAX arrays.

The file is a plain pickle, not torch's zip format: checkpoints written by torch itself are not read here (convert
them once with torch: `{k: v.numpy() for k, v in torch.load(path).items()}`, pickled)."""
from __future__ import annotations

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np


def _is_array(x) -> bool:
    return isinstance(x, jax.Array) and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def save(obj, f, pickle_module=None, pickle_protocol=pickle.DEFAULT_PROTOCOL, **torch_options):
    """torch.save(obj, f): f a path or a writable binary file. torch's serialization switches (zipfile, ...) change
    nothing here."""
    plain = jax.tree_util.tree_map(lambda x: np.asarray(x) if _is_array(x) else x, obj)
    module = pickle_module or pickle
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as out:
            module.dump(plain, out, protocol=pickle_protocol)
    else:
        module.dump(plain, f, protocol=pickle_protocol)


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """torch.load(f): what save wrote, numpy arrays back as JAX arrays; map_location / weights_only / mmap change
    nothing (JAX places arrays on its default device)."""
    module = pickle_module or pickle
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as src:
            obj = module.load(src)
    else:
        obj = module.load(f)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x) if isinstance(x, np.ndarray) else x, obj)
