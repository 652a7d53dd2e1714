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

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1, *, key):
    """3x3 convolution with padding"""
    return t2j.nn.Conv2d(in_planes, out_planes, 3, stride=stride,
                     padding=dilation, dilation=dilation, groups=groups, bias=False, key=key)


def conv1x1(in_planes, out_planes, stride=1, *, key):
    """1x1 convolution"""
    return t2j.nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False, key=key)


class BasicBlock(eqx.Module):
    conv1: t2j.nn.Conv2d
    bn1: object
    relu: t2j.nn.ReLU
    conv2: t2j.nn.Conv2d
    bn2: object
    downsample: object = None
    stride: object = eqx.field(static=True)

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=None, *, key):
        if norm_layer is None:
            norm_layer = t2j.nn.BatchNorm2d
        # Both self.conv1 and self.downsample layers downsample the input when stride != 1
        key, subkey = jax.random.split(key)
        self.conv1 = conv3x3(inplanes, planes, stride, key=subkey)
        self.bn1 = norm_layer(planes)
        self.relu = t2j.nn.ReLU()
        key, subkey = jax.random.split(key)
        self.conv2 = conv3x3(planes, planes, key=subkey)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def __call__(self, x, state=None, *, key=None):
        identity = x

        out = self.conv1(x)
        out, state = t2j.nn.call_with_state(self.bn1, out, state=state)
        out = self.relu(out)

        out = self.conv2(out)
        out, state = t2j.nn.call_with_state(self.bn2, out, state=state)

        if self.downsample is not None:
            identity, state = t2j.nn.call_with_state(self.downsample, x, state=state)

        out += identity
        out = self.relu(out)

        return t2j.nn.with_state(out, state)


class ResNet(eqx.Module):

    _norm_layer: object = eqx.field(static=True)
    inplanes: object = eqx.field(static=True)
    conv1: t2j.nn.Conv2d
    bn1: object
    relu: t2j.nn.ReLU
    maxpool: t2j.nn.MaxPool2d
    layer1: object
    layer2: object
    layer3: object
    layer4: object
    avgpool: t2j.nn.AdaptiveAvgPool2d
    fc: t2j.nn.Linear

    def __init__(self, block, layers, num_classes=10, width=64, zero_init_residual=False, norm_layer=None, *, key):
        if norm_layer is None:
            norm_layer = t2j.nn.BatchNorm2d
        self._norm_layer = norm_layer

        self.inplanes = width
        key, subkey = jax.random.split(key)
        self.conv1 = t2j.nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False, key=subkey)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = t2j.nn.ReLU()
        self.maxpool = t2j.nn.MaxPool2d(3, stride=2, padding=1)
        key, subkey = jax.random.split(key)
        self.layer1 = self._make_layer(block, width, layers[0], key=subkey)
        key, subkey = jax.random.split(key)
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2, key=subkey)
        key, subkey = jax.random.split(key)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2, key=subkey)
        key, subkey = jax.random.split(key)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2, key=subkey)
        self.avgpool = t2j.nn.AdaptiveAvgPool2d((1, 1))
        key, subkey = jax.random.split(key)
        self.fc = t2j.nn.Linear(width * 8 * block.expansion, num_classes, key=subkey)

        def _update_m(m, *, key):
            if isinstance(m, t2j.nn.Conv2d):
                m = eqx.tree_at(lambda m: m.weight, m, t2j.init.kaiming_normal(key, m.weight.shape, mode='fan_out', nonlinearity='relu', dtype=m.weight.dtype))
            elif isinstance(m, (t2j.nn.BatchNorm2d, t2j.nn.GroupNorm)):
                m = eqx.tree_at(lambda m: m.weight, m, t2j.init.constant(m.weight.shape, 1, dtype=m.weight.dtype))
                m = eqx.tree_at(lambda m: m.bias, m, t2j.init.constant(m.bias.shape, 0, dtype=m.bias.dtype))
            return m
        key, subkey = jax.random.split(key)
        t2j.apply_in_init(self, _update_m, pre_order=True, key=subkey)

        # Zero-initialize the last BN in each residual branch,
        # so that the residual branch starts with zeros, and each residual block behaves like an identity.
        if zero_init_residual:
            def _update_m2(m):
                if isinstance(m, BasicBlock):
                    m = eqx.tree_at(lambda m: m.bn2.weight, m, t2j.init.constant(m.bn2.weight.shape, 0, dtype=m.bn2.weight.dtype))
                return m
            t2j.apply_in_init(self, _update_m2, pre_order=True)

    def _make_layer(self, block, planes, blocks, stride=1, *, key):
        norm_layer = self._norm_layer
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            key, subkey = jax.random.split(key)
            downsample = t2j.nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride, key=subkey),
                norm_layer(planes * block.expansion),
            )

        layers = []
        key, subkey = jax.random.split(key)
        layers.append(block(self.inplanes, planes, stride, downsample, norm_layer, key=subkey))
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            key, subkey = jax.random.split(key)
            layers.append(block(self.inplanes, planes, norm_layer=norm_layer, key=subkey))

        return t2j.nn.Sequential(*layers)

    def __call__(self, x, state=None, *, key=None):
        x = self.conv1(x)
        x, state = t2j.nn.call_with_state(self.bn1, x, state=state)
        x = self.relu(x)
        x = self.maxpool(x)

        x, state = t2j.nn.call_with_state(self.layer1, x, state=state)
        x, state = t2j.nn.call_with_state(self.layer2, x, state=state)
        x, state = t2j.nn.call_with_state(self.layer3, x, state=state)
        x, state = t2j.nn.call_with_state(self.layer4, x, state=state)

        x = self.avgpool(x)
        x = t2j.flatten(x, start_dim=1)
        x = self.fc(x)

        return t2j.nn.with_state(x, state)


