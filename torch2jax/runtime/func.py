"""torch.func and torch.autograd.functional on JAX's transforms, where the torch API does not map name for name.

Most of torch.func is JAX under another name and the translation calls JAX directly (`vmap` -> `jax.vmap`,
`grad` -> `jax.grad`, `vjp`/`jvp`/`jacrev`/`jacfwd`/`hessian` -> the same in `jax`). What is here:

- `grad_and_value(f, argnums, has_aux)`: torch's order, `(grad, value)` (jax.value_and_grad gives `(value, grad)`);
  the translator swaps the targets instead when the result is unpacked on the spot.
- `functional_call(module, params, args, kwargs)`: call a module with other parameters. `params` is
    * an Equinox module (what `stack_module_state` returns, sliced by `eqx.filter_vmap`): the module *is* its
      parameters, so it is called itself (Equinox's way; `module` only gives the structure in torch);
    * a dict of torch names -> arrays (`dict(t2j.named_parameters(model))`, a checkpoint, a dict transformed by
      jax.grad/vmap), or a tuple/list of such dicts (params, buffers): each named leaf of `module` is replaced
      (names as in `state_dict`; missing names keep the module's value, like torch's `strict=False`).
  Buffers held in Equinox state (BatchNorm's running statistics) are not replaced.
- `stack_module_state(models)`: the Equinox ensemble: one module whose arrays are the models' arrays stacked on a
  new leading axis (`eqx.filter_vmap` over it runs every member), and an empty buffers dict. torch returns two
  dicts keyed by name; index the stacked module by attribute instead (`params.fc.weight`).
- `jacobian`, `hessian`, `vjp`, `jvp`, `hvp`, `vhp`: torch.autograd.functional's calling convention (a tensor or a
  tuple of tensors as `inputs`) on jax.jacrev/jacfwd/vjp/jvp.
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from torch2jax.runtime.state_dict import _named_leaves

__all__ = ["grad_and_value", "functional_call", "stack_module_state", "jacobian", "hessian", "vjp", "jvp", "hvp",
           "vhp"]


def grad_and_value(func, argnums=0, has_aux=False):
    """torch.func.grad_and_value: a function returning `(grad, value)` (with has_aux: `(grad, (value, aux))`)."""
    value_and_grad = jax.value_and_grad(func, argnums=argnums, has_aux=has_aux)

    def wrapped(*args, **kwargs):
        value, grad = value_and_grad(*args, **kwargs)
        return grad, value

    return wrapped


def _merge_dicts(params):
    if isinstance(params, dict):
        return dict(params)
    merged = {}
    for d in params:
        if isinstance(d, dict):
            merged.update(d)
    return merged


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights=True, strict=False):
    """torch.func.functional_call: `module(*args, **kwargs)` computed with the given parameters."""
    args = () if args is None else args
    args = args if isinstance(args, tuple) else (args,)
    kwargs = kwargs or {}
    params = parameter_and_buffer_dicts
    if isinstance(params, (tuple, list)) and params and isinstance(params[0], eqx.Module):
        params = params[0]  # (stacked module, buffers) from stack_module_state
    if isinstance(params, eqx.Module):
        return params(*args, **kwargs)
    values = _merge_dicts(params)
    named, treedef = _named_leaves(module)
    known = {key for key, _ in named if key is not None}
    if strict:
        missing = sorted(known - values.keys())
        unexpected = sorted(values.keys() - known)
        if missing or unexpected:
            raise ValueError(f"functional_call: missing keys {missing}, unexpected keys {unexpected}")
    leaves = [values[key] if key in values and not isinstance(leaf, eqx.nn.StateIndex) else leaf
              for key, leaf in named]
    return jax.tree_util.tree_unflatten(treedef, leaves)(*args, **kwargs)


def stack_module_state(models):
    """torch.func.stack_module_state: `(ensemble, buffers)` where `ensemble` is one module holding every model's
    arrays stacked on axis 0 (the models must share one structure); `buffers` is `{}`."""
    models = list(models)
    if not models:
        raise ValueError("stack_module_state: expected at least one model")

    def stack(*leaves):
        return jnp.stack(leaves) if eqx.is_array(leaves[0]) else leaves[0]

    return jax.tree.map(stack, *models), {}


def _as_tuple(inputs):
    return (inputs, False) if isinstance(inputs, tuple) else ((inputs,), True)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """torch.autograd.functional.jacobian: a tensor `inputs` gives one Jacobian, a tuple a tuple of them."""
    inputs, single = _as_tuple(inputs)
    transform = jax.jacfwd if strategy == "forward-mode" else jax.jacrev
    return transform(func, argnums=0 if single else tuple(range(len(inputs))))(*inputs)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """torch.autograd.functional.hessian: a tensor `inputs` gives the Hessian, a tuple a tuple of tuples."""
    inputs, single = _as_tuple(inputs)
    return jax.hessian(func, argnums=0 if single else tuple(range(len(inputs))))(*inputs)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """torch.autograd.functional.vjp: `(func(inputs), v^T J)`; v may be omitted for a scalar output."""
    inputs, single = _as_tuple(inputs)
    out, pullback = jax.vjp(func, *inputs)
    v = jnp.ones_like(out) if v is None else v
    grads = pullback(v)
    return out, grads[0] if single else grads


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """torch.autograd.functional.jvp: `(func(inputs), J v)`; v may be omitted for a scalar input."""
    inputs, single = _as_tuple(inputs)
    if v is None:
        v = tuple(jnp.ones_like(x) for x in inputs)
    v, _ = _as_tuple(v)
    return jax.jvp(func, inputs, v)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """torch.autograd.functional.vhp: `(func(inputs), v^T H)` for a scalar function."""
    inputs, single = _as_tuple(inputs)
    v, _ = _as_tuple(v)
    out = func(*inputs)
    grad = jax.grad(func, argnums=tuple(range(len(inputs))))
    _, pullback = jax.vjp(grad, *inputs)
    result = pullback(v)
    return out, result[0] if single else result


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """torch.autograd.functional.hvp: `(func(inputs), H v)` (forward-over-reverse)."""
    inputs, single = _as_tuple(inputs)
    v, _ = _as_tuple(v)
    out = func(*inputs)
    grad = jax.grad(func, argnums=tuple(range(len(inputs))))
    _, tangent = jax.jvp(grad, inputs, v)
    return out, tangent[0] if single else tangent
