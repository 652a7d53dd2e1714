"""Plain SGD written by hand, without an optimizer: `p.data.add_(p.grad, alpha=-lr)` over the parameters after
clipping, in a helper that receives the model and a learning rate that decays between epochs; then a top-level loop
of `p -= lr * p.grad` under no_grad."""
import numpy as np
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 12)
        self.fc2 = nn.Linear(12, 1)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def train(model, X, Y, lr, step):
    for i in range(0, X.shape[0], 8):
        model.zero_grad()
        loss = nn.functional.mse_loss(model(X[i:i + 8]), Y[i:i + 8])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    return step


def main():
    rng = np.random.default_rng(7)
    X = torch.tensor(rng.standard_normal((32, 4)), dtype=torch.float32)
    Y = torch.tensor(rng.standard_normal((32, 1)), dtype=torch.float32)
    model = Net()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))
    lr = 0.3
    step = 0
    for epoch in range(3):
        step = train(model, X, Y, lr, step)
        lr /= 2.0
    for i in range(0, X.shape[0], 16):
        model.zero_grad()
        loss = ((model(X[i:i + 16]) - Y[i:i + 16]) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    print(f"final weights {(model.fc1.weight.sum() + model.fc2.weight.sum() + model.fc2.bias.sum()).item():.6f}")


if __name__ == "__main__":
    main()
