"""Tensor operations whose torch semantics jax.numpy does not have directly.

Each takes torch's arguments (dim, keepdim, ...) and returns what torch returns (a (values, indices) pair for
max/min/sort/topk along a dim), so a translated call keeps its meaning without rewriting its call site. Pure
jax.numpy: these trace under jit and differentiate like torch's (a max along a dim sends its gradient to the index
it returns, a norm has gradient 0 at 0), except where a docstring says the shape depends on the values.
"""
from __future__ import annotations

import builtins
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ValuesIndices", "max", "min", "median", "kthvalue", "sort", "topk", "split", "chunk", "squeeze", "expand",
    "flatten", "unflatten", "gather", "scatter", "scatter_add", "index_add", "index_copy", "index_fill", "narrow",
    "norm", "vector_norm", "cdist", "div", "to", "device", "type_as_string", "unfold", "cartesian_prod",
    "hann_window", "nonzero", "std_mean", "var_mean", "movedim", "tensor_type", "assert_close", "diag_embed",
    "cummax", "cummin", "std", "var", "clamp", "drop_leading_ones", "masked_set",
]


class ValuesIndices(NamedTuple):
    values: jax.Array
    indices: jax.Array


def _axis(dim, ndim):
    return dim % ndim if ndim else 0


def _dims(dim):
    """torch's dim argument (int, list or tuple) as jnp's axis."""
    return tuple(dim) if isinstance(dim, list) else dim


def _pick(x, indices, dim, keepdim):
    """x's values at `indices` (keepdim-shaped along dim): the gradient goes to those entries only, as in torch."""
    idx = indices if keepdim else jnp.expand_dims(indices, dim)
    values = jnp.take_along_axis(x, idx, axis=dim)
    return values if keepdim else jnp.squeeze(values, dim)


def _reduce_with_index(x, dim, keepdim, arg):
    x = jnp.asarray(x)
    if x.ndim == 0:
        return ValuesIndices(x, jnp.zeros((), jnp.int32))
    indices = arg(x, axis=dim, keepdims=keepdim)
    return ValuesIndices(_pick(x, indices, dim, keepdim), indices)


