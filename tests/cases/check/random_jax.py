"""The checker's random-code fixture, JAX side: random_torch.py translated by hand (tests plant bugs in copies)."""
import equinox as eqx
import jax
import jax.numpy as jnp

import torch2jax.runtime as t2j


class Reparam(eqx.Module):
    mu: t2j.nn.Linear
    logvar: t2j.nn.Linear
    dec: t2j.nn.Linear

    def __init__(self, d_in=10, d_z=4, *, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.mu = t2j.nn.Linear(d_in, d_z, key=k1)
        self.logvar = t2j.nn.Linear(d_in, d_z, key=k2)
        self.dec = t2j.nn.Linear(d_z, d_in, key=k3)

    def __call__(self, x, *, key=None):
        mu, logvar = self.mu(x), self.logvar(x)
        z = mu + jax.random.normal(key, mu.shape, mu.dtype) * jnp.exp(0.5 * logvar)
        return jax.nn.sigmoid(self.dec(z)), mu, logvar


class TwoNoises(eqx.Module):
    fc: t2j.nn.Linear

    def __init__(self, d=6, *, key):
        self.fc = t2j.nn.Linear(d, d, key=key)

    def __call__(self, x, *, key=None):
        h = self.fc(x)
        key1, key2 = jax.random.split(key)
        return h + jax.random.normal(key1, h.shape, h.dtype), jax.random.uniform(key2, (h.shape[-1],)) * h.mean(0)


class Jitter(eqx.Module):
    fc: t2j.nn.Linear

    def __init__(self, d=5, *, key):
        self.fc = t2j.nn.Linear(d, d, key=key)

    def __call__(self, x, *, key=None):
        h = self.fc(x)
        return h, h * jax.random.bernoulli(key, 0.5, h.shape)


class TwoDropouts(eqx.Module):
    fc1: t2j.nn.Linear
    fc2: t2j.nn.Linear
    drop1: t2j.nn.Dropout
    drop2: t2j.nn.Dropout

    def __init__(self, d=8, *, key):
        k1, k2 = jax.random.split(key)
        self.fc1, self.fc2 = t2j.nn.Linear(d, d, key=k1), t2j.nn.Linear(d, d, key=k2)
        self.drop1, self.drop2 = t2j.nn.Dropout(0.3), t2j.nn.Dropout(0.3)

    def __call__(self, x, *, key=None):
        key1, key2 = t2j.split_key(key)
        return self.drop2(self.fc2(self.drop1(jax.nn.relu(self.fc1(x)), key=key1)), key=key2)
