"""Data parallelism the JAX way: one program over a device mesh (what DistributedDataParallel scripts become).

torch runs one process per device, each on its own slice of every batch, and all-reduces the gradients. JAX runs
one program: the *global* batch (per-rank batch x world size) is placed across the devices with
`NamedSharding(mesh, P("data"))`, parameters and optimizer state are replicated, and the same jitted step runs;
XLA inserts the gradient all-reduce. Translated scripts use:

    mesh = jax.sharding.Mesh(jax.devices(), ("data",))
    sampler = t2j.parallel.DistributedSampler(dataset, num_replicas=world_size, shuffle=True, seed=0)
    loader = t2j.parallel.DataLoader(dataset, batch_size=8, sampler=sampler, mesh=mesh)  # global batches
    model = t2j.parallel.replicate(model, mesh)

- `DistributedSampler`: torch's sampler exactly (the same permutation as torch's `randperm` for `seed + epoch`,
  padding by repeating the first indices, or `drop_last`); `rank_indices(r)` is what rank r of torch's run sees.
- `DataLoader`: yields global batches: batch k is the concatenation, in rank order, of the k-th batch of every
  rank, so one global step sees the samples DDP's ranks saw together in that step; each batch is sharded over the
  mesh's "data" axis (replicated when its length does not divide the device count).
- `replicate(tree, mesh)`, `shard_batch(tree, mesh)`, `fsdp(tree, mesh)`: placements with NamedSharding.
- `all_reduce`, `all_gather`: torch.distributed's collectives for use inside `jax.shard_map` over the mesh
  (`jax.lax.psum` / `pmax` / `pmin` / `pmean`, `jax.lax.all_gather`).
- `is_main_process()`: `jax.process_index() == 0` (rank-0-only printing and saving).

Multi-host: call `jax.distributed.initialize()` before building the mesh; `jax.devices()` then lists every
host's devices and each process feeds its own part of the global batch.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from torch2jax.runtime.data import default_collate

__all__ = ["data_mesh", "replicate", "shard_batch", "fsdp", "DistributedSampler", "DataLoader", "all_reduce",
           "all_gather", "is_main_process", "torch_randperm"]


def data_mesh(devices=None, axis_name="data") -> Mesh:
    """`Mesh(jax.devices(), ("data",))`: every device on one data-parallel axis."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), (axis_name,))


def _put(x, sharding):
    return jax.device_put(x, sharding) if isinstance(x, (jax.Array, np.ndarray)) else x


def replicate(tree, mesh: Mesh):
    """Every array of `tree` (a model, an optimizer state) copied onto every device of `mesh`."""
    return jax.tree.map(lambda x: _put(x, NamedSharding(mesh, P())), tree)


def shard_batch(tree, mesh: Mesh, axis_name="data"):
    """Every array of `tree` split along its first axis over `mesh`'s data axis (replicated when that axis does
    not divide evenly, or for scalars)."""
    n = mesh.shape[axis_name]

    def put(x):
        if not isinstance(x, (jax.Array, np.ndarray)):
            return x
        spec = P(axis_name) if x.ndim and x.shape[0] % n == 0 else P()
        return jax.device_put(x, NamedSharding(mesh, spec))

    return jax.tree.map(put, tree)


def fsdp(tree, mesh: Mesh, axis_name="data", min_size=1024):
    """Fully sharded data parallel (ZeRO-3): each array with at least `min_size` elements is split over the data
    axis along its largest dimension that divides evenly; smaller ones are replicated. XLA all-gathers the
    parameters where the computation needs them."""
    n = mesh.shape[axis_name]

    def put(x):
        if not isinstance(x, (jax.Array, np.ndarray)):
            return x
        spec = [None] * x.ndim
        if x.size >= min_size:
            dims = sorted((d for d in range(x.ndim) if x.shape[d] % n == 0), key=lambda d: -x.shape[d])
            if dims:
                spec[dims[0]] = axis_name
        return jax.device_put(x, NamedSharding(mesh, P(*spec)))

    return jax.tree.map(put, tree)


