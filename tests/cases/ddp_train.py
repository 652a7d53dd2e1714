"""Data-parallel training with DistributedDataParallel: 2 gloo processes on CPU started by mp.spawn, a shuffling
DistributedSampler, SGD with momentum; rank 0 prints the all-reduced loss of every step and the accuracy of a
distributed evaluation (counts all-reduced). Weights are drawn with numpy so torch and the translation start from
the same point. Usage: python ddp_train.py [master_port]."""
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

WORLD_SIZE = 2
BATCH_SIZE = 8  # per rank
PORT = sys.argv[1] if len(sys.argv) > 1 else "29517"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def make_dataset():
    # 91 samples: DistributedSampler pads to 92 (46 per rank); the last batch of each rank holds 6
    rng = np.random.default_rng(0)
    X = rng.standard_normal((91, 6)).astype(np.float32)
    w = rng.standard_normal((6, 3)).astype(np.float32)
    y = (X @ w).argmax(1)
    return TensorDataset(torch.from_numpy(X), torch.from_numpy(y))


def train(rank, world_size):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = PORT
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    dataset = make_dataset()
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=3)
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, sampler=sampler)
    model = Net()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.5))
    ddp_model = DDP(model)
    optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.1, momentum=0.9)
    step = 0
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(ddp_model(xb), yb)
            loss.backward()
            optimizer.step()
            avg = loss.detach().clone()
            dist.all_reduce(avg, op=dist.ReduceOp.SUM)
            avg /= world_size
            if rank == 0:
                print(f"step {step} loss {avg.item():.6f}")
            step += 1

    eval_sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
    eval_loader = DataLoader(dataset, batch_size=16, sampler=eval_sampler)
    model.eval()
    correct = torch.zeros(())
    total = torch.zeros(())
    with torch.no_grad():
        for xb, yb in eval_loader:
            correct += (model(xb).argmax(dim=1) == yb).sum()
            total += yb.shape[0]
    dist.all_reduce(correct)
    dist.all_reduce(total)
    if dist.get_rank() == 0:
        print(f"final accuracy {(correct / total).item():.4f}")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(train, args=(WORLD_SIZE,), nprocs=WORLD_SIZE, join=True)
