"""torch.utils.data without torch: Dataset, TensorDataset, Subset, random_split and a single-process DataLoader
that yields jax arrays.

Batches are the same as torch's for the same dataset and order: `shuffle=False` gives torch's batches exactly;
`shuffle=True` draws its permutation from numpy (seeded by `generator` when one is given), so the order differs
from torch's even for the same seed. Workers, pinning and prefetching are torch performance options: accepted,
and ignored.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np


class Dataset:
    """Base class for map-style datasets: define `__getitem__` and `__len__`."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class for iterable datasets: define `__iter__`."""

    def __iter__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    def __init__(self, *tensors):
        if any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.cumulative = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative[-1] if self.cumulative else 0

    def __getitem__(self, index):
        if index < 0:
            index += len(self)
        i = int(np.searchsorted(self.cumulative, index, side="right"))
        start = self.cumulative[i - 1] if i else 0
        return self.datasets[i][index - start]


def _rng(generator):
    seed = getattr(generator, "initial_seed", None)
    seed = seed() if callable(seed) else seed
    return np.random.default_rng(seed)


def random_split(dataset, lengths, generator=None):
    """torch's random_split: fractions or lengths; the permutation comes from numpy (differs from torch's)."""
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
    else:
        sizes = list(lengths)
    if sum(sizes) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    perm = _rng(generator).permutation(n).tolist()
    out, start = [], 0
    for size in sizes:
        out.append(Subset(dataset, perm[start:start + size]))
        start += size
    return out


def default_collate(batch):
    """Stack a list of samples the way torch's default_collate does, into jax arrays."""
    first = batch[0]
    if isinstance(first, Mapping):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(default_collate(list(items)) for items in zip(*batch)))
    if isinstance(first, Sequence) and not isinstance(first, (str, bytes)):
        return [default_collate(list(items)) for items in zip(*batch)] if isinstance(first, list) else \
            tuple(default_collate(list(items)) for items in zip(*batch))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, float):
        return jnp.asarray(np.asarray(batch, dtype=np.float32))
    return jnp.asarray(np.stack([np.asarray(b) for b in batch]))


class DataLoader:
    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn or default_collate
        self.drop_last = drop_last
        self._rng = _rng(generator)

    def _batches(self):
        if self.batch_sampler is not None:
            yield from self.batch_sampler
            return
        n = len(self.dataset)
        order = list(self.sampler) if self.sampler is not None else (
            self._rng.permutation(n).tolist() if self.shuffle else range(n))
        if self.batch_size is None:
            yield from ([i] for i in order)
            return
        batch = []
        for i in order:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            yield from self._iter_iterable()
            return
        for indices in self._batches():
            samples = [self.dataset[i] for i in indices]
            yield samples[0] if self.batch_size is None else self.collate_fn(samples)

    def _iter_iterable(self):
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
