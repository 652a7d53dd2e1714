"""torch.func and autograd written the other ways people write them: module aliases (`import torch.func as tf`,
`from torch.func import vmap, grad`, `torch.vmap`), positional and keyword in_dims/out_dims/argnums, functions
passed by name, parameter dicts from named_parameters(), tuple inputs and grad_outputs in autograd.grad. Each
function is translated and compared with torch on the same inputs (tests/test_transforms.py)."""
import copy

import torch
import torch.func as tf
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state
from torch.func import grad, vmap

def per_sample_grads(w, b, X, Y):
    def loss_fn(w, b, x, y):
        pred = x @ w + b
        return F.mse_loss(pred, y)

    return vmap(grad(loss_fn, argnums=(0, 1)), in_dims=(None, None, 0, 0))(w, b, X, Y)


def per_sample_grads_tf(w, X, Y):
    def loss_fn(w, x, y):
        return ((torch.tanh(x @ w) - y) ** 2).sum()

    compute = tf.vmap(tf.grad(loss_fn), (None, 0, 0))
    return compute(w, X, Y)


def batched_dot(a, b):
    return torch.vmap(torch.dot)(a, b)


def batched_dot_kw(a, b):
    return vmap(lambda u, v: torch.dot(u, v), in_dims=(0, 0))(a, b)


def in_out_dims(x, y):
    return vmap(torch.outer, in_dims=(1, 0), out_dims=2)(x, y)


def in_out_positional(x, y):
    return tf.vmap(lambda c, r: c * r.sum(), (1, None), 1)(x, y)


def value_grad(w, x):
    g, v = tf.grad_and_value(lambda w, x: torch.sin(x @ w).sum(), argnums=0)(w, x)
    return g, v


def value_grad_direct(w, x):
    return tf.grad_and_value(lambda w, x: (x @ w).pow(2).mean(), argnums=(0, 1))(w, x)


def value_grad_aux(x):
    (g, (v, aux)) = tf.grad_and_value(lambda a: ((a ** 2).sum(), a.max()), has_aux=True)(x)
    return g, v, aux


def jacs(x, m):
    def f(a, mm):
        return torch.sin(a) @ mm

    jr = tf.jacrev(f, argnums=(0, 1))(x, m)
    jf = tf.jacfwd(f)(x, m)
    return jr[0], jr[1], jf


def hessian_diag(x):
    def f(a):
        return (a.exp() * a.sin()).sum()

    return torch.diagonal(tf.hessian(f)(x))


def hessian_diag_fwdrev(x):
    f = lambda a: (a ** 3 * a.roll(1)).sum()
    return tf.jacfwd(tf.jacrev(f))(x).diagonal()


def autograd_clone(x):
    xc = x.clone().requires_grad_(True)
    y = torch.sin(xc).pow(2).sum()
    (g,) = torch.autograd.grad(y, xc)
    return g


def autograd_clone_detach(x, w):
    x = x.detach().clone()
    x.requires_grad_()
    out = torch.tanh(x @ w).sum()
    g = torch.autograd.grad(outputs=out, inputs=[x])[0]
    return g


def autograd_create_graph(x):
    xl = x.clone().requires_grad_()
    y = (xl.sin() * xl).sum()
    (dy,) = torch.autograd.grad(y, xl, create_graph=True)
    return dy


def grad_tuple_inputs(x, w):
    x = x.clone().requires_grad_()
    w = w.clone().requires_grad_()
    loss = torch.tanh(x @ w).pow(2).mean()
    gx, gw = torch.autograd.grad(loss, (x, w))
    return gx, gw


def grad_ones_like(x):
    x = x.clone().requires_grad_(True)
    y = torch.sin(x) * x
    dy = torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y), create_graph=True)[0]
    d2y = torch.autograd.grad(dy, x, grad_outputs=torch.ones_like(dy))[0]
    return y, dy, d2y


def tensor_leaf(a):
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * a).sum() ** 2
    y.backward()
    return x.grad


def backward_expression(x):
    x = x.detach().requires_grad_()
    out = x.exp()
    out.sum().backward()
    return x.grad * 2


class SimpleMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = self.fc1(x)
        x = F.relu(x)
        return self.fc2(x)


def sample_grads(model, data, targets):
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def compute_loss(params, buffers, sample, target):
        batch = sample.unsqueeze(0)
        targets = target.unsqueeze(0)
        predictions = functional_call(model, (params, buffers), (batch,))
        loss = F.cross_entropy(predictions, targets)
        return loss

    ft_compute_grad = grad(compute_loss)
    ft_compute_sample_grad = vmap(ft_compute_grad, in_dims=(None, None, 0, 0))
    return ft_compute_sample_grad(params, buffers, data, targets)


def ensemble(models, minibatch):
    params, buffers = stack_module_state(models)
    base_model = copy.deepcopy(models[0])
    base_model = base_model.to('meta')

    def fmodel(params, buffers, x):
        return functional_call(base_model, (params, buffers), (x,))

    predict = vmap(fmodel, in_dims=(0, 0, None))
    return predict(params, buffers, minibatch)


def ensemble_params_only(models, minibatch):
    params, _ = stack_module_state(models)
    base_model = copy.deepcopy(models[0]).to('meta')
    return vmap(lambda p, x: functional_call(base_model, p, (x,)), in_dims=(0, None))(params, minibatch)


def ensemble_own_batches(models, xs):
    """Each member on its own minibatch: vmap's default in_dims=0 over the stacked states and the inputs."""
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def fmodel(p, b, x):
        return functional_call(base, (p, b), x)

    return vmap(fmodel)(params, buffers, xs)
