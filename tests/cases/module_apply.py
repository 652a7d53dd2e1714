"""Initialisation through Module.apply: a function passed to model.apply, and self.apply in __init__."""
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return self.norm(torch.relu(self.fc(x)))


class Net(nn.Module):
    def __init__(self, d_in, d):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.blocks = nn.Sequential(Block(d), Block(d))
        self.out = nn.Linear(d, 2)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.constant_(module.weight, 0.05)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.5)
            module.bias.data.zero_()

    def forward(self, x):
        return self.out(self.blocks(self.inp(x)))


class VGGish(nn.Module):
    """torchvision's VGG: __init__ ends with self._initialize_weights(), a loop over self.modules()."""

    def __init__(self, c=3, width=8, classes=4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Linear(width, width), nn.ReLU(True), nn.Linear(width, classes))
        self._initialize_weights()

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))

    def _initialize_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 0.02)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1.5)
                nn.init.constant_(m.bias, 0.25)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, -0.03)
                nn.init.constant_(m.bias, 0.1)


def constant_init(m):
    classname = m.__class__.__name__
    if classname.find("Linear") != -1:
        m.weight.data.fill_(-0.1)
        m.bias.data.fill_(0.2)
        return
    if isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)


def normal_init(m):
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, mean=0.0, std=0.5)


def build_constant():
    model = Net(3, 64)
    model.apply(constant_init)
    return model


def build_normal():
    model = Net(3, 64)
    model.apply(normal_init)
    return model


class Residual(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


class Stack(nn.Module):
    """torchvision's builder style: the block class is an argument, and a `for m in self.modules()` init loop."""

    def __init__(self, block, depth, d):
        super().__init__()
        self.blocks = self._make(block, depth, d)
        self.head = nn.Linear(d, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 0.01)
                nn.init.constant_(m.bias, 0.1)
        for m in self.modules():
            if isinstance(m, Residual):
                nn.init.zeros_(m.fc2.weight)

    def _make(self, block, depth, d):
        return nn.Sequential(*[block(d, 2 * d) for _ in range(depth)])

    def forward(self, x):
        return self.head(self.blocks(x))


def build_stack():
    return Stack(Residual, 2, 4)
