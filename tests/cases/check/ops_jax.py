"""The checker's fixture, JAX side: ops_torch.py translated by hand following the contract (tests plant bugs in
copies of it)."""
import equinox as eqx
import jax
import jax.numpy as jnp

import torch2jax.runtime as t2j


def scaled_softplus(x, beta: float = 2.0):
    return jax.nn.softplus(x * beta) / beta


def leaky_mix(x, y):
    return jax.nn.leaky_relu(x, 0.1) * jax.nn.sigmoid(y) + 0.5 * y


def normalize_rows(x):
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-6)


def gram(x):
    return x @ jnp.swapaxes(x, -2, -1)


def squash(x):
    return jnp.tanh(x)


def gated(x, y):
    return x * jax.nn.sigmoid(y)


def pick(x, idx):
    return x[idx].sum(-1)


def noisy_pair(x, scale: float = 0.5, *, key):
    key, subkey = jax.random.split(key)
    a = x + scale * jax.random.normal(subkey, x.shape, x.dtype)
    key, subkey = jax.random.split(key)
    b = x * jax.random.uniform(subkey, x.shape, x.dtype)
    return a, b


class MLP(eqx.Module):
    fc1: t2j.nn.Linear
    drop: t2j.nn.Dropout
    fc2: t2j.nn.Linear

    def __init__(self, d_in=6, d_hidden=16, d_out=3, p=0.3, *, key):
        key1, key2 = jax.random.split(key)
        self.fc1 = t2j.nn.Linear(d_in, d_hidden, key=key1)
        self.drop = t2j.nn.Dropout(p)
        self.fc2 = t2j.nn.Linear(d_hidden, d_out, key=key2)

    def __call__(self, x, *, key=None):
        return self.fc2(self.drop(jnp.tanh(self.fc1(x)), key=key))


class ConvBN(eqx.Module):
    conv: t2j.nn.Conv2d
    bn: t2j.nn.BatchNorm2d
    head: t2j.nn.Linear

    def __init__(self, c_in=3, c=4, n_out=5, *, key):
        key1, key2 = jax.random.split(key)
        self.conv = t2j.nn.Conv2d(c_in, c, 3, padding=1, key=key1)
        self.bn = t2j.nn.BatchNorm2d(c)
        self.head = t2j.nn.Linear(c, n_out, key=key2)

    def __call__(self, x, state, *, key=None):
        x, state = self.bn(self.conv(x), state)
        x = jax.nn.relu(x)
        return self.head(x.mean(axis=(2, 3))), state


class Tagger(eqx.Module):
    emb: t2j.nn.Embedding
    norm: t2j.nn.LayerNorm
    out: t2j.nn.Linear

    def __init__(self, vocab=11, d=8, n_tags=4, *, key):
        key1, key2 = jax.random.split(key)
        self.emb = t2j.nn.Embedding(vocab, d, key=key1)
        self.norm = t2j.nn.LayerNorm(d)
        self.out = t2j.nn.Linear(d, n_tags, key=key2)

    def __call__(self, tokens, *, key=None):
        return jax.nn.log_softmax(self.out(self.norm(self.emb(tokens))), axis=-1)


class Stack(eqx.Module):
    layers: list

    def __init__(self, d, depth, *, key):
        keys = jax.random.split(key, depth)
        self.layers = [t2j.nn.Linear(d, d, key=k) for k in keys]

    def __call__(self, x, *, key=None):
        for layer in self.layers:
            x = jnp.tanh(layer(x))
        return x
