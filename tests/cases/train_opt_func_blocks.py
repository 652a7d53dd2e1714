"""fit_one_cycle style (the optimizer class handed in: opt_func=torch.optim.SGD, called with torch.optim.Adam),
conv blocks whose nn.Sequential is built from a local list (BatchNorm inside, a layer appended under a flag),
OneCycleLR per batch, clip_grad_value_, evaluation under no_grad; weights drawn with numpy."""
import numpy as np
import torch
from torch import nn, optim
import torch.nn.functional as F


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, pool=False):
        super().__init__()
        layers = [nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(cout)]
        layers.append(nn.ReLU(inplace=True))
        if pool:
            layers += [nn.MaxPool2d(2)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class TinyResNet(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.conv1 = ConvBlock(2, 4)
        self.conv2 = ConvBlock(4, 6, pool=True)
        self.res = nn.Sequential(ConvBlock(6, 6), ConvBlock(6, 6))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, num_classes))

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        out = self.res(out) + out
        return self.head(out)


def evaluate(model, batches):
    model.eval()
    with torch.no_grad():
        losses = [F.cross_entropy(model(x), y) for x, y in batches]
    return torch.stack(losses).mean().item()


def fit_one_cycle(epochs, max_lr, model, batches, weight_decay=0.0, grad_clip=None, opt_func=optim.SGD):
    optimizer = opt_func(model.parameters(), max_lr, weight_decay=weight_decay)
    sched = optim.lr_scheduler.OneCycleLR(optimizer, max_lr, epochs=epochs, steps_per_epoch=len(batches))
    step = 0
    for epoch in range(epochs):
        model.train()
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_value_(model.parameters(), grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            sched.step()
            print(f"step {step} loss {loss.item():.6f}")
            step += 1
    return model


def main():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((24, 2, 8, 8)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 24))
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8)]
    model = TinyResNet()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-0.4, 0.4, tuple(p.shape)).astype(np.float32)))
    model = fit_one_cycle(2, 0.01, model, batches, weight_decay=1e-4, grad_clip=0.1, opt_func=torch.optim.Adam)
    print(f"final loss {evaluate(model, batches):.6f}")


if __name__ == "__main__":
    main()
