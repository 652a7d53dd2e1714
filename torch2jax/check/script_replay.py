"""Common random numbers for scripts (stage 3): the torch run records its draws to a file, the translated run
replays them into its jax.random calls, so that a script whose losses depend on random initial weights, random
data, shuffling or dropout prints the same numbers on both sides when the translation is right.

Runs inside the two script processes (training.BOOT). Torch side, recorded in call order:

    torch.randn / randn_like, Tensor.normal_           -> "normal"   (standardised: (x - mean) / std)
    torch.rand / rand_like, Tensor.uniform_            -> "uniform"  (on [0, 1): (x - a) / (b - a))
    torch.randperm                                     -> "permutation" (RandomSampler: without the extra one it
                                                          draws after an epoch's last index)
    torch.randint                                      -> "randint"
    torch.nn.functional.dropout (re-implemented here)  -> "keep"     (u on [0, 1); kept where u >= p)

JAX side: jax.random.normal, uniform, bernoulli (kept where u >= 1 - p), randint and torch2jax.runtime.data's
shuffling permutations take the first unused recorded draw of the same kind and shape. Any other jax.random sampler
(categorical for torch.multinomial, ...), a mismatch, or draws left over make the replay invalid: the status file
says why, and a DIVERGED line in the output marks where (the checker compares only what was printed before it).
JIT is disabled in the replaying process: a compiled step would keep its first draws as constants.
"""
from __future__ import annotations

import atexit
import json

import numpy as np


DIVERGED = "<<torch2jax check: the translation's random draws diverge from torch's here>>"


