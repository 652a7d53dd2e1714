"""A small classifier and its training loop: the fixture of the review-mode tests (layers, a training step,
an in-place update and a call with no JAX mapping)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    def __init__(self, d_in=8, d_hidden=32, n_classes=4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.norm = nn.LayerNorm(d_hidden)
        self.fc2 = nn.Linear(d_hidden, n_classes)

    def forward(self, x):
        h = F.relu(self.norm(self.fc1(x)))
        return self.fc2(h)


def clip_logits(logits, bound=10.0):
    # in-place update: becomes a functional .at[] update
    logits[logits > bound] = bound
    return logits


def zeta_feature(x):
    # no JAX mapping: left for a human
    return torch.special.zeta(x, 2.0)


def train(model, xs, ys, epochs=3):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(epochs):
        logits = clip_logits(model(xs))
        loss = F.cross_entropy(logits, ys)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"epoch {epoch} loss {loss.item():.4f}")
    return model


def main():
    torch.manual_seed(0)
    xs = torch.randn(64, 8)
    ys = torch.randint(0, 4, (64,))
    model = Classifier()
    train(model, xs, ys)


if __name__ == "__main__":
    main()
