"""The checker's seeded-script fixture, torch side: random initial weights, random data, a shuffling DataLoader
and dropout, so the printed losses depend on every random draw."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(24, 4)
y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(24, 1)
loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
for epoch in range(2):
    for xb, yb in loader:
        loss = ((model(xb) - yb) ** 2).mean()
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.05 * p.grad
        print(f"epoch {epoch} loss {loss.item():.6f}")
# a draw the translation makes differently (jax.random.categorical): what is printed after it is not compared
token = torch.multinomial(torch.softmax(model(x[:1]), dim=0).reshape(-1) + 1.0, num_samples=1)
print(f"final sampled token {token.item()}")