# ============================================================================================ torch side
def install_recorder(path: str) -> None:
    import torch
    import torch.nn.functional as F

    draws: list[tuple[str, np.ndarray]] = []

    def save():
        np.savez(path, kinds=np.array([k for k, _ in draws], dtype=object),
                 **{f"d{i}": v for i, (_, v) in enumerate(draws)})

    atexit.register(save)

    def record(kind, value):
        draws.append((kind, np.array(value, copy=True)))  # a copy: the script may write into the tensor later

    def fn_sampler(original, kind):
        def sampler(*args, **kwargs):
            out = original(*args, **kwargs)
            record(kind, out.detach().cpu().float().numpy() if kind in ("normal", "uniform") else out.cpu().numpy())
            return out

        return sampler

    for name, kind in (("randn", "normal"), ("randn_like", "normal"), ("rand", "uniform"),
                       ("rand_like", "uniform"), ("randperm", "permutation"), ("randint", "randint")):
        setattr(torch, name, fn_sampler(getattr(torch, name), kind))

    uniform_, normal_ = torch.Tensor.uniform_, torch.Tensor.normal_

    def uniform(self, a=0.0, b=1.0, *, generator=None):
        out = uniform_(self, a, b, generator=generator)
        record("uniform", ((out.detach().cpu().double() - a) / (b - a) if b != a else out * 0).numpy())
        return out

    def normal(self, mean=0.0, std=1.0, *, generator=None):
        out = normal_(self, mean, std, generator=generator)
        record("normal", ((out.detach().cpu().double() - mean) / std if std else out * 0).numpy())
        return out

    torch.Tensor.uniform_, torch.Tensor.normal_ = uniform, normal
    original_dropout = F.dropout

    def dropout(input, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return original_dropout(input, p, training, inplace)
        u = torch.rand(input.shape, device=input.device)  # the draw is recorded by the rand wrapper... as uniform:
        draws[-1] = ("keep", draws[-1][1])  # ...so re-label it
        out = torch.where(u >= p, input / (1 - p), torch.zeros((), dtype=input.dtype, device=input.device))
        if inplace:
            with torch.no_grad():
                input.copy_(out)
            return input
        return out

    F.dropout = dropout

    from torch.utils.data import RandomSampler

    sampler_iter = RandomSampler.__iter__

    def random_sampler_iter(self):
        """torch's sampler: after the last index it draws one more (empty) permutation, which the runtime's
        DataLoader does not: stop at the last index."""
        total = self.num_samples
        for i, index in enumerate(sampler_iter(self)):
            yield index
            if i + 1 >= total:
                return

    RandomSampler.__iter__ = random_sampler_iter


# ============================================================================================ JAX side
def install_replayer(path: str, status_path: str) -> None:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_disable_jit", True)
    with np.load(path, allow_pickle=True) as f:
        kinds = list(f["kinds"])
        queue = [(k, f[f"d{i}"]) for i, k in enumerate(kinds)]
    state = {"why": "", "used": 0, "reused": "", "skipped": 0}
    seen: dict = {}

    def note_key(key, what):
        """Two draws from one key are one draw (torch's are independent), and a key drawn from must not be split
        as well. Deriving keys from one key more than once is allowed: fold_in(key, i) for distinct i gives
        independent keys (apply_in_init's per-module keys), and splitting twice the same way gives the same keys
        (the draws tell). A draw without a key raises, as JAX's own draw would outside the replay."""
        if key is None:
            raise TypeError(f"unexpected PRNG key type {type(key)}: a draw ({what}) without a key")
        try:
            data = np.asarray(jax.random.key_data(key)).tobytes() if jnp.issubdtype(
                key.dtype, jax.dtypes.prng_key) else np.asarray(key).tobytes()
        except Exception:  # noqa: BLE001  (a tracer: under vmap or scan)
            return
        if data in seen and not state["reused"] and not {seen[data], what} <= {"a split", "a fold_in"}:
            state["reused"] = f"{seen[data]} and {what} (after draw {state['used']})"
        seen.setdefault(data, what)

    def fail(why):
        if not state["why"]:
            state["why"] = why
            print(DIVERGED, flush=True)  # what the script prints after this is not comparable with torch's

    def take(kind, shape):
        if state["why"]:
            return None
        if not queue:
            fail(f"the translation draws {kind} {shape} after torch's {state['used']} draws ran out")
            return None
        # the first draw of this kind and shape torch made and the translation has not used: initialisations that
        # draw a layer's parameters in another order still get torch's values; a draw torch never made ends it
        i = next((i for i, (k, v) in enumerate(queue)
                  if k == kind and (shape is None or tuple(v.shape) == tuple(shape))), None)
        if i is None:
            k, v = queue[0]
            fail(f"draw {state['used'] + 1}: the translation draws {kind} {tuple(shape) if shape is not None else ''}"
                 f" where torch drew {k} {tuple(v.shape)}")
            return None
        state["skipped"] = max(state["skipped"], i)
        state["used"] += 1
        return queue.pop(i)[1]

    def shape_of(shape):
        return (shape,) if isinstance(shape, int) else tuple(shape)

    from torch2jax.check.replay import JAX_OTHER

    originals = {n: getattr(jax.random, n) for n in ("normal", "uniform", "bernoulli", "randint") + JAX_OTHER
                 if hasattr(jax.random, n)}

    def normal(key, shape=(), dtype=jnp.float32, *args, **kwargs):
        note_key(key, f"normal {shape_of(shape)}")
        v = take("normal", shape_of(shape))
        return originals["normal"](key, shape, dtype, *args, **kwargs) if v is None else jnp.asarray(v, dtype)

    def uniform(key, shape=(), dtype=jnp.float32, minval=0.0, maxval=1.0, *args, **kwargs):
        note_key(key, f"uniform {shape_of(shape)}")
        v = take("uniform", shape_of(shape))
        if v is None:
            return originals["uniform"](key, shape, dtype, minval, maxval, *args, **kwargs)
        return (minval + jnp.asarray(v, jnp.float32) * (maxval - minval)).astype(dtype)

    def bernoulli(key, p=0.5, shape=None, *args, **kwargs):
        want = shape_of(shape) if shape is not None else jnp.shape(p)
        note_key(key, f"bernoulli {want}")
        v = take("keep", want)
        if v is None:
            return originals["bernoulli"](key, p, shape, *args, **kwargs)
        return jnp.asarray(v) >= 1 - jnp.asarray(p)

    def randint(key, shape, minval, maxval, dtype=jnp.int32, *args, **kwargs):
        note_key(key, f"randint {shape_of(shape)}")
        v = take("randint", shape_of(shape))
        if v is not None and v.size and not (int(v.min()) >= int(minval) and int(v.max()) < int(maxval)):
            fail(f"draw {state['used']}: the translation draws integers in [{minval}, {maxval}), torch drew "
                 f"{int(v.min())}..{int(v.max())}")
            v = None
        if v is None:
            return originals["randint"](key, shape, minval, maxval, dtype, *args, **kwargs)
        return jnp.asarray(v, dtype)

    def other(name):
        def sampler(*args, **kwargs):
            fail(f"the translation draws with jax.random.{name}, which torch's draws cannot stand for")
            return originals[name](*args, **kwargs)

        return sampler

    split_original, fold_in_original = jax.random.split, jax.random.fold_in

    def split(key, *args, **kwargs):
        note_key(key, "a split")
        return split_original(key, *args, **kwargs)

    def fold_in(key, *args, **kwargs):
        note_key(key, "a fold_in")
        return fold_in_original(key, *args, **kwargs)

    jax.random.split, jax.random.fold_in = split, fold_in
    replaced = {"normal": normal, "uniform": uniform, "bernoulli": bernoulli, "randint": randint}
    for n in originals:
        setattr(jax.random, n, replaced.get(n) or other(n))

    try:  # the runtime's DataLoader and random_split shuffle with numpy: hand them torch's permutations
        import torch2jax.runtime.data as data

        rng = data._rng

        class Permutations:
            def __init__(self, inner):
                self.inner = inner

            def permutation(self, n):
                v = take("permutation", (n,) if isinstance(n, int) else None)
                return self.inner.permutation(n) if v is None else v

            def __getattr__(self, name):
                return getattr(self.inner, name)

        data._rng = lambda *a, **k: Permutations(rng(*a, **k))
    except (ImportError, AttributeError):
        pass

    def save():
        # draws torch made and the translation did not (a dropped layer, dropout left out) change what torch
        # computed: the printed numbers tell
        with open(status_path, "w") as f:
            json.dump({"ok": not state["why"], "why": state["why"], "used": state["used"],
                       "reused": state["reused"], "unused": len(queue)}, f)

    atexit.register(save)
