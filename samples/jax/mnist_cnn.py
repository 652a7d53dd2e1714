"""A small convolutional classifier for MNIST-shaped digits.

The structure follows the classic "two conv layers, max-pool, dropout, two
fully connected layers" recipe, trained with Adadelta and a StepLR schedule.
The data is random noise with random labels (28x28, one channel, ten classes)
so the script runs anywhere without downloading anything.
"""
import argparse

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


class Net(eqx.Module):
    conv1: t2j.nn.Conv2d
    conv2: t2j.nn.Conv2d
    dropout1: t2j.nn.Dropout
    dropout2: t2j.nn.Dropout
    fc1: t2j.nn.Linear
    fc2: t2j.nn.Linear

    def __init__(self, num_classes=10, *, key):
        key, subkey = jax.random.split(key)
        self.conv1 = t2j.nn.Conv2d(1, 32, 3, stride=1, key=subkey)
        key, subkey = jax.random.split(key)
        self.conv2 = t2j.nn.Conv2d(32, 64, 3, stride=1, key=subkey)
        self.dropout1 = t2j.nn.Dropout(p=0.25)
        self.dropout2 = t2j.nn.Dropout(p=0.5)
        key, subkey = jax.random.split(key)
        self.fc1 = t2j.nn.Linear(9216, 128, key=subkey)
        key, subkey = jax.random.split(key)
        self.fc2 = t2j.nn.Linear(128, num_classes, key=subkey)

    def __call__(self, x, *, key=None):
        x = self.conv1(x)
        x = jax.nn.relu(x)
        x = self.conv2(x)
        x = jax.nn.relu(x)
        x = t2j.nn.functional.max_pool2d(x, 2)
        key, subkey = t2j.split_key(key)
        x = self.dropout1(x, key=subkey)
        x = t2j.flatten(x, start_dim=1)
        x = self.fc1(x)
        x = jax.nn.relu(x)
        key, subkey = t2j.split_key(key)
        x = self.dropout2(x, key=subkey)
        x = self.fc2(x)
        output = jax.nn.log_softmax(x, axis=1)
        return output


LOG_INTERVAL = 2


@eqx.filter_jit
def train_step(model, opt_state, optimizer, data, target, *, key):
    def loss_fn(model):
        output = model(data, key=key)
        loss = t2j.nll_loss(output, target)
        return loss
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss


def train(model, device, train_loader, optimizer, opt_state, epoch, *, key):
    model = eqx.nn.inference_mode(model, False)
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data, target
        key, subkey = jax.random.split(key)
        model, opt_state, loss = train_step(model, opt_state, optimizer, data, target, key=subkey)
        step = (epoch - 1) * len(train_loader) + batch_idx
        print(f"step {step} loss {loss.item():.6f}")
        if batch_idx % LOG_INTERVAL == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
    return model, opt_state


def test(model, device, test_loader, *, key):
    model = eqx.nn.inference_mode(model, True)
    test_loss = 0
    correct = 0
    for data, target in test_loader:
        data, target = data, target
        key, subkey = jax.random.split(key)
        output = model(data, key=subkey)
        test_loss += t2j.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
        pred = jnp.argmax(output, axis=1, keepdims=True)  # index of the max log-probability
        correct += jnp.sum(jnp.equal(pred, jnp.reshape(target, pred.shape))).item()

    test_loss /= len(test_loader.dataset)
    accuracy = correct / len(test_loader.dataset)

    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset), 100. * accuracy))
    return accuracy


def make_fake_mnist(num_samples, prototypes, generator):
    # Each class is a fixed random "digit" plus pixel noise, so the task is learnable.
    labels = jax.random.randint(generator.next_key(), (num_samples,), 0, 10)
    noise = jax.random.uniform(generator.next_key(), (num_samples, 1, 28, 28))
    images = t2j.clamp(0.6 * prototypes[labels] + 0.4 * noise, min=0.0, max=1.0)
    # Normalised like real MNIST: mean 0.1307, std 0.3081.
    images = (images - 0.1307) / 0.3081
    return t2j.data.TensorDataset(images, labels)


def main():
    parser = argparse.ArgumentParser(description='PyTorch MNIST-style CNN (synthetic data)')
    parser.add_argument('--batch-size', type=int, default=16, metavar='N',
                        help='input batch size for training (default: 16)')
    parser.add_argument('--test-batch-size', type=int, default=32, metavar='N',
                        help='input batch size for testing (default: 32)')
    parser.add_argument('--epochs', type=int, default=3, metavar='N',
                        help='number of epochs to train (default: 3)')
    parser.add_argument('--lr', type=float, default=1.0, metavar='LR',
                        help='learning rate (default: 1.0)')
    parser.add_argument('--gamma', type=float, default=0.7, metavar='M',
                        help='Learning rate step gamma (default: 0.7)')
    parser.add_argument('--no-cuda', action='store_true', default=False,
                        help='disables CUDA training')
    parser.add_argument('--seed', type=int, default=0, metavar='S',
                        help='random seed (default: 0)')
    parser.add_argument('--train-size', type=int, default=64)
    parser.add_argument('--test-size', type=int, default=64)
    args = parser.parse_args()
    use_cuda = not args.no_cuda and False

    key = jax.random.key(args.seed)

    device = t2j.device("cuda" if use_cuda else "cpu")

    train_kwargs = {'batch_size': args.batch_size, 'shuffle': True,
                    'generator': t2j.Generator().manual_seed(args.seed)}
    test_kwargs = {'batch_size': args.test_batch_size}

    g = t2j.Generator().manual_seed(args.seed)
    prototypes = jax.random.uniform(g.next_key(), (10, 1, 28, 28))
    dataset1 = make_fake_mnist(args.train_size, prototypes, g)
    dataset2 = make_fake_mnist(args.test_size, prototypes, g)
    train_loader = t2j.data.DataLoader(dataset1, **train_kwargs)
    test_loader = t2j.data.DataLoader(dataset2, **test_kwargs)

    key, subkey = jax.random.split(key)
    model = Net(key=subkey)
    optimizer = t2j.optim.Adadelta(lr=args.lr)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    scheduler = t2j.optim.lr_scheduler.StepLR(optimizer, 1, gamma=args.gamma)
    opt_state = scheduler.sync(opt_state)
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        key, subkey = jax.random.split(key)
        model, opt_state = train(model, device, train_loader, optimizer, opt_state, epoch, key=subkey)
        key, subkey = jax.random.split(key)
        accuracy = test(model, device, test_loader, key=subkey)
        opt_state = scheduler.step(opt_state)

    print(f"final accuracy {accuracy:.4f}")


if __name__ == '__main__':
    main()
