"""Data-parallel training written another way than ddp_train.py: a setup() helper, the training loop in a function
whose model parameter is named otherwise than the caller's DDP wrapper, weights set through `.data`, a loss module,
SGD with momentum; rank 0 prints every step's loss twice (the all-reduced sum
divided when printed, and the all-reduce + `/= world_size` idiom), the accuracy of a distributed evaluation (counts
all-reduced in one tensor) and of an evaluation on rank 0 alone through `.module`. Weights come from numpy so torch
and the translation start from the same point. Usage: python ddp_classifier.py [master_port]."""
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def setup(rank, world_size, port):
    os.environ["MASTER_ADDR"] = "localhost"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend="gloo", rank=rank, world_size=world_size)


def cleanup():
    dist.destroy_process_group()


class Classifier(nn.Module):
    def __init__(self, d_in=5, hidden=12, classes=4):
        super().__init__()
        self.hidden = nn.Linear(d_in, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    y = np.argmax(X[:, :4] + 0.3 * X[:, 4:], axis=1)
    return TensorDataset(torch.tensor(X), torch.tensor(y))


def evaluate(model, loader):
    correct, seen = 0, 0
    with torch.no_grad():
        for inputs, labels in loader:
            preds = model(inputs).argmax(1)
            correct += (preds == labels).sum().item()
            seen += labels.size(0)
    return correct, seen


def train_epoch(model, loader, criterion, optimizer, epoch, world_size):
    model.train()
    for i, (inputs, labels) in enumerate(loader):
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        summed = torch.tensor([loss.item()])
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        avg = loss.detach().clone()
        dist.all_reduce(avg)
        avg /= world_size
        if dist.get_rank() == 0:
            print(f"epoch {epoch} step {i} loss {summed.item() / dist.get_world_size():.6f} {avg.item():.6f}")


def run(rank, world_size, port):
    setup(rank, world_size, port)
    train_set = data(64, 0)
    sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, seed=5)
    loader = DataLoader(train_set, batch_size=4, shuffle=False, sampler=sampler)
    net = Classifier()
    rng = np.random.default_rng(7)
    net.hidden.weight.data.copy_(torch.tensor(rng.uniform(-0.5, 0.5, size=(12, 5)), dtype=torch.float32))
    net.hidden.bias.data.zero_()
    net.out.weight.data.copy_(torch.tensor(rng.uniform(-0.5, 0.5, size=(4, 12)), dtype=torch.float32))
    net.out.bias.data.fill_(0.1)
    ddp_model = DistributedDataParallel(net)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.05, momentum=0.8)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        train_epoch(ddp_model, loader, criterion, optimizer, epoch, world_size)

    ddp_model.eval()
    test_set = data(40, 1)
    eval_loader = DataLoader(test_set, batch_size=8, sampler=DistributedSampler(test_set, shuffle=False))
    correct, seen = evaluate(ddp_model, eval_loader)
    counts = torch.tensor([correct, seen])
    dist.all_reduce(counts)
    if rank == 0:
        print(f"distributed accuracy {counts[0].item() / counts[1].item():.4f}")
        correct, seen = evaluate(ddp_model.module, DataLoader(test_set, batch_size=10))
        print(f"rank 0 accuracy {correct / seen:.4f}")
    dist.barrier()
    cleanup()


if __name__ == "__main__":
    world_size = 2
    port = sys.argv[1] if len(sys.argv) > 1 else 29533
    mp.spawn(run, args=(world_size, port), nprocs=world_size, join=True)
