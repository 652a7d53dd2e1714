"""`torch2jax check`: one contract in three stages, each entry failing at the first stage it breaks.

1. interface: the public functions and nn.Module classes exist in the translation with compatible signatures, and
   the translation imports without torch;
2. numbers: outputs and gradients against torch's on probed or given inputs (functions: hypothesis-drawn values,
   failures shrunk; random functions: moments and key behaviour; modules: eval and train mode from torch's
   state_dict, buffers, gradients by state_dict key; random code with torch's draws replayed in JAX where it can be,
   replay.py);
3. training: a few SGD steps from the same weights (modules), or the printed losses of scripts (torch's random
   draws replayed in the translated run, script_replay.py).

User code runs in isolated processes with time and memory limits (isolation.py). Modules: interface.py, inputs.py,
compare.py, functions.py, modules.py, training.py (the stages), worker.py (what the isolated worker does),
runner.py (the checker's side), report.py.
"""
from torch2jax.check.report import Report, StageResult
from torch2jax.check.runner import check

__all__ = ["check", "Report", "StageResult"]


class _CallableModule(type(__import__("sys"))):
    """Importing this package makes `torch2jax.check` the package, not the function (the import system sets the
    attribute): let the package be called like the function."""

    def __call__(self, *args, **kwargs):
        return check(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
