"""torch2jax.runtime.data against torch.utils.data: same batches in the same order when not shuffled."""
import numpy as np
import pytest
import torch
import torch.utils.data as tdata

from torch2jax.runtime import data as jdata


class Squares:
    """A user map-style dataset (subclassing each library's Dataset below): dict samples."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((2,), i, np.float32), "y": i * i}


def _as_numpy(batch):
    if isinstance(batch, dict):
        return {k: _as_numpy(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [_as_numpy(v) for v in batch]
    return np.asarray(batch)


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (10, False), (4, True)])
def test_tensor_dataset_batches_match_torch(batch_size, drop_last):
    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    y = np.arange(10)
    t_loader = tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                batch_size=batch_size, drop_last=drop_last)
    j_loader = jdata.DataLoader(jdata.TensorDataset(x, y), batch_size=batch_size, drop_last=drop_last)
    assert len(t_loader) == len(j_loader)
    t_batches, j_batches = list(t_loader), list(j_loader)
    assert len(t_batches) == len(j_batches)
    for tb, jb in zip(t_batches, j_batches):
        for t, j in zip(tb, jb):
            np.testing.assert_array_equal(np.asarray(j), t.numpy())


def test_user_dataset_with_dict_samples_matches_torch():
    t_ds = type("T", (Squares, tdata.Dataset), {})(7)
    j_ds = type("J", (Squares, jdata.Dataset), {})(7)
    t_batches = [_as_numpy({k: v.numpy() for k, v in b.items()}) for b in tdata.DataLoader(t_ds, batch_size=3)]
    j_batches = [_as_numpy(b) for b in jdata.DataLoader(j_ds, batch_size=3)]
    assert len(t_batches) == len(j_batches) == 3
    for tb, jb in zip(t_batches, j_batches):
        np.testing.assert_array_equal(jb["x"], tb["x"])
        np.testing.assert_array_equal(jb["y"], tb["y"])


def test_shuffle_is_a_permutation_and_seeded():
    x = np.arange(20)
    loader = jdata.DataLoader(jdata.TensorDataset(x), batch_size=5, shuffle=True)
    seen = np.concatenate([np.asarray(b[0]) for b in loader])
    assert sorted(seen.tolist()) == list(range(20)) and seen.tolist() != list(range(20))


def test_random_split_sizes_and_disjoint():
    parts = jdata.random_split(jdata.TensorDataset(np.arange(10)), [0.7, 0.3])
    assert [len(p) for p in parts] == [7, 3]
    items = [int(p[i][0]) for p in parts for i in range(len(p))]
    assert sorted(items) == list(range(10))
    with pytest.raises(ValueError):
        jdata.random_split(jdata.TensorDataset(np.arange(10)), [4, 4])
