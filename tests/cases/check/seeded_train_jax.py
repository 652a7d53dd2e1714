"""The checker's seeded-script fixture, JAX side: seeded_train_torch.py translated by hand."""
import equinox as eqx
import jax
import jax.numpy as jnp

import torch2jax.runtime as t2j

key = jax.random.key(0)
key, k1, k2 = jax.random.split(key, 3)
x = jax.random.normal(k1, (24, 4))
y = x.sum(axis=1, keepdims=True) + 0.1 * jax.random.normal(k2, (24, 1))
loader = t2j.data.DataLoader(t2j.data.TensorDataset(x, y), batch_size=8, shuffle=True)
key, k1, k2 = jax.random.split(key, 3)
model = t2j.nn.Sequential(t2j.nn.Linear(4, 16, key=k1), t2j.nn.ReLU(), t2j.nn.Dropout(0.2),
                          t2j.nn.Linear(16, 1, key=k2))


@eqx.filter_jit
def step(model, xb, yb, key):
    def loss_fn(m):
        return jnp.mean((m(xb, key=key) - yb) ** 2)

    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    return eqx.apply_updates(model, jax.tree.map(lambda g: -0.05 * g, grads)), loss


for epoch in range(2):
    for xb, yb in loader:
        key, subkey = jax.random.split(key)
        model, loss = step(model, xb, yb, subkey)
        print(f"epoch {epoch} loss {loss.item():.6f}")
# a draw the translation makes differently (jax.random.categorical): what is printed after it is not compared
key, subkey = jax.random.split(key)
model = eqx.nn.inference_mode(model)
token = t2j.multinomial(subkey, jax.nn.softmax(model(x[:1]), axis=0).reshape(-1) + 1.0, 1)
print(f"final sampled token {token.item()}")