def torch_randperm(n: int, seed: int) -> list[int]:
    """torch.randperm(n, generator=torch.Generator().manual_seed(seed)) on CPU, without torch: torch's Fisher-Yates
    over its mt19937 stream (numpy's MT19937 with the same legacy seeding gives the same numbers)."""
    bits = np.random.MT19937()
    bits._legacy_seeding(int(seed) & 0xFFFFFFFF)
    raw = bits.random_raw(max(n - 1, 0)) if n > 1 else []
    perm = list(range(n))
    for i in range(n - 1):
        z = int(raw[i]) % (n - i)
        perm[i], perm[z + i] = perm[z + i], perm[i]
    return perm


class DistributedSampler:
    """torch.utils.data.distributed.DistributedSampler, for every rank at once. `rank_indices(r)` is rank r's
    order for the current epoch (torch's exactly); iterating it gives `rank`'s (default 0)."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        self.dataset = dataset
        self.num_replicas = jax.device_count() if num_replicas is None else int(num_replicas)
        self.rank = 0 if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"Invalid rank {self.rank}, rank should be in the interval [0, {self.num_replicas - 1}]")
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        n = len(dataset)
        if drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_indices(self) -> list[int]:
        n = len(self.dataset)
        indices = torch_randperm(n, self.seed + self.epoch) if self.shuffle else list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        return indices

    def rank_indices(self, rank: int) -> list[int]:
        return self._global_indices()[rank:self.total_size:self.num_replicas]

    def __iter__(self):
        return iter(self.rank_indices(self.rank))

    def __len__(self) -> int:
        return self.num_samples


class DataLoader:
    """A DataLoader over a DistributedSampler that yields *global* batches: batch k holds the k-th batch of rank 0,
    then rank 1's, ... (the samples DDP's ranks process together in step k), sharded over `mesh`.

    `batch_size` is torch's per-rank batch size. With any other sampler (or none) it is torch's DataLoader whose
    batches are sharded. Workers and pinning are accepted and ignored.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True, mesh=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = sampler
        self.drop_last = drop_last
        self.collate_fn = collate_fn or default_collate
        self.mesh = mesh
        if not isinstance(sampler, DistributedSampler):
            from torch2jax.runtime.data import DataLoader as _Plain

            self._plain = _Plain(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                                 batch_sampler=batch_sampler, collate_fn=collate_fn, drop_last=drop_last,
                                 generator=generator)
        else:
            self._plain = None

    def _rank_batches(self, indices):
        out = [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        if out and self.drop_last and len(out[-1]) < self.batch_size:
            out.pop()
        return out

    def __iter__(self):
        if self._plain is not None:
            for batch in self._plain:
                yield batch if self.mesh is None else shard_batch(batch, self.mesh)
            return
        per_rank = [self._rank_batches(self.sampler.rank_indices(r)) for r in range(self.sampler.num_replicas)]
        for step in zip(*per_rank):
            batch = self.collate_fn([self.dataset[i] for rank_batch in step for i in rank_batch])
            yield batch if self.mesh is None else shard_batch(batch, self.mesh)

    def __len__(self) -> int:
        if self._plain is not None:
            return len(self._plain)
        n = self.sampler.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


_REDUCERS = {"sum": jax.lax.psum, "max": jax.lax.pmax, "min": jax.lax.pmin, "avg": jax.lax.pmean,
             "mean": jax.lax.pmean}


def all_reduce(x, op="sum", axis_name="data"):
    """torch.distributed.all_reduce inside `jax.shard_map`: the reduction of `x` over the mesh axis."""
    return _REDUCERS[str(op).rsplit(".", 1)[-1].lower()](x, axis_name)


def all_gather(x, axis_name="data", axis=0, tiled=True):
    """torch.distributed.all_gather_into_tensor inside `jax.shard_map`: every device's `x` concatenated."""
    return jax.lax.all_gather(x, axis_name, axis=axis, tiled=tiled)


def is_main_process() -> bool:
    """Rank 0: `jax.process_index() == 0`."""
    return jax.process_index() == 0


def split_global(x, num_replicas):
    """What each rank held of a global per-sample array (rank order): torch's all_gather output list."""
    return list(jnp.split(x, num_replicas))
