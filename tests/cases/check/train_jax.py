"""The checker's script fixture, JAX side (train_torch.py by hand)."""
import jax
import jax.numpy as jnp
import numpy as np

rng = np.random.default_rng(0)
x = jnp.asarray(rng.standard_normal((16, 3)), dtype=jnp.float32)
y = x @ jnp.asarray([[1.0], [-2.0], [0.5]]) + 0.3
w = jnp.zeros((3, 1))
b = jnp.zeros(1)


def loss_fn(w, b):
    return ((x @ w + b - y) ** 2).mean()


for step in range(5):
    loss, (gw, gb) = jax.value_and_grad(loss_fn, argnums=(0, 1))(w, b)
    w = w - 0.1 * gw
    b = b - 0.1 * gb
    print(f"step {step} loss {loss.item():.6f}")
print(f"final loss {loss_fn(w, b).item():.6f}")
