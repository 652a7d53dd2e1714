"""Runtime support imported by translated code: needs jax, equinox and optax only (never torch, never libcst).

Translated files do `import torch2jax.runtime as t2j` and call `t2j.nn.Linear(...)`, `t2j.topk(...)`, etc.
"""
from torch2jax.runtime import nn
from torch2jax.runtime.ops import *  # noqa: F401,F403  (tensor-op helpers where jnp's semantics differ from torch's)
from torch2jax.runtime import optim  # torch.optim optimizers and optim.lr_scheduler, torch's exact rules
from torch2jax.runtime.accumulate import accumulate_grads  # noqa: F401  (gradient accumulation)
from torch2jax.runtime.clip_grad import clip_grad_norm, clip_grad_norm_with_norm, clip_grad_value  # noqa: F401
from torch2jax.runtime import init
from torch2jax.runtime.state_dict import StateDictError, load_state_dict, to_state_dict
from torch2jax.runtime.serialization import load, save  # noqa: F401  (torch.save / torch.load)
from torch2jax.runtime.losses import *  # noqa: F401,F403  (torch.nn.functional losses and the nn.*Loss modules)
from torch2jax.runtime.random import Generator, cuda_manual_seed, fold_in, manual_seed, multinomial, split_key  # noqa: F401,E501
from torch2jax.runtime.params import (named_buffers, named_parameters, parameters, replace_parameters,  # noqa: F401
                                      replace_parameters_in_init)
from torch2jax.runtime import data  # torch.utils.data without torch
from torch2jax.runtime.module_apply import apply, apply_in_init  # noqa: F401  (Module.apply(fn))
from torch2jax.runtime.ties import finish_ties_in_init, share_in_init, tie_in_init, tied  # noqa: F401  (weight tying)
from torch2jax.runtime import amp, func, parallel  # torch.func helpers, mixed precision, data parallelism (issue 12)
