"""Common random numbers for code that draws: torch's draws are recorded and handed to the translation's
`jax.random` calls in the same order, so that outputs and gradients of random code compare exactly, like
deterministic code's (runs in the worker).

Recorded on the torch side: torch.randn / randn_like (standard normal) and torch.rand / rand_like (uniform on
[0, 1)), also where the user's module imported them by name. Replayed on the JAX side: jax.random.normal and
jax.random.uniform (minval + u * (maxval - minval)), when kind and shape match the next recorded draw.

A replay is only evidence when it covers all the randomness: `Replay.torch_covers` reruns torch under another seed
feeding it the recorded draws (the output must not change), and the JAX side must consume exactly the recorded
draws with no other jax.random sampler (bernoulli, randint, ...) called. Otherwise `Replay.ok` is False and the
caller falls back to statistics. JAX code runs eagerly under a replay: a compiled function would keep the first
draws as constants.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

import numpy as np

TORCH_SAMPLERS = {"randn": "normal", "randn_like": "normal", "rand": "uniform", "rand_like": "uniform"}
JAX_REPLAYED = ("normal", "uniform")
JAX_OTHER = ("bernoulli", "randint", "categorical", "gumbel", "truncated_normal", "choice", "permutation",
             "exponential", "gamma", "beta", "laplace", "logistic", "cauchy", "poisson", "multivariate_normal",
             "dirichlet", "t", "rademacher", "ball", "orthogonal", "bits")

ACTIVE = [False]  # a replay is running: jit_or_eager runs eagerly


class Replay:
    def __init__(self, user_modules=()):
        self.user_modules = [m for m in user_modules if m is not None]
        self.draws: list[tuple[str, tuple, np.ndarray]] = []
        self.ok = True
        self.why = ""
        self.reused = ""  # two JAX draws from one key (torch's draws are independent): a bug, not a fallback
        self._keys: dict = {}

    def fail(self, why: str):
        if self.ok:
            self.ok, self.why = False, why

    # ------------------------------------------------------------------------------------------ torch
    @contextmanager
    def torch(self, feed: list | None = None):
        """Record torch's draws into self.draws, or (feed) hand out the given draws instead of drawing."""
        import torch

        queue = list(feed) if feed is not None else None
        originals = {n: getattr(torch, n) for n in TORCH_SAMPLERS}

        def wrap(name, original):
            kind = TORCH_SAMPLERS[name]

            def sampler(*args, **kwargs):
                out = original(*args, **kwargs)
                if queue is None:
                    self.draws.append((kind, tuple(out.shape), out.detach().cpu().numpy().copy()))
                    return out
                if not queue or queue[0][0] != kind or queue[0][1] != tuple(out.shape):
                    self.fail("torch draws differently on a second run")
                    return out
                return torch.as_tensor(queue.pop(0)[2], dtype=out.dtype, device=out.device)

            return sampler

        patched = [(torch, n, originals[n]) for n in TORCH_SAMPLERS]
        for mod in self.user_modules:  # `from torch import randn_like`
            for n, obj in list(vars(mod).items()):
                for tn, orig in originals.items():
                    if obj is orig:
                        patched.append((mod, n, obj))
                        break
        for mod, n, orig in patched:
            setattr(mod, n, wrap(next(tn for tn, o in originals.items() if o is orig), orig))
        try:
            yield self
        finally:
            for mod, n, orig in patched:
                setattr(mod, n, orig)
        if queue:
            self.fail("torch draws fewer numbers on a second run")

    def torch_covers(self, run_torch, first_out) -> bool:
        """Whether the recorded draws determine torch's output: rerun under another seed feeding them back."""
        import torch

        from torch2jax.check import compare as cmp

        if not self.draws:
            self.fail("torch's randomness is not drawn by randn/rand (dropout, bernoulli, ...)")
            return False
        torch.manual_seed(12345)
        with self.torch(feed=self.draws):
            again = run_torch()
        if self.ok and not cmp.compare_trees(first_out, again).ok:
            self.fail("torch draws more than randn/rand (dropout, bernoulli, ...)")
        return self.ok

    # ------------------------------------------------------------------------------------------ JAX
    def note_key(self, key, what):
        import jax
        import jax.numpy as jnp

        try:
            data = np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                              else key).tobytes()
        except Exception:  # noqa: BLE001  (a tracer)
            return
        if data in self._keys and not self.reused:
            self.reused = f"the translation draws {self._keys[data]} and {what} with one key"
        self._keys.setdefault(data, what)

    @contextmanager
    def jax(self):
        """Hand self.draws to the translation's jax.random.normal / uniform calls, in order."""
        import jax
        import jax.numpy as jnp

        queue = list(self.draws)
        originals = {n: getattr(jax.random, n) for n in JAX_REPLAYED + JAX_OTHER if hasattr(jax.random, n)}

        def replayed(kind, original):
            def sampler(key, shape=(), dtype=jnp.float32, *args, **kwargs):
                shape = tuple(shape) if not isinstance(shape, int) else (shape,)
                self.note_key(key, f"{kind} {shape}")
                if not queue or queue[0][0] != kind or queue[0][1] != shape:
                    want = f"{queue[0][0]} {queue[0][1]}" if queue else "none"
                    self.fail(f"the translation draws {kind} {shape} where torch drew {want}")
                    return original(key, shape, dtype, *args, **kwargs)
                value = jnp.asarray(queue.pop(0)[2], dtype)
                if kind == "uniform":
                    lo = kwargs.get("minval", args[0] if args else 0.0)
                    hi = kwargs.get("maxval", args[1] if len(args) > 1 else 1.0)
                    value = (lo + value * (hi - lo)).astype(dtype)
                return value

            return sampler

        def other(name, original):
            def sampler(*args, **kwargs):
                if args:
                    self.note_key(args[0], name)
                self.fail(f"the translation draws with jax.random.{name}, which torch's draws cannot stand for")
                return original(*args, **kwargs)

            return sampler

        for n, orig in originals.items():
            setattr(jax.random, n, replayed(n, orig) if n in JAX_REPLAYED else other(n, orig))
        ACTIVE[0] = True
        try:
            yield self
        finally:
            ACTIVE[0] = False
            for n, orig in originals.items():
                setattr(jax.random, n, orig)
        if queue:
            self.fail(f"the translation draws {len(queue)} fewer random arrays than torch")


@contextmanager
def key_tracker():
    """Note the key of every jax.random sampler call (eagerly: ACTIVE); yields a Replay whose `reused` says when
    two draws shared one key. Nothing is replayed."""
    import jax

    tracker = Replay()
    originals = {n: getattr(jax.random, n) for n in JAX_REPLAYED + JAX_OTHER if hasattr(jax.random, n)}

    def noted(name, original):
        def sampler(*args, **kwargs):
            key = args[0] if args else kwargs.get("key")
            if key is not None:
                tracker.note_key(key, name)
            return original(*args, **kwargs)

        return sampler

    for n, orig in originals.items():
        setattr(jax.random, n, noted(n, orig))
    ACTIVE[0] = True
    try:
        yield tracker
    finally:
        ACTIVE[0] = False
        for n, orig in originals.items():
            setattr(jax.random, n, orig)


def user_modules(*objs):
    """The modules that define `objs` (classes or functions), where samplers may have been imported by name."""
    return [sys.modules.get(getattr(o, "__module__", ""), None) for o in objs]
