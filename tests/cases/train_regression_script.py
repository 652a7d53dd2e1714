"""A top-level training script (no main): MSE regression with RMSprop and ExponentialLR."""
import numpy as np
import torch
from torch import nn

rng = np.random.default_rng(2)
x = torch.tensor(rng.uniform(-1, 1, (32, 3)), dtype=torch.float32)
w_true = torch.tensor([[1.5], [-2.0], [0.5]])
y = x @ w_true + 0.1

net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
with torch.no_grad():
    for p in net.parameters():
        p.copy_(torch.tensor(rng.normal(0, 0.5, tuple(p.shape)), dtype=torch.float32))
criterion = nn.MSELoss()
opt = torch.optim.RMSprop(net.parameters(), lr=0.01, alpha=0.9)
sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)

for step in range(10):
    pred = net(x)
    loss = criterion(pred, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    print(f"step {step} loss {loss.item():.6f}")
print(f"final loss {criterion(net(x), y).item():.6f}")
