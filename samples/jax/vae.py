"""Variational auto-encoder on flattened 28x28 images.

Fully connected encoder/decoder, the reparameterisation trick, and the usual
loss: binary cross-entropy reconstruction plus the KL divergence to N(0, I).
Images are synthetic: blurry blobs in [0, 1], generated under a fixed seed.
"""
import argparse

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


class VAE(eqx.Module):
    input_dim: object = eqx.field(static=True)
    fc1: t2j.nn.Linear
    fc21: t2j.nn.Linear
    fc22: t2j.nn.Linear
    fc3: t2j.nn.Linear
    fc4: t2j.nn.Linear

    def __init__(self, input_dim=784, hidden_dim=400, latent_dim=20, *, key):
        self.input_dim = input_dim

        key, subkey = jax.random.split(key)
        self.fc1 = t2j.nn.Linear(input_dim, hidden_dim, key=subkey)
        key, subkey = jax.random.split(key)
        self.fc21 = t2j.nn.Linear(hidden_dim, latent_dim, key=subkey)
        key, subkey = jax.random.split(key)
        self.fc22 = t2j.nn.Linear(hidden_dim, latent_dim, key=subkey)
        key, subkey = jax.random.split(key)
        self.fc3 = t2j.nn.Linear(latent_dim, hidden_dim, key=subkey)
        key, subkey = jax.random.split(key)
        self.fc4 = t2j.nn.Linear(hidden_dim, input_dim, key=subkey)

    def encode(self, x):
        h1 = jax.nn.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar, *, key=None):
        std = jnp.exp(0.5 * logvar)
        eps = jax.random.normal(key, std.shape, std.dtype)
        return mu + eps * std

    def decode(self, z):
        h3 = jax.nn.relu(self.fc3(z))
        return jax.nn.sigmoid(self.fc4(h3))

    def __call__(self, x, *, key=None):
        mu, logvar = self.encode(jnp.reshape(x, (-1, self.input_dim)))
        z = self.reparameterize(mu, logvar, key=key)
        return self.decode(z), mu, logvar


# Reconstruction + KL divergence losses summed over all elements and batch
def loss_function(recon_x, x, mu, logvar):
    BCE = t2j.binary_cross_entropy(recon_x, jnp.reshape(x, (-1, recon_x.shape[1])), reduction='sum')

    # see Appendix B from VAE paper:
    # Kingma and Welling. Auto-Encoding Variational Bayes. ICLR, 2014
    # 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
    KLD = -0.5 * jnp.sum(1 + logvar - jnp.power(mu, 2) - jnp.exp(logvar))

    return BCE + KLD


def make_blobs(num_samples, generator, size=28):
    """Gaussian blobs at random centres: a stand-in for handwritten digits."""
    coords = jnp.arange(size, dtype=jnp.float32)
    yy, xx = jnp.meshgrid(coords, coords, indexing='ij')
    centres = jax.random.uniform(generator.next_key(), (num_samples, 2)) * (size - 8) + 4
    widths = jax.random.uniform(generator.next_key(), (num_samples, 1, 1)) * 3 + 2
    d2 = (yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2
    images = jnp.exp(-d2 / (2 * widths ** 2))
    return jnp.expand_dims(images, 1)  # N x 1 x 28 x 28


@eqx.filter_jit
def train_step(model, opt_state, optimizer, data, *, key):
    def loss_fn(model):
        recon_batch, mu, logvar = model(data, key=key)
        loss = loss_function(recon_batch, data, mu, logvar)
        return loss
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss


def train(model, device, train_loader, optimizer, opt_state, epoch, log_interval, global_step, *, key):
    model = eqx.nn.inference_mode(model, False)
    train_loss = 0
    for batch_idx, (data,) in enumerate(train_loader):
        data = data
        key, subkey = jax.random.split(key)
        model, opt_state, loss = train_step(model, opt_state, optimizer, data, key=subkey)
        train_loss += loss.item()
        print(f"step {global_step} loss {loss.item():.6f}")
        global_step += 1
        if batch_idx % log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader),
                loss.item() / len(data)))

    print('====> Epoch: {} Average loss: {:.4f}'.format(
        epoch, train_loss / len(train_loader.dataset)))
    return model, opt_state, global_step


def test(model, device, test_loader, epoch, *, key):
    model = eqx.nn.inference_mode(model, True)
    test_loss = 0
    for i, (data,) in enumerate(test_loader):
        data = data
        key, subkey = jax.random.split(key)
        recon_batch, mu, logvar = model(data, key=subkey)
        test_loss += loss_function(recon_batch, data, mu, logvar).item()

    test_loss /= len(test_loader.dataset)
    print('====> Test set loss: {:.4f}'.format(test_loss))
    return test_loss


def main():
    parser = argparse.ArgumentParser(description='VAE example (synthetic data)')
    parser.add_argument('--batch-size', type=int, default=16, metavar='N',
                        help='input batch size for training (default: 16)')
    parser.add_argument('--epochs', type=int, default=3, metavar='N',
                        help='number of epochs to train (default: 3)')
    parser.add_argument('--seed', type=int, default=0, metavar='S',
                        help='random seed (default: 0)')
    parser.add_argument('--log-interval', type=int, default=2, metavar='N',
                        help='how many batches to wait before logging training status')
    parser.add_argument('--latent-dim', type=int, default=20)
    args = parser.parse_args()

    key = jax.random.key(args.seed)
    device = t2j.device("cuda" if False else "cpu")

    g = t2j.Generator().manual_seed(args.seed)
    train_data = make_blobs(64, g)
    test_data = make_blobs(32, g)
    train_loader = t2j.data.DataLoader(
        t2j.data.TensorDataset(train_data),
        batch_size=args.batch_size, shuffle=False)
    test_loader = t2j.data.DataLoader(
        t2j.data.TensorDataset(test_data),
        batch_size=args.batch_size, shuffle=False)

    key, subkey = jax.random.split(key)
    model = VAE(latent_dim=args.latent_dim, key=subkey)
    optimizer = t2j.optim.Adam(lr=1e-3)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    global_step = 0
    test_loss = 0.0
    for epoch in range(1, args.epochs + 1):
        key, subkey = jax.random.split(key)
        model, opt_state, global_step = train(model, device, train_loader, optimizer, opt_state, epoch,
                            args.log_interval, global_step, key=subkey)
        key, subkey = jax.random.split(key)
        test_loss = test(model, device, test_loader, epoch, key=subkey)
        key, subkey = jax.random.split(key)
        sample = jax.random.normal(subkey, (8, args.latent_dim))
        sample = model.decode(sample)
        print('sample mean {:.4f}'.format(jnp.mean(sample).item()))

    print(f"final loss {test_loss:.6f}")


if __name__ == "__main__":
    main()
