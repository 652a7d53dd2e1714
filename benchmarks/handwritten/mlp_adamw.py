"""tests/cases/train_mlp_adamw.py's MLP (Linear-tanh-Linear) trained with AdamW + gradient clipping (max norm 1)
on the cross entropy, written by hand the idiomatic Equinox way: a per-example module vmapped over the batch,
optax.chain(clip_by_global_norm, adamw), one eqx.filter_jit step."""
import equinox as eqx
import jax
import jax.numpy as jnp
import optax


class MLP(eqx.Module):
    fc1: eqx.nn.Linear
    fc2: eqx.nn.Linear

    def __init__(self, d_in=6, d_hidden=16, n_classes=3, *, key):
        k1, k2 = jax.random.split(key)
        self.fc1 = eqx.nn.Linear(d_in, d_hidden, key=k1)
        self.fc2 = eqx.nn.Linear(d_hidden, n_classes, key=k2)

    def __call__(self, x, *, key=None):  # one example: x [d_in]
        return self.fc2(jnp.tanh(self.fc1(x)))


def make_optimizer(lr=0.05, weight_decay=0.01):
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(lr, weight_decay=weight_decay))


@eqx.filter_jit
def train_step(model, opt_state, optimizer, x, y, *, key):
    def loss_fn(model):
        logits = jax.vmap(model)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, loss
