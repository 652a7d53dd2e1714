"""Data parallelism: DDP scripts become one JAX program over a device mesh. The samplers and loaders are compared with
torch's (every rank), a DDP script run by torch on 2 gloo processes is compared with its translation run as one
process on 2 CPU devices, and the collectives the translator cannot place are reported."""
from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import TensorDataset as TorchTensorDataset
from torch.utils.data.distributed import DistributedSampler as TorchDistributedSampler

import torch2jax.runtime as t2j
from torch2jax import translate

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "cases"


def _torch_imports(code: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "torch"]
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            found.append(node.module)
    return found


# ------------------------------------------------------------------ samplers and loaders against torch's

@pytest.mark.parametrize("n,replicas,shuffle,seed,drop_last", [
    (91, 2, True, 3, False), (91, 2, True, 0, True), (10, 4, False, 0, False), (7, 3, True, 11, False),
    (1000, 2, True, 0, False), (5, 8, True, 2, False)])
def test_distributed_sampler_matches_torch_on_every_rank(n, replicas, shuffle, seed, drop_last):
    data = list(range(n))
    ours = t2j.parallel.DistributedSampler(data, num_replicas=replicas, shuffle=shuffle, seed=seed,
                                           drop_last=drop_last)
    for epoch in (0, 1, 5):
        ours.set_epoch(epoch)
        for rank in range(replicas):
            theirs = TorchDistributedSampler(data, num_replicas=replicas, rank=rank, shuffle=shuffle, seed=seed,
                                             drop_last=drop_last)
            theirs.set_epoch(epoch)
            assert ours.rank_indices(rank) == list(theirs), (epoch, rank)
            assert len(ours) == len(theirs)


@pytest.mark.parametrize("drop_last", [False, True])
def test_global_batches_are_the_ranks_batches_in_rank_order(drop_last):
    """Batch k of the translated loader holds batch k of rank 0, then of rank 1: the samples of one DDP step."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((23, 3)).astype(np.float32), rng.integers(0, 5, 23)
    torch_set = TorchTensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    ours = t2j.parallel.DataLoader(t2j.data.TensorDataset(jnp.asarray(X), jnp.asarray(y)), batch_size=4,
                                   sampler=t2j.parallel.DistributedSampler(range(23), num_replicas=2, seed=1),
                                   drop_last=drop_last, mesh=t2j.parallel.data_mesh())
    ranks = [list(TorchDataLoader(torch_set, batch_size=4, drop_last=drop_last, sampler=TorchDistributedSampler(
        torch_set, num_replicas=2, rank=r, seed=1))) for r in range(2)]
    batches = list(ours)
    assert len(batches) == len(ours) == len(ranks[0])
    for (xb, yb), parts in zip(batches, zip(*ranks)):
        np.testing.assert_array_equal(np.asarray(xb), torch.cat([p[0] for p in parts]).numpy())
        np.testing.assert_array_equal(np.asarray(yb), torch.cat([p[1] for p in parts]).numpy())


# ------------------------------------------------------------------ a DDP script: torch on gloo vs the translation

SPY = """\
import runpy, sys
import jax
import torch2jax.runtime.parallel as parallel
shard = parallel.shard_batch
specs = set()
def spy(tree, mesh, axis_name="data"):
    out = shard(tree, mesh, axis_name)
    for leaf in jax.tree.leaves(out):
        specs.add((str(leaf.sharding.spec), len(leaf.sharding.device_set)))
    return out
parallel.shard_batch = spy
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
print("SHARDINGS", sorted(specs))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+\.\d+", text)]


