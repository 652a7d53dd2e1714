"""torch.nn.RNN, LSTM and GRU (and their one-step cells RNNCell, LSTMCell, GRUCell) as pure-JAX Equinox layers:
torch's parameter names, shapes, gate order and init.

Each layer's weights are attributes named as in torch's state_dict (`weight_ih_l0`, `bias_hh_l1_reverse`, ...), so
a model's pytree paths spell torch's keys. How many there are depends on num_layers, bidirectional and bias, and
an Equinox module's fields are fixed per class, so each configuration gets a generated subclass (cached, same
name) that declares exactly those fields; `isinstance(lstm, LSTM)` still holds. The cells have one fixed set of
fields (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`; the biases None when bias=False) and share the layers' step
functions, so a cell unrolled by hand computes what the layer's scan computes.
"""
import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from torch2jax.runtime import init
from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import param_dtype, split_key
from torch2jax.runtime.nn.rnn_utils import PackedSequence

_weight_classes = {}


def _class_with_fields(cls, names):
    """A subclass of `cls` that adds one array field per name (cached, so each configuration has one pytree type)."""
    cls = cls.__dict__.get("_weights_base", cls)
    try:
        return _weight_classes[cls, names]
    except KeyError:
        namespace = {
            "__annotations__": dict.fromkeys(names, jax.Array),
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
            "_weights_base": cls,
        }
        sub = _weight_classes[cls, names] = type(cls)(cls.__name__, (cls,), namespace)
        return sub


def _rebuild(base, names, state):
    self = object.__new__(_class_with_fields(base, names))
    self.__dict__.update(state)
    return self


def _rnn_step(nonlinearity, state, x_proj, h_proj):
    """RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh); state is (h,)."""
    act = jnp.tanh if nonlinearity == "tanh" else jax.nn.relu
    return (act(x_proj + h_proj),)


