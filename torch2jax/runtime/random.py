"""Random-number helpers that translated code calls as `t2j.NAME`: key splitting that tolerates a None key, the
torch sampling functions that jax.random has no one-call equivalent for, and seeding shims.

Translated functions thread a PRNG key explicitly (`def f(x, *, key)`, `key, subkey = jax.random.split(key)`).
A module's `__call__` takes `*, key=None`, because inference (eqx.nn.inference_mode, torch's eval()) calls it
without one; there the translator writes `t2j.split_key(key)` instead of `jax.random.split(key)`, which gives
Nones for a None key, so the layers below see key=None and (in inference mode) need none.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def split_key(key, num: int = 2):
    """`jax.random.split(key, num)`, or `num` Nones when key is None (a module called without a key)."""
    if key is None:
        return (None,) * num
    return jax.random.split(key, num)


def fold_in(key, data):
    """`jax.random.fold_in(key, data)`, or None when key is None."""
    if key is None:
        return None
    return jax.random.fold_in(key, data)


def multinomial(key, input, num_samples: int, replacement: bool = False):
    """torch.multinomial: `num_samples` indices per row of the (unnormalised, nonnegative) weights `input`.

    With replacement: independent categorical draws. Without: the Gumbel top-k trick, which has the same
    distribution as torch's one-at-a-time sampling without replacement. Returns int32 (torch: int64).
    """
    input = jnp.asarray(input)
    logits = jnp.log(input.astype(jnp.result_type(input.dtype, jnp.float32)))
    if replacement:
        out = jax.random.categorical(key, logits, axis=-1, shape=(num_samples,) + input.shape[:-1])
        return jnp.moveaxis(out, 0, -1)
    if num_samples > input.shape[-1]:
        raise ValueError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    perturbed = logits + jax.random.gumbel(key, input.shape, logits.dtype)
    return jax.lax.top_k(perturbed, num_samples)[1]


def manual_seed(seed):
    """torch.manual_seed(seed) where the translator could not turn it into `key = jax.random.key(seed)`."""
    return jax.random.key(seed)


def cuda_manual_seed(seed):
    """torch.cuda.manual_seed(_all): JAX draws the same numbers on every device, so there is nothing to seed."""
    return None


_GENERATOR_STREAM = 0x6E6  # folded into a generator's seeded key (see Generator)


class Generator:
    """Stands in for torch.Generator: a key stream. The draws that took `generator=g` draw with `g.next_key()`, so
    a generator seeded with a number gives the same draws at every run, as torch's does (not torch's numbers).
    Kept outside jitted code (a key it hands out inside a traced function would leak from the trace).

    Its stream is not the one `jax.random.key(seed)` starts: a script that seeds torch and a generator with one
    number (`torch.manual_seed(s)`, `Generator().manual_seed(s)`) would otherwise draw the same keys in two places,
    which reads as a key used twice."""

    def __init__(self, device=None):
        self.manual_seed(67280421310721)  # torch's default seed

    def manual_seed(self, seed):
        self._seed = int(seed)
        self.key = jax.random.fold_in(jax.random.key(self._seed), _GENERATOR_STREAM)
        return self

    def next_key(self):
        self.key, sub = jax.random.split(self.key)
        return sub

    def initial_seed(self):
        return self._seed

    def seed(self):
        return self._seed
