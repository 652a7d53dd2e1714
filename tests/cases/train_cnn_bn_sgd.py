"""A conv net with BatchNorm trained by train()/evaluate() helpers, SGD with Nesterov momentum and MultiStepLR,
on a DataLoader without shuffling; weights drawn with numpy through named_parameters."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class SmallCNN(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3)
        self.fc = nn.Linear(8 * 3 * 3, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.relu(self.conv2(x))
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.fc(x), dim=1)


def train(model, loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(loader):
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        print(f"step {epoch * len(loader) + batch_idx} loss {loss.item():.6f}")


def evaluate(model, loader):
    model.eval()
    correct = 0
    total = 0
    with torch.no_grad():
        for data, target in loader:
            pred = model(data).argmax(dim=1)
            correct += (pred == target).sum().item()
            total += target.size(0)
    return correct / total


def main():
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.standard_normal((40, 1, 10, 10)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 4, 40))
    loader = DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=False)
    model = SmallCNN()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1, 2], gamma=0.3)
    for epoch in range(3):
        train(model, loader, optimizer, epoch)
        scheduler.step()
    print(f"final accuracy {evaluate(model, loader):.4f}")


if __name__ == "__main__":
    main()
