"""torch.func and imperative autograd: each function is translated and compared with torch on the same inputs
(tests/test_transforms.py)."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, grad_and_value, hessian, jacfwd, jacrev, stack_module_state, vmap


def per_example_grads(w, X, y):
    """vmap over grad: one gradient per example."""
    def loss(w, x, t):
        return ((x @ w - t) ** 2).sum()

    return vmap(grad(loss), in_dims=(None, 0, 0))(w, X, y)


def batched_dot(a, b):
    return torch.vmap(lambda u, v: (u * v).sum())(a, b)


def vmap_in_out_dims(x, y):
    """in_dims=(1, None), out_dims=1: map over x's columns, broadcast y, stack the results as columns."""
    return vmap(lambda col, row: col * row.sum() + col, in_dims=(1, None), out_dims=1)(x, y)


def nested_vmap(x, y):
    return vmap(vmap(lambda a, b: a * b + 1.0))(x, y)


def value_and_gradient(x):
    g, v = grad_and_value(lambda a: (a ** 3).sum() / 3)(x)
    return v, g


def grad_with_aux(x):
    g, aux = grad(lambda a: ((a ** 2).sum(), a.mean()), has_aux=True)(x)
    return g, aux


def jacobians(v, m):
    def f(a):
        return F.relu(a @ m) + a.sum() * 2.0

    return jacrev(f)(v), jacfwd(f)(v)


def hessian_diagonal(v, eye):
    h = hessian(lambda a: (a ** 4).sum() + (a[0] * a[1]))(v)
    return (h * eye).sum(1), h


def autograd_on_clone(x):
    """torch.autograd.grad on a cloned leaf, then a second-order gradient through create_graph=True."""
    x = x.clone().requires_grad_(True)
    y = (x ** 3).sum()
    g, = torch.autograd.grad(y, x, create_graph=True)
    z = (g ** 2).sum()
    g2, = torch.autograd.grad(z, x)
    return g, g2


def autograd_vjp(x, v):
    """A non-scalar output with grad_outputs: a vector-Jacobian product."""
    x = x.clone().requires_grad_()
    y = x * x + 2.0 * x
    gx, = torch.autograd.grad(y, x, grad_outputs=v)
    return gx


def backward_then_grad(x, w):
    """loss.backward() outside a training loop, then reading .grad."""
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    h = x @ w
    loss = (h ** 2).mean()
    loss.backward()
    return x.grad, w.grad


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def ensemble(models, x):
    """The torch.func ensembling recipe: stack the models' states, vmap a functional call over them."""
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def fmodel(params, buffers, x):
        return functional_call(base, (params, buffers), (x,))

    return vmap(fmodel, in_dims=(0, 0, None))(params, buffers, x)


def functional_grads(model, params, x, y):
    """Gradients with respect to a dict of parameters (torch names), through functional_call."""
    def loss(p):
        return ((functional_call(model, p, (x,)) - y) ** 2).mean()

    return grad(loss)(params)