def _lstm_step(state, x_proj, h_proj):
    """LSTM with torch's gate order (input, forget, cell, output); state is (h, c)."""
    _, c = state
    i, f, g, o = jnp.split(x_proj + h_proj, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def _gru_step(state, x_proj, h_proj):
    """GRU with torch's gate order (reset, update, new) and torch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""
    (h,) = state
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h_proj, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    return ((1.0 - z) * n + z * h,)


class _RNNBase(eqx.Module):
    """The shared machinery of RNN, LSTM and GRU: parameters, direction/layer loop, scan over time."""

    mode: str = eqx.field(static=True)
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    num_layers: int = eqx.field(static=True)
    bias: bool = eqx.field(static=True)
    batch_first: bool = eqx.field(static=True)
    dropout: float = eqx.field(static=True)
    bidirectional: bool = eqx.field(static=True)
    inference: bool

    def _setup(self, mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, key):
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        names = _parameter_names(num_layers, bidirectional, bias)
        # Swap in the subclass that declares this configuration's weight fields before assigning them.
        object.__setattr__(self, "__class__", _class_with_fields(type(self), tuple(n for n, _ in names)))
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.inference = False

        gate_size = _GATES[mode] * hidden_size
        num_directions = 2 if bidirectional else 1
        shapes = {
            "weight_ih": lambda layer: (gate_size, input_size if layer == 0 else hidden_size * num_directions),
            "weight_hh": lambda layer: (gate_size, hidden_size),
            "bias_ih": lambda layer: (gate_size,),
            "bias_hh": lambda layer: (gate_size,),
        }
        dtype = param_dtype(dtype)
        bound = 1.0 / math.sqrt(hidden_size)
        for (name, (kind, layer)), k in zip(names, split_key(key, len(names), type(self).__name__)):
            setattr(self, name, init.uniform(k, shapes[kind](layer), -bound, bound, dtype))

    def __reduce__(self):
        # pickle finds classes by name, which would give the base class: rebuild the configured subclass instead.
        cls = type(self)
        return _rebuild, (cls._weights_base, tuple(cls.__dict__["__annotations__"]), dict(self.__dict__))

    def flatten_parameters(self):
        """torch compacts cuDNN weights here; JAX has nothing to compact."""

    @abc.abstractmethod
    def _cell(self, state, x_proj, h_proj):
        """One time step: the new state tuple from the old one and the two projections."""

    def _layer(self, x, state, layer, lengths=None):
        """One layer, both directions in one scan, over the sequence x (L, N, in); state: tuple of (D, N, H).

        Direction d's weights are stacked along a leading axis; the reverse direction reads time backwards. With
        `lengths` (N,) (a PackedSequence), sequence n has lengths[n] steps: its state stops changing after them and
        its outputs there are zeros, and the reverse direction starts at its last step, not at the padding.
        """
        suffixes = [f"_l{layer}", f"_l{layer}_reverse"][: 2 if self.bidirectional else 1]
        stack = lambda name: jnp.stack([getattr(self, name + s) for s in suffixes])
        w_ih, w_hh = stack("weight_ih"), stack("weight_hh")
        b_ih = stack("bias_ih")[:, None] if self.bias else 0.0
        b_hh = stack("bias_hh")[:, None] if self.bias else 0.0
        if lengths is None:
            valid, backwards = None, x[::-1]
        else:
            t = jnp.arange(x.shape[0])[:, None]
            valid = t < lengths[None, :]  # (L, N)
            order = jnp.where(valid, lengths[None, :] - 1 - t, t)  # each sequence's steps reversed in place
            backwards = jnp.take_along_axis(x, order[:, :, None], axis=0)
        xs = jnp.stack([x, backwards][: len(suffixes)], axis=1)  # (L, D, N, in)
        # The input projection does not depend on the recurrence: one matmul for all time steps.
        x_proj = jnp.einsum("ldni,dgi->ldng", xs, w_ih) + b_ih

        def step(state, inputs):
            x_t, valid_t = inputs
            new = self._cell(state, x_t, jnp.einsum("dnh,dgh->dng", state[0], w_hh) + b_hh)
            if valid_t is None:
                return new, new[0]
            keep = valid_t[None, :, None]
            new = tuple(jnp.where(keep, n, old) for n, old in zip(new, state))
            return new, jnp.where(keep, new[0], 0.0)

        final, out = jax.lax.scan(step, state, (x_proj, valid))  # out: (L, D, N, H)
        if len(suffixes) == 1:
            return final, out[:, 0]
        back = out[::-1, 1] if lengths is None else jnp.take_along_axis(out[:, 1], order[:, :, None], axis=0)
        return final, jnp.concatenate([out[:, 0], back], axis=-1)

    def _forward(self, input, hx, key):
        packed = isinstance(input, PackedSequence)  # sequence-first inside, whatever batch_first is
        lengths = input.lengths if packed else None
        if packed:
            input = input.padded
        if input.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__} expects 2-D (unbatched) or 3-D input, got {input.ndim}-D")
        batched = input.ndim == 3
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.shape[-1]}"
            )
        # Work sequence-first: (L, N, features).
        x = input if not batched or not self.batch_first or packed else jnp.swapaxes(input, 0, 1)
        if not batched:
            x = x[:, None]
        num_directions = 2 if self.bidirectional else 1
        state_shape = (self.num_layers * num_directions, x.shape[1], self.hidden_size)
        n_states = 2 if self.mode == "LSTM" else 1
        if hx is None:
            hx = (jnp.zeros(state_shape, x.dtype),) * n_states
        else:
            hx = tuple(hx) if n_states == 2 else (hx,)
            if not batched:
                if any(h.ndim != 2 for h in hx):
                    raise ValueError("for unbatched 2-D input, hx should also be 2-D")
                hx = tuple(h[:, None] for h in hx)
            if any(h.shape != state_shape for h in hx):
                raise ValueError(f"expected hidden size {state_shape}, got {[h.shape for h in hx]}")

        use_dropout = not self.inference and self.dropout > 0.0 and self.num_layers > 1
        # Without a key, F.dropout raises the error that says how to pass one.
        keys = [None] * self.num_layers
        if use_dropout and key is not None:
            keys = jax.random.split(key, self.num_layers - 1)

        finals = []
        for layer in range(self.num_layers):
            rows = slice(layer * num_directions, (layer + 1) * num_directions)
            final, x = self._layer(x, tuple(h[rows] for h in hx), layer, lengths)
            finals.append(final)
            # torch drops out every layer's output except the last one's.
            if use_dropout and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, key=keys[layer])

        output = x if batched else x[:, 0]
        if packed:
            output = PackedSequence(output, lengths)
        elif batched and self.batch_first:
            output = jnp.swapaxes(output, 0, 1)
        # h_n rows in torch's order: layer 0 forward, layer 0 reverse, layer 1 forward, ...
        h_n = tuple(jnp.concatenate(s) for s in zip(*finals))
        if not batched:
            h_n = tuple(h[:, 0] for h in h_n)
        return output, h_n


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _parameter_names(num_layers, bidirectional, bias):
    """torch's parameter names in state_dict order, each with (kind, layer)."""
    kinds = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else [])
    suffixes = ["", "_reverse"] if bidirectional else [""]
    return tuple(
        (f"{kind}_l{layer}{suffix}", (kind, layer))
        for layer in range(num_layers)
        for suffix in suffixes
        for kind in kinds
    )


