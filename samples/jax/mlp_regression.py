"""Tabular regression with a multi-layer perceptron.

A synthetic "house price" style dataset (a smooth nonlinear function of eight
features plus noise), standardised with statistics from the training split.
The model is an nn.Sequential MLP built in a loop; training uses MSELoss,
RMSprop and an ExponentialLR schedule, and reports validation MSE and MAE.
"""
import argparse

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


class MLPRegressor(eqx.Module):
    net: t2j.nn.Sequential

    def __init__(self, in_features=8, hidden_sizes=(64, 32), dropout=0.1, *, key):
        layers = []
        prev = in_features
        for h in hidden_sizes:
            key, subkey = jax.random.split(key)
            layers.append(t2j.nn.Linear(prev, h, key=subkey))
            layers.append(t2j.nn.ReLU())
            layers.append(t2j.nn.Dropout(p=dropout))
            prev = h
        key, subkey = jax.random.split(key)
        layers.append(t2j.nn.Linear(prev, 1, key=subkey))
        self.net = t2j.nn.Sequential(*layers)

    def __call__(self, x, *, key=None):
        return t2j.squeeze(self.net(x, key=key), -1)


def make_regression(num_samples, generator, in_features=8):
    x = jax.random.normal(generator.next_key(), (num_samples, in_features))
    x = x.at[:, 0].set(jnp.abs(x[:, 0]) * 3)  # a skewed, size-like feature
    w = jnp.linspace(-1.0, 1.0, in_features)
    y = x @ w + 0.5 * jnp.sin(2 * x[:, 1]) * x[:, 2] + 0.1 * x[:, 0] ** 2
    y = y + 0.1 * jax.random.normal(generator.next_key(), num_samples)
    return x, y


@eqx.filter_jit
def train_step(model, opt_state, optimizer, xb, criterion, yb, *, key):
    def loss_fn(model):
        pred = model(xb, key=key)
        loss = criterion(pred, yb)
        return loss, (pred,)
    (loss, (pred,)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss, pred


def main():
    parser = argparse.ArgumentParser(description='MLP regression (synthetic tabular data)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--lr', type=float, default=1e-2)
    parser.add_argument('--gamma', type=float, default=0.9)
    parser.add_argument('--dropout', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    key = jax.random.key(args.seed)
    device = t2j.device('cuda' if False else 'cpu')

    g = t2j.Generator().manual_seed(args.seed)
    x, y = make_regression(96, g)
    x_train, y_train = x[:64], y[:64]
    x_val, y_val = x[64:], y[64:]

    # standardise features with training statistics only
    mean = jnp.mean(x_train, axis=0, keepdims=True)
    std = t2j.std(x_train, dim=0, keepdim=True)
    x_train = (x_train - mean) / std
    x_val = (x_val - mean) / std

    train_loader = t2j.data.DataLoader(t2j.data.TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True,
                              generator=t2j.Generator().manual_seed(args.seed))
    val_loader = t2j.data.DataLoader(t2j.data.TensorDataset(x_val, y_val), batch_size=args.batch_size)

    key, subkey = jax.random.split(key)
    model = MLPRegressor(in_features=x.shape[1], dropout=args.dropout, key=subkey)
    criterion = t2j.MSELoss()
    optimizer = t2j.optim.RMSprop(lr=args.lr, alpha=0.99, momentum=0.0)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    scheduler = t2j.optim.lr_scheduler.ExponentialLR(optimizer, args.gamma)
    opt_state = scheduler.sync(opt_state)

    step = 0
    for epoch in range(args.epochs):
        model = eqx.nn.inference_mode(model, False)
        running = 0.0
        for xb, yb in train_loader:
            xb, yb = xb, yb
            key, subkey = jax.random.split(key)
            model, opt_state, loss, pred = train_step(model, opt_state, optimizer, xb, criterion, yb, key=subkey)
            running += loss.item() * xb.shape[0]
            print(f"step {step} loss {loss.item():.6f}")
            step += 1
        opt_state = scheduler.step(opt_state)

        model = eqx.nn.inference_mode(model, True)
        se, ae, n = 0.0, 0.0, 0
        for xb, yb in val_loader:
            xb, yb = xb, yb
            key, subkey = jax.random.split(key)
            pred = model(xb, key=subkey)
            se += t2j.mse_loss(pred, yb, reduction='sum').item()
            ae += jnp.sum(jnp.abs(pred - yb)).item()
            n += yb.size
        val_mse = se / n
        print(f"epoch {epoch}: train mse {running / len(train_loader.dataset):.4f} "
              f"val mse {val_mse:.4f} val mae {ae / n:.4f} lr {scheduler.get_last_lr()[0]:.5f}")

    print(f"final loss {val_mse:.6f}")


if __name__ == '__main__':
    main()
