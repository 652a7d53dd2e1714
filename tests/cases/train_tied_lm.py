"""A tiny language model whose output projection shares the token embedding's matrix (weight tying, as nanoGPT and
the word language model): the tied matrix gets the sum of both gradients, is counted once by parameters(),
decayed once by AdamW and clipped once. The optimizer is built by a method of the model (param groups by ndim)
and by a plain factory function with its own local name."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyLM(nn.Module):
    def __init__(self, vocab, dim, tie=True):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        if tie:
            self.head.weight = self.embed.weight  # one matrix, two uses
        rng = np.random.default_rng(0)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.3, dtype=torch.float32))

    def forward(self, idx):
        h = torch.tanh(self.mix(self.embed(idx)))
        return self.head(h)

    def configure_optimizers(self, lr, weight_decay):
        decay = [p for n, p in self.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr)


def make_sgd(net, lr):
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    return opt


def main():
    rng = np.random.default_rng(1)
    tokens = torch.tensor(rng.integers(0, 11, (8, 6)))
    targets = torch.tensor(rng.integers(0, 11, (8, 6)))
    model = TinyLM(11, 5)
    print(f"final params {sum(p.numel() for p in model.parameters())}")
    optimizer = model.configure_optimizers(0.05, 0.1)
    step = 0
    for epoch in range(4):
        optimizer.zero_grad()
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, 11), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    second = TinyLM(11, 5)
    sgd = make_sgd(second, 0.1)
    for epoch in range(4):
        sgd.zero_grad()
        loss = F.cross_entropy(second(tokens).view(-1, 11), targets.view(-1))
        loss.backward()
        sgd.step()
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    with torch.no_grad():
        print(f"final gap {(model.head.weight - model.embed.weight).abs().max().item():.6f}")
        print(f"final accuracy {(model(tokens).argmax(-1) == targets).float().mean().item():.6f}")


if __name__ == "__main__":
    main()