class RNN(_RNNBase):
    """torch.nn.RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu), stacked and optionally bidirectional.

    `RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, device=None, dtype=None, *, key)`; call `rnn(input, hx=None, *, key=None)` ->
    `(output, h_n)` with torch's shapes. The key is needed only in training mode with dropout > 0 and
    num_layers > 1 (dropout between layers).
    """

    nonlinearity: str = eqx.field(static=True)

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        nonlinearity="tanh",
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
        *,
        key=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        self._setup(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, key)

    def _cell(self, state, x_proj, h_proj):
        return _rnn_step(self.nonlinearity, state, x_proj, h_proj)

    def __call__(self, input, hx=None, *, key=None):
        output, (h_n,) = self._forward(input, hx, key)
        return output, h_n


class LSTM(_RNNBase):
    """torch.nn.LSTM with torch's gate order (input, forget, cell, output) in `weight_ih_l{k}` (4H, in).

    `LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False,
    proj_size=0, device=None, dtype=None, *, key)` (proj_size > 0 is not supported); call
    `lstm(input, hx=None, *, key=None)` with hx = (h_0, c_0) -> `(output, (h_n, c_n))`.
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        proj_size=0,
        device=None,
        dtype=None,
        *,
        key=None,
    ):
        if proj_size:
            raise NotImplementedError("LSTM(proj_size=...) is not supported")
        self._setup("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, key)

    def _cell(self, state, x_proj, h_proj):
        return _lstm_step(state, x_proj, h_proj)

    def __call__(self, input, hx=None, *, key=None):
        output, (h_n, c_n) = self._forward(input, hx, key)
        return output, (h_n, c_n)


class GRU(_RNNBase):
    """torch.nn.GRU with torch's gate order (reset, update, new) and torch's new gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).

    `GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False,
    device=None, dtype=None, *, key)`; call `gru(input, hx=None, *, key=None)` -> `(output, h_n)`.
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
        *,
        key=None,
    ):
        self._setup("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype, key)

    def _cell(self, state, x_proj, h_proj):
        return _gru_step(state, x_proj, h_proj)

    def __call__(self, input, hx=None, *, key=None):
        output, (h_n,) = self._forward(input, hx, key)
        return output, h_n


class _RNNCellBase(eqx.Module):
    """The shared machinery of RNNCell, LSTMCell and GRUCell: torch's parameters, input checks and one step.

    Unlike the layers, a cell has the same fields in every configuration: without bias, bias_ih and bias_hh are
    None, which state_dict conversion skips, as it skips Linear's missing bias.
    """

    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    bias: bool = eqx.field(static=True)
    weight_ih: jax.Array
    weight_hh: jax.Array
    bias_ih: jax.Array | None
    bias_hh: jax.Array | None

    def _setup(self, gates, input_size, hidden_size, bias, dtype, key):
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        shapes = [(gates * hidden_size, input_size), (gates * hidden_size, hidden_size)]
        if bias:
            shapes += [(gates * hidden_size,)] * 2
        dtype = param_dtype(dtype)
        # torch: every parameter ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
        bound = 1.0 / math.sqrt(hidden_size)
        params = [init.uniform(k, shape, -bound, bound, dtype)
                  for shape, k in zip(shapes, split_key(key, len(shapes), type(self).__name__))]
        self.weight_ih, self.weight_hh = params[:2]
        self.bias_ih, self.bias_hh = params[2:] if bias else (None, None)

    @abc.abstractmethod
    def _cell(self, state, x_proj, h_proj):
        """One time step: the new state tuple from the old one and the two projections."""

    def _forward(self, input, hx, n_states):
        """input (N, in) or unbatched (in,); hx: None, one state or a tuple of n_states, each (N, H) or (H,)."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"input has inconsistent input_size: got {input.shape[-1]} expected {self.input_size}"
            )
        batched = input.ndim == 2
        x = input if batched else input[None]
        state_shape = (x.shape[0], self.hidden_size)
        if hx is None:
            # torch's default state: zeros of the input's dtype.
            hx = (jnp.zeros(state_shape, x.dtype),) * n_states
        else:
            hx = tuple(hx) if n_states == 2 else (hx,)
            if any(h.ndim != input.ndim for h in hx):
                raise ValueError(f"{name}: Expected hidden to be {input.ndim}D, got {[h.ndim for h in hx]}D instead")
            if not batched:
                hx = tuple(h[None] for h in hx)
            if any(h.shape != state_shape for h in hx):
                raise ValueError(f"{name}: expected hidden size {state_shape}, got {[h.shape for h in hx]}")
        x_proj = x @ self.weight_ih.T
        h_proj = hx[0] @ self.weight_hh.T
        if self.bias:
            x_proj, h_proj = x_proj + self.bias_ih, h_proj + self.bias_hh
        state = self._cell(hx, x_proj, h_proj)
        return state if batched else tuple(s[0] for s in state)


class RNNCell(_RNNCellBase):
    """torch.nn.RNNCell: one step of RNN, h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu).

    `RNNCell(input_size, hidden_size, bias=True, nonlinearity='tanh', device=None, dtype=None, *, key)`; call
    `cell(input, hx=None)` -> h' (hx defaults to zeros).
    """

    nonlinearity: str = eqx.field(static=True)

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None, *, key=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        self._setup(1, input_size, hidden_size, bias, dtype, key)

    def _cell(self, state, x_proj, h_proj):
        return _rnn_step(self.nonlinearity, state, x_proj, h_proj)

    def __call__(self, input, hx=None, *, key=None):
        (h,) = self._forward(input, hx, 1)
        return h


class LSTMCell(_RNNCellBase):
    """torch.nn.LSTMCell: one step of LSTM, gate order (input, forget, cell, output) in `weight_ih` (4H, in).

    `LSTMCell(input_size, hidden_size, bias=True, device=None, dtype=None, *, key)`; call
    `cell(input, hx=None)` with hx = (h, c) -> `(h', c')` (hx defaults to zeros).
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, *, key=None):
        self._setup(4, input_size, hidden_size, bias, dtype, key)

    def _cell(self, state, x_proj, h_proj):
        return _lstm_step(state, x_proj, h_proj)

    def __call__(self, input, hx=None, *, key=None):
        h, c = self._forward(input, hx, 2)
        return h, c


class GRUCell(_RNNCellBase):
    """torch.nn.GRUCell: one step of GRU, gate order (reset, update, new) in `weight_ih` (3H, in).

    `GRUCell(input_size, hidden_size, bias=True, device=None, dtype=None, *, key)`; call `cell(input, hx=None)` ->
    h' (hx defaults to zeros).
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, *, key=None):
        self._setup(3, input_size, hidden_size, bias, dtype, key)

    def _cell(self, state, x_proj, h_proj):
        return _gru_step(state, x_proj, h_proj)

    def __call__(self, input, hx=None, *, key=None):
        (h,) = self._forward(input, hx, 1)
        return h
