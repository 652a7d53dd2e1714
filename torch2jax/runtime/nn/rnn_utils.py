"""torch.nn.utils.rnn: padded batches of sequences of different lengths.

torch packs such a batch (pack_padded_sequence) so that its RNN layers skip the padding. Here the PackedSequence
keeps the padded array and the lengths, and the RNN layers (recurrent.py) mask the steps past each sequence's end:
its state stops changing there (h_n is the state at its last step, the reverse direction starts at its last
element) and its outputs there are zeros, which is what torch computes and pad_packed_sequence gives back.
"""
import equinox as eqx
import jax
import jax.numpy as jnp


class PackedSequence(eqx.Module):
    """`padded`: (L, N, *) sequence-first, whatever batch_first was; `lengths`: (N,) ints."""

    padded: jax.Array
    lengths: jax.Array


def _max_length(lengths, default):
    """max(lengths) when the lengths are known numbers; inside jitted code the padded length stands for it."""
    try:
        return int(jnp.max(lengths))
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
        return default


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    # enforce_sorted does not matter: nothing is sorted (torch's h_n comes back in the batch's order too)
    padded = jnp.swapaxes(input, 0, 1) if batch_first else input
    return PackedSequence(padded, jnp.asarray(lengths))


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    padded, lengths = sequence.padded, sequence.lengths
    steps = jnp.arange(padded.shape[0])[:, None]
    valid = (steps < lengths[None, :]).reshape(steps.shape[0], -1, *([1] * (padded.ndim - 2)))
    out = jnp.where(valid, padded, jnp.asarray(padding_value, padded.dtype))
    length = total_length if total_length is not None else _max_length(lengths, padded.shape[0])
    if length < out.shape[0]:
        out = out[:length]
    elif length > out.shape[0]:
        out = jnp.pad(out, [(0, length - out.shape[0])] + [(0, 0)] * (out.ndim - 1),
                      constant_values=padding_value)
    return (jnp.swapaxes(out, 0, 1) if batch_first else out), lengths


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    longest = max(s.shape[0] for s in sequences)
    pads = [[(0, longest - s.shape[0]) if padding_side == "right" else (longest - s.shape[0], 0)]
            + [(0, 0)] * (s.ndim - 1) for s in sequences]
    out = jnp.stack([jnp.pad(s, p, constant_values=padding_value) for s, p in zip(sequences, pads)], axis=1)
    return jnp.swapaxes(out, 0, 1) if batch_first else out