def max(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """torch.max: the maximum; along `dim`, (values, indices) with the first index of the maximum; with a tensor
    second argument, the elementwise maximum."""
    if dim is None:
        return jnp.max(input)
    if not isinstance(dim, int):
        return jnp.maximum(input, dim)
    if _numpy_receiver(input):
        return jnp.max(input, axis=dim, keepdims=keepdim)  # numpy's a.max(axis): the values
    return _reduce_with_index(input, dim, keepdim, jnp.argmax)


def min(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """torch.min: the minimum; along `dim`, (values, indices) with the first index of the minimum; with a tensor
    second argument, the elementwise minimum."""
    if dim is None:
        return jnp.min(input)
    if not isinstance(dim, int):
        return jnp.minimum(input, dim)
    if _numpy_receiver(input):
        return jnp.min(input, axis=dim, keepdims=keepdim)  # numpy's a.min(axis): the values
    return _reduce_with_index(input, dim, keepdim, jnp.argmin)


def sort(input, dim=-1, descending=False, stable=False):
    """torch.sort: (values, indices). Stable (torch only promises that with stable=True; any order of equal
    values is a valid torch result)."""
    input = jnp.asarray(input)
    if input.ndim == 0:
        return ValuesIndices(input, jnp.zeros((), jnp.int32))
    indices = jnp.argsort(input, axis=dim, stable=True, descending=descending)
    return ValuesIndices(jnp.take_along_axis(input, indices, axis=dim), indices)


def median(input, dim=None, keepdim=False):
    """torch.median: the lower of the two middle values for an even count (jnp.median averages them); along
    `dim`, (values, indices)."""
    input = jnp.asarray(input)
    if dim is None:
        flat = jnp.sort(jnp.ravel(input))
        return flat[(flat.size - 1) // 2]
    return kthvalue(input, (input.shape[dim] + 1) // 2, dim, keepdim)


def kthvalue(input, k, dim=-1, keepdim=False):
    """torch.kthvalue: the k-th smallest value (k from 1) along dim, and its index."""
    input = jnp.asarray(input)
    order = jnp.argsort(input, axis=dim, stable=True)
    indices = jax.lax.index_in_dim(order, k - 1, axis=_axis(dim, input.ndim), keepdims=True)
    values = jnp.take_along_axis(input, indices, axis=dim)
    if not keepdim:
        values, indices = jnp.squeeze(values, dim), jnp.squeeze(indices, dim)
    return ValuesIndices(values, indices)


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - torch's name
    """torch.topk: the k largest (or smallest) values along any dim, and their indices, largest first (torch with
    sorted=False leaves the order unspecified, so this order is one of torch's)."""
    input = jnp.asarray(input)
    moved = jnp.moveaxis(input, dim, -1)
    _, indices = jax.lax.top_k(moved if largest else -moved, k)
    values = jnp.take_along_axis(moved, indices, axis=-1)
    return ValuesIndices(jnp.moveaxis(values, -1, dim), jnp.moveaxis(indices, -1, dim))


def _cumulative_arg(input, dim, better):
    input = jnp.asarray(input)
    axis = _axis(dim, input.ndim)
    running = jax.lax.cummax(input, axis) if better is jnp.greater_equal else jax.lax.cummin(input, axis)
    positions = jax.lax.broadcasted_iota(jnp.int32, input.shape, axis)
    # torch's index is the last position that reached the running extreme
    indices = jax.lax.cummax(jnp.where(better(input, running), positions, 0), axis)
    return ValuesIndices(jnp.take_along_axis(input, indices, axis=axis), indices)


def cummax(input, dim):
    """torch.cummax: the running maximum along dim and the index it came from."""
    return _cumulative_arg(input, dim, jnp.greater_equal)


def cummin(input, dim):
    """torch.cummin: the running minimum along dim and the index it came from."""
    return _cumulative_arg(input, dim, jnp.less_equal)


def split(tensor, split_size_or_sections, dim=0):
    """torch.split: pieces of split_size along dim (the last one smaller if it does not divide), or pieces of the
    listed sizes. jnp.split takes a count or split *indices* instead."""
    tensor = jnp.asarray(tensor)
    n = tensor.shape[dim]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = list(split_size_or_sections)
    starts = [0]
    for s in sizes[:-1]:
        starts.append(starts[-1] + s)
    axis = _axis(dim, tensor.ndim)
    return tuple(jax.lax.slice_in_dim(tensor, a, a + s, axis=axis) for a, s in zip(starts, sizes))


def chunk(input, chunks, dim=0):
    """torch.chunk: pieces of ceil(n / chunks) along dim; the last one is smaller, and there may be fewer than
    `chunks` pieces (jnp.array_split makes exactly `chunks`, of sizes differing by one)."""
    n = jnp.shape(input)[dim]
    size = -(-n // chunks) if n else 1
    return split(input, builtins.max(size, 1), dim)


def squeeze(input, dim=None):
    """torch.squeeze: without dim, every size-1 dim; with dim (an int or a tuple), those of them that have size 1,
    the others are left as they are (jnp.squeeze raises for them)."""
    input = jnp.asarray(input)
    if dim is None:
        return jnp.squeeze(input)
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = tuple(d % input.ndim for d in dims if input.ndim and input.shape[d] == 1)
    return jnp.squeeze(input, axes) if axes else input


def expand(input, *sizes):
    """Tensor.expand: broadcast to `sizes`, where -1 keeps that dim's size."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    input = jnp.asarray(input)
    lead = len(sizes) - input.ndim
    shape = tuple(input.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return jnp.broadcast_to(input, shape)


def flatten(input, start_dim=0, end_dim=-1):
    """torch.flatten: merge dims start_dim..end_dim (inclusive); a 0-d tensor becomes 1-d."""
    input = jnp.asarray(input)
    if input.ndim == 0:
        return jnp.reshape(input, (1,))
    start, end = start_dim % input.ndim, end_dim % input.ndim
    return jnp.reshape(input, input.shape[:start] + (-1,) + input.shape[end + 1:])


def unflatten(input, dim, sizes):
    """torch.unflatten: split dim into `sizes` (one of them may be -1)."""
    input = jnp.asarray(input)
    d = dim % input.ndim
    return jnp.reshape(input, input.shape[:d] + tuple(sizes) + input.shape[d + 1:])


def movedim(input, source, destination):
    """torch.movedim / moveaxis (int or sequence dims)."""
    return jnp.moveaxis(input, _dims(source), _dims(destination))


def _index_grid(index, dim):
    """The full index tuple of torch's gather/scatter: `index` along dim, the position itself along the others."""
    index = jnp.asarray(index)
    grid = list(jnp.indices(index.shape, sparse=True))
    grid[dim % index.ndim] = index
    return tuple(grid)


def gather(input, dim, index, *, sparse_grad=False):
    """torch.gather: out[i][j] = input[i][index[i][j]] (for dim=1). Index may be smaller than input in the other
    dims (take_along_axis would need them equal or broadcastable)."""
    input = jnp.asarray(input)
    index = jnp.asarray(index)
    if input.ndim == 0:
        return input
    return input[_index_grid(index, dim)]


def scatter(input, dim, index, src=None, value=None, *, reduce=None):
    """torch.scatter (out of place): input with input[index[i][j]][j] = src[i][j] (dim=0); src may be a scalar
    (`value`). reduce='add' / 'multiply' combine instead. With repeated indices torch leaves which write wins
    unspecified; so does XLA."""
    input = jnp.asarray(input)
    index = jnp.asarray(index)
    if src is None:
        src = value
    if jnp.ndim(src) > 0:
        src = jnp.asarray(src)[tuple(slice(0, n) for n in index.shape)]
    at = input.at[_index_grid(index, dim)]
    if reduce is None:
        return at.set(src)
    if reduce == "add":
        return at.add(src)
    if reduce == "multiply":
        return at.multiply(src)
    raise ValueError(f"scatter: reduce must be 'add' or 'multiply', not {reduce!r}")


def scatter_add(input, dim, index, src):
    """torch.scatter_add (out of place): input with src added at the positions index gives along dim."""
    return scatter(input, dim, index, src, reduce="add")


def _along(input, dim, index):
    return (slice(None),) * (dim % jnp.ndim(input)) + (index,)


def index_add(input, dim, index, source, *, alpha=1):
    """torch.index_add (out of place): input with alpha * source added at `index` along dim."""
    source = jnp.asarray(source)
    return jnp.asarray(input).at[_along(input, dim, index)].add(source if alpha == 1 else alpha * source)


def index_copy(input, dim, index, source):
    """torch.index_copy (out of place): input with source written at `index` along dim."""
    return jnp.asarray(input).at[_along(input, dim, index)].set(source)


def index_fill(input, dim, index, value):
    """torch.index_fill (out of place): input with `value` written at `index` along dim."""
    return jnp.asarray(input).at[_along(input, dim, index)].set(value)


def drop_leading_ones(value, ndim):
    """`value` without the leading size-1 dims beyond `ndim`: what torch's item assignment does before it
    broadcasts (`x[t] = p.multinomial(1)` puts a shape-(1,) result in a scalar slot)."""
    value = jnp.asarray(value)
    extra = 0
    while value.ndim - extra > ndim and value.shape[extra] == 1:
        extra += 1
    return value.reshape(value.shape[extra:]) if extra else value


def narrow(input, dim, start, length):
    """torch.narrow: `length` entries from `start` (negative counts from the end) along dim."""
    input = jnp.asarray(input)
    axis = _axis(dim, input.ndim)
    if isinstance(start, int):
        start = start % input.shape[axis] if start < 0 else start
        return jax.lax.slice_in_dim(input, start, start + length, axis=axis)
    return jax.lax.dynamic_slice_in_dim(input, start, length, axis=axis)


def clamp(input, min=None, max=None):  # noqa: A002 - torch's names
    """torch.clamp / clip: like jnp.clip, but at a bound the gradient goes to input, as in torch (jnp.clip splits
    it half and half with the bound), so clamp(x, 0, 1) of images with exact 0s and 1s trains the same."""
    out = jnp.asarray(input)
    if min is not None:
        out = jnp.where(out < min, min, out)
    if max is not None:
        out = jnp.where(out > max, max, out)
    return out


def _abs(x):
    # |x| with torch's gradient sign(x), 0 at 0 (jnp.abs has gradient 1 there)
    return x * jnp.sign(jax.lax.stop_gradient(x))


def _safe_root(s, p):
    """s ** (1/p) with gradient 0 where s == 0 (torch masks it) instead of inf * 0."""
    zero = s == 0
    root = jnp.where(zero, 1, s) ** (1.0 / p)
    return jnp.where(zero, 0, root)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):  # noqa: A002 - torch's name
    """torch.linalg.vector_norm: the ord-norm of x flattened over dim (all dims by default), with torch's
    gradients (0 at a zero vector)."""
    x = jnp.asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    axis = _dims(dim)
    if ord == math.inf:
        return jnp.max(_abs(x), axis=axis, keepdims=keepdim)
    if ord == -math.inf:
        return jnp.min(_abs(x), axis=axis, keepdims=keepdim)
    if ord == 0:
        return jnp.sum(x != 0, axis=axis, keepdims=keepdim).astype(x.dtype)
    if ord == 1:
        return jnp.sum(_abs(x), axis=axis, keepdims=keepdim)
    if ord == 2:
        return _safe_root(jnp.sum(x * x, axis=axis, keepdims=keepdim), 2)
    return _safe_root(jnp.sum(_abs(x) ** ord, axis=axis, keepdims=keepdim), ord)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """torch.norm / Tensor.norm: with a number p (or 'fro', which is 2), the vector p-norm over dim (all dims by
    default: jnp.linalg.norm(x, 2) of a matrix would be the spectral norm); 'nuc' is the nuclear norm."""
    if p == "nuc":
        input = jnp.asarray(input) if dtype is None else jnp.asarray(input).astype(dtype)
        return jnp.linalg.norm(input, "nuc", axis=(-2, -1) if dim is None else tuple(dim), keepdims=keepdim)
    return vector_norm(input, 2 if p in ("fro", None) else p, dim, keepdim, dtype=dtype)


def cdist(x1, x2, p=2.0, compute_mode=None):
    """torch.cdist: the p-norm distance between each row of x1 and each row of x2 (batched), gradient 0 where
    two rows coincide."""
    diff = jnp.asarray(x1)[..., :, None, :] - jnp.asarray(x2)[..., None, :, :]
    return vector_norm(diff, p, -1)


def div(input, other, *, rounding_mode=None):
    """torch.div with rounding_mode: None is true division (ints give floats), 'trunc' rounds toward zero (and keeps
    an integer dtype), 'floor' rounds down."""
    if rounding_mode is None:
        return jnp.true_divide(input, other)
    if rounding_mode == "floor":
        return jnp.floor_divide(input, other)
    if rounding_mode == "trunc":
        dtype = jnp.result_type(input, other)
        if jnp.issubdtype(dtype, jnp.integer):
            return jax.lax.div(jnp.asarray(input, dtype), jnp.asarray(other, dtype))
        return jnp.trunc(jnp.true_divide(input, other))
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', not {rounding_mode!r}")


class device:  # noqa: N801 - torch's name
    """torch.device stand-in: JAX places arrays itself, so a device only keeps code that builds, prints or compares
    one running (`device.type == "cuda"`)."""

    def __init__(self, type="cpu", index=None):  # noqa: A002 - torch's name
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, int):
            type, index = "cuda", type
        elif ":" in type:
            type, idx = type.split(":", 1)
            index = int(idx)
        self.type = type
        self.index = index

    def __repr__(self):
        return f"device(type={self.type!r}" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


def _is_dtype(value) -> bool:
    if isinstance(value, (str, device)):
        return False
    try:
        jnp.dtype(value)
    except TypeError:
        return False
    return True


def to(input, *args, dtype=None, **kwargs):
    """Tensor.to(...) when its argument's kind is only known at run time: a dtype converts, a tensor converts to
    that tensor's dtype, a device (or device string, or int) is ignored: JAX places arrays itself."""
    for a in args:
        if isinstance(a, jax.Array):
            dtype = a.dtype
        elif _is_dtype(a):
            dtype = a
    input = jnp.asarray(input)
    return input if dtype is None else input.astype(dtype)


_TENSOR_TYPES = {
    "FloatTensor": jnp.float32, "DoubleTensor": jnp.float64, "HalfTensor": jnp.float16,
    "BFloat16Tensor": jnp.bfloat16, "LongTensor": jnp.int64, "IntTensor": jnp.int32, "ShortTensor": jnp.int16,
    "CharTensor": jnp.int8, "ByteTensor": jnp.uint8, "BoolTensor": jnp.bool_,
}


def tensor_type(name):
    """The dtype a torch tensor-type name stands for: 'torch.cuda.FloatTensor' -> float32."""
    return _TENSOR_TYPES[name.rsplit(".", 1)[-1]]


def type_as_string(input):
    """Tensor.type() without arguments: torch's type name of the tensor ('torch.FloatTensor')."""
    dtype = jnp.dtype(jnp.asarray(input).dtype)
    for name, d in _TENSOR_TYPES.items():
        if jnp.dtype(d) == dtype:
            return f"torch.{name}"
    return f"torch.{dtype.name}"


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """torch.diag_embed: the last dim of input on the offset diagonal of new (dim1, dim2) planes."""
    input = jnp.asarray(input)
    n = input.shape[-1] + builtins.abs(offset)
    rows = jnp.arange(input.shape[-1]) + builtins.max(-offset, 0)
    out = jnp.zeros(input.shape[:-1] + (n, n), input.dtype)
    out = out.at[..., rows, rows + offset].set(input)
    ndim = input.ndim + 1
    d1, d2 = dim1 % ndim, dim2 % ndim
    if (d1, d2) == (ndim - 2, ndim - 1):
        return out
    return jnp.moveaxis(out, (-2, -1), (d1, d2))


def unfold(input, dimension, size, step):
    """Tensor.unfold: every window of `size` entries, `step` apart, along `dimension`; the windows replace that
    dim and their entries go in a new last dim."""
    input = jnp.asarray(input)
    axis = _axis(dimension, input.ndim)
    count = (input.shape[axis] - size) // step + 1
    idx = jnp.arange(count)[:, None] * step + jnp.arange(size)[None, :]
    windows = jnp.take(jnp.moveaxis(input, axis, -1), idx, axis=-1)  # [..., count, size]
    return jnp.moveaxis(windows, -2, axis)


def cartesian_prod(*tensors):
    """torch.cartesian_prod: every combination of the 1-d inputs' entries, one per row (one input: itself)."""
    if len(tensors) == 1:
        return jnp.asarray(tensors[0])
    grids = jnp.meshgrid(*tensors, indexing="ij")
    return jnp.stack([g.reshape(-1) for g in grids], axis=-1)


def hann_window(window_length, periodic=True, *, dtype=None):
    """torch.hann_window: periodic by default (jnp.hanning is the symmetric window, periodic=False)."""
    if window_length == 1:
        return jnp.ones(1, dtype=dtype)
    n = jnp.arange(window_length, dtype=dtype or jnp.result_type(float))
    denom = window_length if periodic else window_length - 1
    return 0.5 - 0.5 * jnp.cos(2 * jnp.pi * n / denom)


def nonzero(input, *, as_tuple=False):
    """torch.nonzero: the indices of nonzero entries, one row per entry (as_tuple: one array per dim). The count
    depends on the values: not traceable under jit."""
    return jnp.nonzero(input) if as_tuple else jnp.argwhere(input)


def _ddof(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None else int(unbiased)


def _numpy_receiver(input) -> bool:
    """A numpy array where torch's method was translated: the source called numpy's own method (`a.std()` on an
    array a numpy function made), whose defaults differ (ddof 0; max(axis) gives the values only). A tensor of the
    translation is a JAX array, never a numpy one."""
    return isinstance(input, np.ndarray)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """torch.std: n - 1 in the denominator unless told otherwise (jnp.std: n), and gradient 0 where the standard
    deviation is 0 (a constant input; jnp.std's gradient is nan there). numpy's `a.std()`: n."""
    ddof = 0 if _numpy_receiver(input) and unbiased is None and correction is None else _ddof(unbiased, correction)
    return _safe_root(jnp.var(input, axis=_dims(dim), ddof=ddof, keepdims=keepdim), 2)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """torch.var: n - 1 in the denominator unless told otherwise (jnp.var: n). numpy's `a.var()`: n."""
    ddof = 0 if _numpy_receiver(input) and unbiased is None and correction is None else _ddof(unbiased, correction)
    return jnp.var(input, axis=_dims(dim), ddof=ddof, keepdims=keepdim)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """torch.var_mean: (variance, mean); the variance divides by n - 1 unless told otherwise."""
    axis = _dims(dim)
    ddof = _ddof(unbiased, correction)
    return jnp.var(input, axis=axis, ddof=ddof, keepdims=keepdim), jnp.mean(input, axis=axis, keepdims=keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """torch.std_mean: (standard deviation, mean); n - 1 in the denominator unless told otherwise."""
    return std(input, dim, unbiased, keepdim, correction=correction), jnp.mean(input, axis=_dims(dim), keepdims=keepdim)


def assert_close(actual, expected, *, rtol=None, atol=None, equal_nan=False, check_dtype=True, msg=None, **kwargs):
    """torch.testing.assert_close on JAX arrays (or nested sequences of them): torch's default tolerances by dtype
    (float32: rtol 1.3e-6, atol 1e-5; float64: 1e-7, 1e-7; float16/bfloat16 looser; exact for integers), the same
    shape, and the same dtype unless check_dtype=False."""
    import numpy as np

    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), msg or f"lengths differ: {len(actual)} vs {len(expected)}"
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan, check_dtype=check_dtype, msg=msg)
        return
    a, e = np.asarray(actual), np.asarray(expected)
    if check_dtype and not (np.isscalar(actual) or np.isscalar(expected)):
        assert a.dtype == e.dtype, msg or f"dtypes differ: {a.dtype} vs {e.dtype}"
    assert a.shape == e.shape, msg or f"shapes differ: {a.shape} vs {e.shape}"
    defaults = {np.dtype(np.float16): (1e-3, 1e-5), np.dtype(jnp.bfloat16): (1.6e-2, 1e-5),
                np.dtype(np.float32): (1.3e-6, 1e-5), np.dtype(np.float64): (1e-7, 1e-7),
                np.dtype(np.complex64): (1.3e-6, 1e-5), np.dtype(np.complex128): (1e-7, 1e-7)}
    d_rtol, d_atol = defaults.get(a.dtype, (0.0, 0.0))
    np.testing.assert_allclose(a, e, rtol=d_rtol if rtol is None else rtol, atol=d_atol if atol is None else atol,
                               equal_nan=equal_nan, err_msg=msg or "")


def masked_set(input, mask, value):
    """torch's `input[mask] = value` (a boolean mask over input's leading dimensions): `value` broadcasts against
    the selected elements, of shape (number selected, *the dimensions after the mask's). One value for every
    selected element (value of shape (n, ...)) is written in the mask's order; n is value's own static size, so this
    traces under jit (jnp.nonzero with size=n)."""
    input = jnp.asarray(input)
    mask = jnp.asarray(mask).astype(bool)
    value = jnp.asarray(value).astype(input.dtype)
    rest = input.shape[mask.ndim:]
    if value.ndim > len(rest) and value.shape[0] == 1:
        value = value[0]  # one row for all: the same as no leading dimension
    if value.ndim <= len(rest):  # the same value for every selected element
        return jnp.where(mask.reshape(mask.shape + (1,) * len(rest)), value, input)
    return input.at[jnp.nonzero(mask, size=value.shape[0])].set(value)