def test_ddp_script_matches_torch_gloo(tmp_path):
    """tests/cases/ddp_classifier.py: torch on 2 gloo processes (mp.spawn) and its CLI translation as one process on
    2 CPU devices print the same losses on every step and the same accuracies."""
    script = CASES / "ddp_classifier.py"
    out = tmp_path / "ddp_jax.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "OMP_NUM_THREADS": "1"}
    cli = subprocess.run([sys.executable, "-m", "torch2jax", "translate", str(script), "-o", str(out)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert cli.returncode == 0, cli.stderr
    code = out.read_text()
    assert _torch_imports(code) == [], code
    assert 'jax.sharding.Mesh(jax.devices(), ("data",))' in code
    body = code.split('"""', 2)[2]  # after the docstring
    assert "t2j.parallel.DataLoader(" in body and "mesh=" in body and "net = t2j.parallel.replicate(net" in body
    assert "ddp_model" not in body and ".data.shape" not in body  # the wrapper is the model; .data is the array
    assert "model, opt_state, loss = train_step(" in body  # in train_epoch, whose model is the caller's ddp_model
    assert "spawn" not in body and "all_reduce" not in body and ".module" not in body
    (tmp_path / "spy.py").write_text(SPY)
    jax_run = subprocess.Popen([sys.executable, str(tmp_path / "spy.py"), str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    torch_run = subprocess.run([sys.executable, str(script), str(_free_port())], capture_output=True, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    jax_out, jax_err = jax_run.communicate(timeout=300)
    assert torch_run.returncode == 0, torch_run.stderr[-3000:]
    assert jax_run.returncode == 0, jax_err[-3000:]
    torch_lines = torch_run.stdout.strip().splitlines()
    jax_lines = [line for line in jax_out.strip().splitlines() if not line.startswith("SHARDINGS")]
    assert len(torch_lines) == len(jax_lines) == 16 + 2
    for t_line, j_line in zip(torch_lines, jax_lines):
        assert re.sub(r"-?\d+\.\d+", "#", t_line) == re.sub(r"-?\d+\.\d+", "#", j_line)
        np.testing.assert_allclose(_numbers(j_line), _numbers(t_line), atol=2e-6, err_msg=j_line)
    # every batch the loaders yielded was split over both devices along the data axis
    assert "SHARDINGS [(\"P('data',)\", 2)]" in jax_out, jax_out[-500:]


def test_ddp_around_a_constructor_call():
    source = ("import torch\nimport torch.nn as nn\nimport torch.distributed as dist\n"
              "from torch.nn.parallel import DistributedDataParallel as DDP\n\n\n"
              "def run(rank, net_cls):\n    dist.init_process_group('gloo', rank=rank, world_size=2)\n"
              "    model = DDP(nn.Linear(3, 2).to(rank), device_ids=None)\n    return model.module(torch.ones(3))\n")
    result = translate(source, filename="t.py")
    assert _torch_imports(result.code) == []
    assert "model = t2j.nn.Linear(3, 2" in result.code and "model = t2j.parallel.replicate(model, mesh)" in result.code
    assert "return model(jnp.ones(3))" in result.code


def test_ddp_train_case_translation():
    """tests/cases/ddp_train.py (the DDP alias, the all_reduce + division idiom, all-reduced counts)."""
    result = translate((CASES / "ddp_train.py").read_text(), filename="ddp_train.py")
    assert _torch_imports(result.code) == []
    assert not [d for d in result.diagnostics if d.code.startswith("T2J61") and d.severity != "info"]
    assert "ddp_model" not in result.code and "all_reduce" not in result.code
    assert "train(jax.process_index(), WORLD_SIZE, key=key)" in result.code


# ------------------------------------------------------------------ collectives: what each becomes

HEAD = """import torch
import torch.distributed as dist
import torch.nn.functional as F


def run(rank, world_size, model, loader):
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
"""


def _run_body(body: str):
    source = HEAD + "".join("    " + line + "\n" for line in body.strip().splitlines())
    result = translate(source, filename="t.py")
    return result, {d.code for d in result.diagnostics}


def test_avg_of_a_count_is_divided():
    result, codes = _run_body("""
total = 0
for xb, yb in loader:
    total += yb.shape[0]
t = torch.tensor(total)
dist.all_reduce(t, op=dist.ReduceOp.AVG)
print(t.item())""")
    assert "t = t / jax.device_count()" in result.code and "T2J615" in codes


def test_sum_of_a_mean_is_scaled():
    result, codes = _run_body("""
for xb, yb in loader:
    loss = F.mse_loss(model(xb), yb)
    dist.all_reduce(loss)
    print(loss.item())""")
    assert "loss = loss * jax.device_count()" in result.code and "T2J615" in codes


def test_collective_on_an_unknown_value_is_marked():
    result, codes = _run_body("""
stats = model.stats()
dist.all_reduce(stats, op=dist.ReduceOp.MAX)
print(stats)""")
    assert "T2J616" in codes and "# torch2jax: T2J616" in result.code
    assert "all_reduce" not in result.code.split("# torch2jax")[0]


def test_collective_on_an_expression_is_left_with_an_error():
    result, codes = _run_body("""
stats = [torch.zeros(3)]
dist.all_reduce(stats[0])""")
    errors = [d for d in result.diagnostics if d.code == "T2J617"]
    assert errors and errors[0].severity == "error"
    assert "dist.all_reduce(stats[0])  # torch2jax: T2J617" in result.code


def test_fsdp_tensor_parallel_and_all_gather_are_marked_on_their_statements():
    result, codes = _run_body("""
model = FSDP(model)
tp = parallelize_module(model, None, {})
out = model(torch.ones(4, 8))
gathered = [torch.zeros_like(out) for _ in range(world_size)]
dist.all_gather(gathered, out)""".replace("FSDP", "torch.distributed.fsdp.FullyShardedDataParallel").replace(
        "parallelize_module", "torch.distributed.tensor.parallel.parallelize_module"))
    lines = result.code.splitlines()
    assert {"T2J613", "T2J614", "T2J616"} <= codes
    assert not [line for line in lines if line.startswith("def ") and "torch2jax:" in line]  # not on the def line
    i = next(k for k, line in enumerate(lines) if "t2j.parallel.fsdp(model, mesh)" in line)
    assert "T2J613" in lines[i] or "T2J613" in lines[i - 1]
    assert any("parallelize_module(" in line and "T2J614" in line for line in lines)
    i = next(k for k, line in enumerate(lines) if "gathered = t2j.parallel.split_global(out, len(gathered))" in line)
    assert "T2J616" in lines[i] or "T2J616" in lines[i - 1]


def test_no_sync_context_is_removed():
    result, codes = _run_body("""
ddp = torch.nn.parallel.DistributedDataParallel(model)
for x, y in loader:
    with ddp.no_sync():
        out = ddp(x)
    print(out)""")
    assert "no_sync" not in result.code and "        out = model(x)\n        print(out)" in result.code


def test_reduce_to_rank_zero_of_a_count():
    result, codes = _run_body("""
correct = 0
for xb, yb in loader:
    correct += (model(xb).argmax(1) == yb).sum().item()
t = torch.tensor(correct)
dist.reduce(t, 0)
print(t.item())""")
    assert "T2J615" in codes and "T2J616" not in codes and "reduce" not in result.code