def resnet18(*, key, **kwargs):
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs, key=key)


def make_fake_cifar(num_samples, class_colour, class_pattern, generator):
    """Images whose per-class colour and low-frequency pattern make the label recoverable."""
    num_classes = class_colour.shape[0]
    labels = jax.random.randint(generator.next_key(), (num_samples,), 0, num_classes)
    pattern = t2j.nn.functional.interpolate(class_pattern[labels], size=(32, 32), mode='bilinear', align_corners=False)
    noise = jax.random.normal(generator.next_key(), (num_samples, 3, 32, 32))
    images = class_colour[labels] + pattern + 0.5 * noise
    return images, labels


@eqx.filter_jit
def train_step(model, state, opt_state, optimizer, image, criterion, target, *, key):
    def loss_fn(model, state):
        output, state = model(image, state, key=key)
        loss = criterion(output, target)
        return loss, (state, output)
    (loss, (state, output)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, state)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss, output


def train_one_epoch(model, state, criterion, optimizer, opt_state, scheduler, data_loader, device, epoch, step, *, key):
    model = eqx.nn.inference_mode(model, False)
    for i, (image, target) in enumerate(data_loader):
        image, target = image, target
        # random horizontal flip, one coin per image
        key, subkey = jax.random.split(key)
        flip = jax.random.uniform(subkey, image.shape[0]) < 0.5
        image = jnp.where(flip[:, None, None, None], jnp.flip(image, axis=3), image)

        key, subkey = jax.random.split(key)
        model, state, opt_state, loss, output = train_step(model, state, opt_state, optimizer, image, criterion, target, key=subkey)
        opt_state = scheduler.step(opt_state)

        acc1 = jnp.mean((jnp.argmax(output, axis=1) == target).astype(jnp.float32)) * 100
        print(f"Epoch: [{epoch}] [{i}/{len(data_loader)}] lr: {scheduler.get_last_lr()[0]:.5f} "
              f"loss: {loss.item():.4f} acc1: {acc1.item():.2f}")
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    return model, state, opt_state, step


def evaluate(model, state, criterion, data_loader, device, *, key):
    model = eqx.nn.inference_mode(model, True)
    total_loss, correct, total = 0.0, 0, 0
    for image, target in data_loader:
        image = image
        target = target
        key, subkey = jax.random.split(key)
        output, state = model(image, state, key=subkey)
        total_loss += criterion(output, target).item() * image.shape[0]
        _, pred = t2j.max(output, 1)
        correct += jnp.sum(jnp.equal(pred, target)).item()
        total += target.shape[0]
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

    key = jax.random.key(args.seed)
    device = t2j.device('cuda' if False else 'cpu')

    g = t2j.Generator().manual_seed(args.seed)
    class_colour = jax.random.normal(g.next_key(), (args.num_classes, 3, 1, 1))
    class_pattern = jax.random.normal(g.next_key(), (args.num_classes, 1, 8, 8))
    train_x, train_y = make_fake_cifar(64, class_colour, class_pattern, g)
    test_x, test_y = make_fake_cifar(32, class_colour, class_pattern, g)
    train_loader = t2j.data.DataLoader(t2j.data.TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=False)
    test_loader = t2j.data.DataLoader(t2j.data.TensorDataset(test_x, test_y), batch_size=args.batch_size)

    key, subkey = jax.random.split(key)
    model, state = eqx.nn.make_with_state(resnet18)(num_classes=args.num_classes, width=args.width, zero_init_residual=True, key=subkey)
    model = model

    criterion = t2j.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = t2j.optim.SGD(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, nesterov=True)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    scheduler = t2j.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs * len(train_loader))
    opt_state = scheduler.sync(opt_state)

    step = 0
    acc = 0.0
    for epoch in range(args.epochs):
        key, subkey = jax.random.split(key)
        model, state, opt_state, step = train_one_epoch(model, state, criterion, optimizer, opt_state, scheduler, train_loader, device, epoch, step, key=subkey)
        key, subkey = jax.random.split(key)
        acc = evaluate(model, state, criterion, test_loader, device, key=subkey)

    print(f"final accuracy {acc:.4f}")


if __name__ == '__main__':
    main()
