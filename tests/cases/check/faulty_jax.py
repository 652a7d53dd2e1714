"""The checker's isolation fixture, JAX side: Raises raises, Hangs never returns, crashes kills its process."""
import os

import equinox as eqx
import jax.numpy as jnp

import torch2jax.runtime as t2j


def double(x):
    return x * 2


class Raises(eqx.Module):
    fc: t2j.nn.Linear

    def __init__(self, *, key):
        self.fc = t2j.nn.Linear(4, 2, key=key)

    def __call__(self, x, *, key=None):
        raise RuntimeError("boom")


class Hangs(eqx.Module):
    fc: t2j.nn.Linear

    def __init__(self, *, key):
        self.fc = t2j.nn.Linear(4, 2, key=key)

    def __call__(self, x, *, key=None):
        while True:
            pass


def crashes(x):
    os._exit(3)


def shift(x):
    return x + 1


def hog(x):
    import numpy as np

    untouched = np.empty(8 << 30, np.uint8)  # 8 GiB of address space (never written): past the memory limit
    return x.sum() + 0 * untouched.size
