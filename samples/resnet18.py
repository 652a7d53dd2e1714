"""ResNet-18 image classifier on CIFAR-sized (3x32x32) synthetic images.

The network is the standard ResNet-18 layout: a 7x7 stem with max-pooling,
four stages of two BasicBlocks each (a strided 1x1 conv + BatchNorm
"downsample" shortcut where the shape changes), global average pooling and a
linear classifier. Channel widths are scaled by `width` (64 in the paper) to
keep the script fast on a CPU. Training uses SGD with Nesterov momentum and
weight decay, cross-entropy with label smoothing, a per-iteration
CosineAnnealingLR schedule and random horizontal flips.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim
from torch.utils.data import DataLoader, TensorDataset


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution with padding"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride,
                     padding=dilation, groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=None):
        super(BasicBlock, self).__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        # Both self.conv1 and self.downsample layers downsample the input when stride != 1
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out += identity
        out = self.relu(out)

        return out


class ResNet(nn.Module):

    def __init__(self, block, layers, num_classes=10, width=64, zero_init_residual=False, norm_layer=None):
        super(ResNet, self).__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer

        self.inplanes = width
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

        # Zero-initialize the last BN in each residual branch,
        # so that the residual branch starts with zeros, and each residual block behaves like an identity.
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        norm_layer = self._norm_layer
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )

        layers = []
        layers.append(block(self.inplanes, planes, stride, downsample, norm_layer))
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, norm_layer=norm_layer))

        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)

        return x


def resnet18(**kwargs):
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def make_fake_cifar(num_samples, class_colour, class_pattern, generator):
    """Images whose per-class colour and low-frequency pattern make the label recoverable."""
    num_classes = class_colour.size(0)
    labels = torch.randint(0, num_classes, (num_samples,), generator=generator)
    pattern = F.interpolate(class_pattern[labels], size=(32, 32), mode='bilinear', align_corners=False)
    noise = torch.randn(num_samples, 3, 32, 32, generator=generator)
    images = class_colour[labels] + pattern + 0.5 * noise
    return images, labels


def train_one_epoch(model, criterion, optimizer, scheduler, data_loader, device, epoch, step):
    model.train()
    for i, (image, target) in enumerate(data_loader):
        image, target = image.to(device), target.to(device)
        # random horizontal flip, one coin per image
        flip = torch.rand(image.size(0), device=device) < 0.5
        image = torch.where(flip[:, None, None, None], image.flip(3), image)

        output = model(image)
        loss = criterion(output, target)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()

        acc1 = (output.argmax(1) == target).float().mean() * 100
        print(f"Epoch: [{epoch}] [{i}/{len(data_loader)}] lr: {scheduler.get_last_lr()[0]:.5f} "
              f"loss: {loss.item():.4f} acc1: {acc1.item():.2f}")
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    return step


def evaluate(model, criterion, data_loader, device):
    model.eval()
    total_loss, correct, total = 0.0, 0, 0
    with torch.inference_mode():
        for image, target in data_loader:
            image = image.to(device, non_blocking=True)
            target = target.to(device, non_blocking=True)
            output = model(image)
            total_loss += criterion(output, target).item() * image.size(0)
            _, pred = output.max(1)
            correct += pred.eq(target).sum().item()
            total += target.size(0)
    print(f"Test: loss {total_loss / total:.4f} acc@1 {100.0 * correct / total:.2f}")
    return correct / total


def main():
    parser = argparse.ArgumentParser(description='ResNet-18 on CIFAR-sized synthetic data')
    parser.add_argument('--width', default=16, type=int, help='channels of the first stage (64 in the paper)')
    parser.add_argument('--num-classes', default=10, type=int)
    parser.add_argument('-b', '--batch-size', default=16, type=int)
    parser.add_argument('--epochs', default=2, type=int)
    parser.add_argument('--lr', default=0.1, type=float, help='initial learning rate')
    parser.add_argument('--momentum', default=0.9, type=float, help='momentum')
    parser.add_argument('--wd', '--weight-decay', default=5e-4, type=float, dest='weight_decay')
    parser.add_argument('--label-smoothing', default=0.1, type=float)
    parser.add_argument('--seed', default=0, type=int)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

    g = torch.Generator().manual_seed(args.seed)
    class_colour = torch.randn(args.num_classes, 3, 1, 1, generator=g)
    class_pattern = torch.randn(args.num_classes, 1, 8, 8, generator=g)
    train_x, train_y = make_fake_cifar(64, class_colour, class_pattern, g)
    test_x, test_y = make_fake_cifar(32, class_colour, class_pattern, g)
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=False)
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=args.batch_size)

    model = resnet18(num_classes=args.num_classes, width=args.width, zero_init_residual=True)
    model = model.to(device)

    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay, nesterov=True)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(train_loader))

    step = 0
    acc = 0.0
    for epoch in range(args.epochs):
        step = train_one_epoch(model, criterion, optimizer, scheduler, train_loader, device, epoch, step)
        acc = evaluate(model, criterion, test_loader, device)

    print(f"final accuracy {acc:.4f}")


if __name__ == '__main__':
    main()
