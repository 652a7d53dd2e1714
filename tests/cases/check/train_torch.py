"""The checker's script fixture, torch side: a top-level training loop printing its losses."""
import numpy as np
import torch

rng = np.random.default_rng(0)
x = torch.tensor(rng.standard_normal((16, 3)), dtype=torch.float32)
y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
w = torch.zeros(3, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
for step in range(5):
    loss = ((x @ w + b - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
        b -= 0.1 * b.grad
        w.grad.zero_()
        b.grad.zero_()
    print(f"step {step} loss {loss.item():.6f}")
print(f"final loss {((x @ w + b - y) ** 2).mean().item():.6f}")
