"""samples/mlp_regression.py's MLPRegressor (Linear-ReLU-Dropout x2, Linear, squeeze) trained with RMSprop on
the MSE, written by hand the idiomatic Equinox way: a per-example module vmapped over the batch, optax for the
optimizer, one eqx.filter_jit step."""
import equinox as eqx
import jax
import jax.numpy as jnp
import optax


class MLPRegressor(eqx.Module):
    layers: list
    dropouts: list

    def __init__(self, in_features=8, hidden_sizes=(64, 32), dropout=0.1, *, key):
        sizes = (in_features, *hidden_sizes, 1)
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)]
        self.dropouts = [eqx.nn.Dropout(dropout) for _ in hidden_sizes]

    def __call__(self, x, *, key=None):  # one example: x [in_features]
        keys = [None] * len(self.dropouts) if key is None else list(jax.random.split(key, len(self.dropouts)))
        for layer, drop, k in zip(self.layers[:-1], self.dropouts, keys):
            x = drop(jax.nn.relu(layer(x)), key=k)
        return self.layers[-1](x)[0]


def make_optimizer(lr=1e-2):
    # torch.optim.RMSprop(lr, alpha=0.99, eps=1e-8): eps added outside the square root
    return optax.rmsprop(lr, decay=0.99, eps=1e-8)


@eqx.filter_jit
def train_step(model, opt_state, optimizer, x, y, *, key):
    def loss_fn(model):
        keys = jax.random.split(key, x.shape[0])
        pred = jax.vmap(model)(x, key=keys)
        return jnp.mean((pred - y) ** 2)

    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, loss
