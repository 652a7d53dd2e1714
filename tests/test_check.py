"""`torch2jax check`: hand-written translations pass every stage; planted bugs fail, named by entry and stage;
raising, hanging and crashing code is isolated; the CLI's exit codes, summary and JSON.

The checks share one isolated worker per test process (TORCH2JAX_CHECK_KEEP_WORKER): importing torch and jax
costs seconds on this machine, and the worker forks a fresh child after a hang or a crash anyway.
"""
from __future__ import annotations

import inspect
import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from torch2jax.check import check
from torch2jax.check import interface as itf
from torch2jax.check.compare import compare_arrays, compare_trees
from torch2jax.check.inputs import parse_spec
from torch2jax.check.training import compare_outputs
from torch2jax.cli import app

CASES = Path(__file__).parent / "cases" / "check"
TORCH, JAX = CASES / "ops_torch.py", CASES / "ops_jax.py"


@pytest.fixture(autouse=True)
def shared_worker(monkeypatch):
    monkeypatch.setenv("TORCH2JAX_CHECK_KEEP_WORKER", "1")


def stages(report, name):
    return {r.stage: r for r in report.find(name)}


# ---------------------------------------------------------------------------------------------- no worker
def test_import_is_cheap_and_check_is_callable():
    code = ("import sys, torch2jax; from torch2jax import check; import torch2jax.check as c; "
            "assert callable(check) and callable(c.check); "
            "print(sorted(m for m in ('torch', 'jax', 'numpy', 'hypothesis') if m in sys.modules))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_signature_rules():
    def sig(src):
        ns = {}
        exec(src, ns)
        return inspect.signature(ns["f"])

    ok = itf.compare_signatures(sig("def f(x, y=2.0): pass"), sig("def f(x, y=2.0, *, key): pass"), "f")
    assert ok == []
    assert itf.compare_signatures(sig("def f(x, state): pass"), sig("def f(x, state): pass"), "f") == []
    assert itf.compare_signatures(sig("def f(model, x): pass"), sig("def f(model, state, x): pass"), "f") == []
    threaded = sig("def f(loader, enc, enc_opt, enc_opt_state, dec, *, key): pass")  # an optimizer's state
    assert itf.compare_signatures(sig("def f(loader, enc, enc_opt, dec): pass"), threaded, "f") == []
    assert itf.compare_signatures(sig("def f(loader, enc, dec): pass"), threaded, "f") != []
    swapped = itf.compare_signatures(sig("def f(x, y): pass"), sig("def f(y, x): pass"), "f")
    assert swapped and "positional parameters (x, y) became (y, x)" in swapped[0]
    default = itf.compare_signatures(sig("def f(x, p=0.5): pass"), sig("def f(x, p=0.1): pass"), "f")
    assert default == ["f: default of p changed from 0.5 to 0.1"]
    extra = itf.compare_signatures(sig("def f(x): pass"), sig("def f(x, *, rng): pass"), "f")
    assert extra == ["f: new required parameter rng"]


def test_file_shape():
    assert itf.file_shape("import torch\nx = 1\ndef f(): pass\n").is_script is False
    assert itf.file_shape("import torch\nfor i in range(3):\n    print(i)\n").is_script is True
    guarded = itf.file_shape("def main(): pass\nif __name__ == '__main__':\n    main()\n")
    assert not guarded.is_script and guarded.has_main_guard and guarded.main_calls == {"main"}


def test_tolerances_and_specs():
    import numpy as np

    a = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    assert compare_arrays(a, a + 5e-6, "x").ok
    bad = compare_arrays(a, a * 1.01, "x")
    assert not bad.ok and "elements differ beyond rtol=0.0001" in bad.message
    assert compare_arrays(a.astype(np.float16), (a * 1.005).astype(np.float16), "x").ok  # float16: rtol 1e-2
    assert not compare_arrays(np.arange(3), np.arange(3) + 1, "i").ok  # ints exact
    assert "shape torch (3, 4) vs JAX (4, 3)" in compare_arrays(a, a.T, "x").message
    assert "torch returns 2 value(s)" in compare_trees((a, a), a).message
    assert parse_spec("x: float32[8,3,32,32]").shape == (8, 3, 32, 32)
    spec = parse_spec("idx: int64[4]:0..9")
    assert (spec.dtype, spec.lo, spec.hi, spec.format()) == ("int64", 0, 9, "idx: int64[4]:0..9")
    assert parse_spec("dim: 1").value == 1


def test_printed_metrics_compare():
    torch_out = "epoch 0\nstep 0 loss 0.693147\nstep 1 loss 0.512300\ntook 3.2 s\nfinal accuracy 0.7500\n"
    assert compare_outputs(torch_out, torch_out.replace("0.512300", "0.512301").replace("3.2", "9.9")).ok
    c = compare_outputs(torch_out, torch_out.replace("0.512300", "0.530000"))
    assert not c.ok and "metric line 3: torch 'step 1 loss 0.512300'" in c.message
    assert not compare_outputs(torch_out, "step 0 loss 0.693147\n").ok
    # a model printed by each side in its own form (torch's repr, Equinox's) is not a metric of both
    torch_repr = "(1): BatchNorm2d(128, eps=1e-05, momentum=0.1, affine=True)\n" + torch_out
    jax_repr = "marker='Generator.main.layers[1].num_batches_tracked',\n" + torch_out
    assert compare_outputs(torch_repr, jax_repr).ok
    assert not compare_outputs(torch_repr, jax_repr.replace("0.512300", "0.530000")).ok


# ---------------------------------------------------------------------------------------------- end to end
FUNCTIONS = ["scaled_softplus", "leaky_mix", "normalize_rows", "gram", "squash", "gated", "pick", "noisy_pair"]
MODULES = ["MLP", "ConvBN", "Tagger", "Stack"]


def test_hand_written_functions_pass():
    report = check(TORCH, JAX, entries=FUNCTIONS, examples=2, timeout=120)
    assert report.ok, report.format()
    for fn in FUNCTIONS:
        assert [(r.stage, r.status) for r in report.find(fn)] == [("interface", "PASS"), ("numbers", "PASS")], fn
    assert "outputs and gradients match" in stages(report, "leaky_mix")["numbers"].message
    assert "idx: int64[3,4]:0..2 (probed)" in stages(report, "pick")["numbers"].inputs
    assert "random" in stages(report, "noisy_pair")["numbers"].message
    assert report.summary() == "8 passed, 0 failed, 0 skipped"


def test_hand_written_modules_pass_every_stage():
    report = check(TORCH, JAX, entries=MODULES, args={"Stack": (4, 2)}, timeout=120)
    assert report.ok, report.format()
    for module in MODULES:
        assert [(r.stage, r.status) for r in report.find(module)] == [
            ("interface", "PASS"), ("numbers", "PASS"), ("training", "PASS")], module
    assert "tokens: int64[3,5]:0..10 (probed from Embedding)" in stages(report, "Tagger")["numbers"].inputs
    assert "x: float32[3,3,16,16] (probed from Conv2d)" in stages(report, "ConvBN")["numbers"].inputs
    assert "outputs, buffers and gradients match" in stages(report, "ConvBN")["numbers"].message
    assert report.summary() == "4 passed, 0 failed, 0 skipped"
    skipped = check(TORCH, JAX, entries=["Stack"], timeout=120)  # no constructor arguments given
    assert skipped.find("Stack", "numbers")[0].status == "SKIP" and "--args 'Stack=(...)'" in skipped.format()
    assert skipped.summary() == "0 passed, 0 failed, 1 skipped"


MUTATIONS = {  # name: (entry, the correct text, the planted bug, what the failure says)
    "constant": ("leaky_mix", "+ 0.5 * y", "+ 0.25 * y", "output: 12 of 12 elements differ"),
    "axis": ("normalize_rows", "axis=-1, keepdims", "axis=0, keepdims", "elements differ"),
    "bias": ("ConvBN", "return self.head(x.mean(axis=(2, 3))), state",
             "return x.mean(axis=(2, 3)) @ self.head.weight.T, state", "eval output"),
    "transpose": ("gram", "x @ jnp.swapaxes(x, -2, -1)", "jnp.swapaxes(x, -2, -1) @ x",
                  "shape torch (3, 3) vs JAX (4, 4)"),
    "reused_key": ("noisy_pair", "    key, subkey = jax.random.split(key)\n    b =", "    b =", "one key used for two"),
    "stop_gradient": ("gated", "x * jax.nn.sigmoid(y)", "x * jax.lax.stop_gradient(jax.nn.sigmoid(y))",
                      "gradient of y"),
    "overflow": ("scaled_softplus", "jax.nn.softplus(x * beta) / beta", "jnp.log(1 + jnp.exp(x * beta)) / beta",
                 "vs JAX inf"),
    # wrong only when the first value lies in (0.5, 3): the probed example and the edge sweep miss it, hypothesis
    # finds it and shrinks it
    "band": ("squash", "return jnp.tanh(x)", "first = x.reshape(-1)[:1].sum()\n"
             "    return jnp.where((first > 0.5) & (first < 3), jnp.tanh(x) + 1, jnp.tanh(x))", "elements differ"),
    "module_stop_gradient": ("MLP", "jnp.tanh(self.fc1(x))", "jnp.tanh(jax.lax.stop_gradient(self.fc1(x)))",
                             "gradient of fc1.weight"),
}


def test_planted_bugs_fail_naming_entry_and_stage(tmp_path):
    orig, jax_dir = tmp_path / "torch", tmp_path / "jax"
    orig.mkdir()
    jax_dir.mkdir()
    source = JAX.read_text()
    for name, (entry, good, bad, _) in MUTATIONS.items():
        assert source.count(good) == 1, name
        shutil.copy(TORCH, orig / f"{name}.py")
        (jax_dir / f"{name}.py").write_text(source.replace(good, bad))
    entries = [f"{name}.py::{entry}" for name, (entry, *_) in MUTATIONS.items()]
    report = check(orig, jax_dir, entries=entries, examples=20, timeout=120)
    assert report.summary() == f"0 passed, {len(MUTATIONS)} failed, 0 skipped", report.format()
    for name, (entry, _, _, says) in MUTATIONS.items():
        results = report.find(f"{name}.py::{entry}")
        assert [(r.stage, r.status) for r in results] == [("interface", "PASS"), ("numbers", "FAIL")], name
        assert says in results[-1].message, (name, results[-1].message)
    first = stages(report, "constant.py::leaky_mix")["numbers"]
    assert any(line.startswith("failing example: x: float32[3,4], y: float32[3,4]") for line in first.details)
    # the probed example passes; the sweep of edge values finds large values that overflow
    overflow = stages(report, "overflow.py::scaled_softplus")["numbers"]
    assert "failing example: x: float32[3,4] (large values, seed 0)" in overflow.details, overflow.format()
    band = stages(report, "band.py::squash")["numbers"]
    assert band.details[0].startswith("shrunk failing example: x: float32[3,4] (hypothesis values"), band.format()


def test_interface_failures(tmp_path):
    orig, jax_dir = tmp_path / "torch", tmp_path / "jax"
    orig.mkdir()
    jax_dir.mkdir()
    shutil.copy(TORCH, orig / "ops.py")
    source = JAX.read_text()
    source = source.replace("def gated(x, y):", "def gated(y, x):")
    source = source.replace("def scaled_softplus(x, beta: float = 2.0):", "def scaled_softplus(x, beta: float = 3.0):")
    source = source.replace("def pick(x, idx):\n    return x[idx].sum(-1)\n", "")
    source = source.replace("    def __call__(self, tokens, *, key=None):", "    def __call__(self, tokens):")
    (jax_dir / "ops.py").write_text(source)
    shutil.copy(TORCH, orig / "leaky.py")
    (jax_dir / "leaky.py").write_text("import torch\n" + JAX.read_text())
    report = check(orig, jax_dir, entries=["ops.py::gated", "ops.py::scaled_softplus", "ops.py::pick",
                                           "ops.py::Tagger", "leaky.py::gram", "nothing_like_this"], timeout=120)
    msgs = {r.name: r.message for r in report.results}
    assert all(r.stage == "interface" and r.status == "FAIL" for r in report.results), report.format()
    assert "positional parameters (x, y) became (y, x)" in msgs["ops.py::gated"]
    assert "default of beta changed from 2.0 to 3.0" in msgs["ops.py::scaled_softplus"]
    assert "pick is missing from the translation" in msgs["ops.py::pick"]
    assert "does not accept key=None" in msgs["ops.py::Tagger"]
    assert msgs["leaky.py::gram"].startswith("the translation imports torch (torch)")
    assert "no such public function" in report.find("nothing_like_this")[0].message


def test_raise_hang_and_crash_are_isolated():
    start = time.monotonic()
    report = check(CASES / "faulty_torch.py", CASES / "faulty_jax.py", timeout=10, examples=2)
    elapsed = time.monotonic() - start
    got = {r.entry: (r.status, r.message) for r in report.results if r.stage == "numbers"}
    text = report.format()
    assert got["Raises"][0] == "FAIL" and "JAX raised where torch ran: RuntimeError: boom" in got["Raises"][1], text
    assert got["Hangs"] == ("ERROR", "timed out after 10 s (killed)"), text
    assert got["crashes"][0] == "ERROR" and "exited with status 3" in got["crashes"][1], text
    assert got["double"][0] == "PASS" and got["shift"][0] == "PASS", text  # shift runs after the hang and the crash
    assert got["hog"][0] == "FAIL" and "MemoryError" in got["hog"][1], text  # the memory limit
    assert report.summary() == "2 passed, 4 failed (2 errors), 0 skipped"
    assert elapsed < 90


def test_scripts_compare_printed_losses(tmp_path):
    report = check(CASES / "train_torch.py", CASES / "train_jax.py", timeout=120)
    assert [(r.stage, r.status) for r in report.results] == [("interface", "PASS"), ("training", "PASS")], \
        report.format()
    assert "6 printed metric lines match" in report.results[-1].message
    wrong = tmp_path / "train_jax.py"
    wrong.write_text((CASES / "train_jax.py").read_text().replace("b = b - 0.1 * gb", "b = b - 0.2 * gb"))
    report = check(CASES / "train_torch.py", wrong, timeout=120)
    last = report.results[-1]
    assert (last.stage, last.status) == ("training", "FAIL") and "metric line 2: torch 'step 1 loss" in last.message


runner = CliRunner()


def test_cli_exit_codes_summary_and_json(tmp_path):
    result = runner.invoke(app, ["check", str(TORCH), str(JAX), "--entry", "gram", "--entry", "Tagger",
                                 "--examples", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "2 passed, 0 failed, 0 skipped"
    assert any(line.startswith("PASS  ") and "::Tagger [training]" in line for line in lines)

    bad = tmp_path / "ops_jax.py"
    bad.write_text(JAX.read_text().replace("+ 0.5 * y", "+ 0.25 * y"))
    result = runner.invoke(app, ["check", str(TORCH), str(bad), "--entry", "leaky_mix", "--entry", "gram",
                                 "--input", "x: float32[2,5]", "--input", "y: float32[2,5]", "--examples", "2",
                                 "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["summary"] == "1 passed, 1 failed, 0 skipped" and data["exit_code"] == 1
    assert data["entries"] == {f"{TORCH}::leaky_mix": "FAIL", f"{TORCH}::gram": "PASS"}
    failed = [r for r in data["results"] if r["status"] == "FAIL"][0]
    assert failed["stage"] == "numbers" and failed["inputs"] == "x: float32[2,5], y: float32[2,5] (given)"

    result = runner.invoke(app, ["check", str(tmp_path / "missing.py")])
    assert result.exit_code == 2 and "no such file" in result.stderr
    result = runner.invoke(app, ["check", str(TORCH), str(JAX), "--input", "x float32[3]"])
    assert result.exit_code == 2 and "expected NAME: SPEC" in result.stderr


def test_translator_output_is_checked():
    """The translator's own output for tests/cases/torch_modules.py: whatever the state of the translation, every
    entry gets a verdict at some stage, and the checker itself never errs."""
    report = check(Path(__file__).parent / "cases" / "torch_modules.py", entries=["MLP", "Base"], allow_torch=True,
                   args={"Base": (4,)}, timeout=120)
    assert {r.entry for r in report.results} == {"MLP", "Base"}
    assert not [r for r in report.results if "checker error" in r.message], report.format()


def test_integer_inputs_index_every_embedding_table(tmp_path):
    """A user id and an item id index tables of different sizes: the probed ids stay inside the smaller one (drawn
    up to the first table's size, torch raises an index error and the module could not be checked)."""
    source = tmp_path / "factorization.py"
    source.write_text(
        "import torch\nimport torch.nn as nn\n\n\n"
        "class Factorization(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.users = nn.Embedding(30, 4)\n"
        "        self.items = nn.Embedding(6, 4)\n\n"
        "    def forward(self, user, item):\n"
        "        return (self.users(user) * self.items(item)).sum(-1)\n")
    report = check(source, entries=["Factorization"], timeout=120)
    assert report.ok, report.format()
    assert stages(report, "Factorization")["numbers"].inputs == \
        "user: int64[3,5]:0..5, item: int64[3,5]:0..5 (probed from Embedding)"


def test_functions_returning_numpy_arrays_are_checked(tmp_path):
    """A data helper that returns a numpy array (no tensor, no gradient): compared, not a checker error."""
    source = tmp_path / "series.py"
    source.write_text("import numpy as np\nimport torch\n\n\n"
                      "def scaled(x):\n"
                      "    return torch.tanh(x) * 2.0, np.ones(3, dtype=np.float32)\n")
    report = check(source, entries=["scaled"], timeout=120)
    assert report.ok and report.summary() == "1 passed, 0 failed, 0 skipped", report.format()


def test_a_module_without_forward_passes_the_interface_stage(tmp_path):
    """A module used through its other methods (a DDPM's loss and sample): no forward, so no __call__ to compare
    (it failed with "__call__ does not accept key=None")."""
    source = tmp_path / "schedule.py"
    source.write_text("import torch\nimport torch.nn as nn\n\n\n"
                      "class Schedule(nn.Module):\n"
                      "    def __init__(self):\n"
                      "        super().__init__()\n"
                      "        self.net = nn.Linear(3, 3)\n\n"
                      "    def loss(self, x):\n"
                      "        return (self.net(x) ** 2).mean()\n")
    report = check(source, entries=["Schedule"], timeout=120)
    assert stages(report, "Schedule")["interface"].status == "PASS", report.format()
    assert report.ok, report.format()


def test_a_probed_example_torch_rejects_with_gradients_is_skipped(tmp_path):
    """Probing runs torch without gradients; LLaMA's precompute_freqs_cis(dim, end) with a float tensor for `end`
    then fails in the checked run (arange of a tensor that requires grad): the inputs were the checker's guess, so
    the verdict is SKIP, not a checker error."""
    source = tmp_path / "rope.py"
    source.write_text("import torch\n\n\ndef ramp(dim, end):\n"
                      "    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))\n"
                      "    return torch.outer(torch.arange(end), freqs)\n")
    report = check(source, entries=["ramp"], timeout=120)
    numbers = stages(report, "ramp")["numbers"]
    assert numbers.status == "SKIP" and "give the inputs with -i" in numbers.message, report.format()


# ---------------------------------------------------------------------------------------------- random code
RANDOM_TORCH, RANDOM_JAX = CASES / "random_torch.py", CASES / "random_jax.py"


def test_random_forward_modules_pass_every_stage():
    """Modules that draw in eval mode too (a VAE's reparameterisation): torch's draws replayed in JAX where they can
    be, else the outputs that do not vary are compared and the rest by statistics."""
    report = check(RANDOM_TORCH, RANDOM_JAX, timeout=120)
    assert report.ok, report.format()
    for module in ("Reparam", "TwoNoises", "Jitter", "TwoDropouts"):
        assert [(r.stage, r.status) for r in report.find(module)] == [
            ("interface", "PASS"), ("numbers", "PASS"), ("training", "PASS")], module
    assert "with torch's draws replayed: eval and train mode" in stages(report, "Reparam")["numbers"].message
    assert "torch's draws replayed" in stages(report, "Reparam")["training"].message
    jitter = stages(report, "Jitter")
    assert "cannot be replayed" in jitter["numbers"].message and "[1] compared by statistics" in jitter["numbers"].message
    assert "[1] left out" in jitter["training"].message


RANDOM_MUTATIONS = {  # name: (entry, the correct text, the planted bug, what the failure says)
    "constant": ("Reparam", "jnp.exp(0.5 * logvar)", "jnp.exp(0.45 * logvar)",
                 "with torch's draws replayed: eval output[0]"),
    "stop_gradient": ("Reparam", "jnp.exp(0.5 * logvar)", "jax.lax.stop_gradient(jnp.exp(0.5 * logvar))",
                      "gradient of logvar.weight"),
    "bias": ("Reparam", "jax.nn.sigmoid(self.dec(z))", "jax.nn.sigmoid(z @ self.dec.weight.T)", "eval output[0]"),
    "transpose": ("TwoNoises", "h = self.fc(x)\n        key1", "h = x @ self.fc.weight + self.fc.bias\n        key1",
                  "output"),
    "axis": ("TwoNoises", "* h.mean(0)", "* h.mean(1)", "JAX raised where torch ran"),
    "reused_key": ("TwoNoises", "jax.random.uniform(key2,", "jax.random.uniform(key1,", "key"),
    "reused_dropout_key": ("TwoDropouts", "key=key2)", "key=key1)", "train mode with dropout on: the translation "
                           "draws bernoulli and bernoulli with one key"),
    # Jitter's draws cannot be replayed: its unvarying output is compared, the varying one by statistics
    "unreplayable_constant": ("Jitter", "return h, h *", "return h * 1.01, h *", "eval output[0]"),
    "unreplayable_rate": ("Jitter", "bernoulli(key, 0.5,", "bernoulli(key, 0.3,", "mean over 200 draws differs"),
}


def test_planted_bugs_in_random_modules_fail(tmp_path):
    orig, jax_dir = tmp_path / "torch", tmp_path / "jax"
    orig.mkdir()
    jax_dir.mkdir()
    source = RANDOM_JAX.read_text()
    for name, (entry, good, bad, _) in RANDOM_MUTATIONS.items():
        assert source.count(good) == 1, name
        shutil.copy(RANDOM_TORCH, orig / f"{name}.py")
        (jax_dir / f"{name}.py").write_text(source.replace(good, bad))
    entries = [f"{name}.py::{entry}" for name, (entry, *_) in RANDOM_MUTATIONS.items()]
    report = check(orig, jax_dir, entries=entries, timeout=120)
    assert report.summary() == f"0 passed, {len(RANDOM_MUTATIONS)} failed, 0 skipped", report.format()
    for name, (entry, _, _, says) in RANDOM_MUTATIONS.items():
        results = report.find(f"{name}.py::{entry}")
        assert [(r.stage, r.status) for r in results] == [("interface", "PASS"), ("numbers", "FAIL")], name
        assert says in results[-1].message, (name, results[-1].message)


SEEDED_TORCH, SEEDED_JAX = CASES / "seeded_train_torch.py", CASES / "seeded_train_jax.py"


def test_seeded_script_replays_torch_draws():
    """Random initial weights, data, shuffling and dropout: the translated run gets torch's draws, so its printed
    losses match (until a draw it cannot replay)."""
    report = check(SEEDED_TORCH, SEEDED_JAX, timeout=120)
    last = report.results[-1]
    assert (last.stage, last.status) == ("training", "PASS"), report.format()
    assert ("6 printed metric lines match, torch's first 14 random draws replayed; then the translation draws with "
            "jax.random.gumbel") in last.message and "the 1 metric lines after that are not compared" in last.message


@pytest.mark.parametrize("good,bad,says", [
    ("-0.05 * g", "-0.06 * g", "metric line 2"),
    ("t2j.nn.Linear(16, 1, key=k2)", "t2j.nn.Linear(16, 1, bias=False, key=k2)", "metric line 1"),
    ("jnp.mean((m(xb, key=key) - yb) ** 2)", "jnp.mean((jax.lax.stop_gradient(m(xb, key=key)) - yb) ** 2)",
     "metric line 2"),
    ("0.1 * jax.random.normal(k2,", "0.1 * jax.random.normal(k1,", "uses one key twice"),
    # a draw without a key raises outside the replay: it must not pass inside it
    ("0.1 * jax.random.normal(k2,", "0.1 * jax.random.normal(None,", "without a key"),
], ids=["constant", "bias", "stop_gradient", "reused_key", "no_key"])
def test_planted_bugs_in_a_seeded_script_fail_its_training_stage(tmp_path, good, bad, says):
    """A changed constant, a dropped bias, a stop_gradient, a key used twice or a draw without a key fails the
    replayed training stage."""
    source = SEEDED_JAX.read_text()
    assert source.count(good) == 1
    wrong = tmp_path / "seeded_train_jax.py"
    wrong.write_text(source.replace(good, bad))
    last = check(SEEDED_TORCH, wrong, timeout=120).results[-1]
    assert (last.stage, last.status) == ("training", "FAIL") and says in last.message, last.format()


# ---------------------------------------------------------------------------------------------- modules without a key
KEYLESS_TORCH = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class ContrastiveLoss(nn.Module):
    def __init__(self, margin=2.0):
        super().__init__()
        self.margin = margin

    def forward(self, a, b, y):
        d = F.pairwise_distance(a, b)
        return torch.mean((1 - y) * d.pow(2) + y * torch.clamp(self.margin - d, min=0.0).pow(2))


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, a):
        return self.fc(a)


class Sized(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc = nn.Linear(n, 2)

    def forward(self, a):
        return self.fc(a)
'''

KEYLESS_JAX = '''import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


class ContrastiveLoss(eqx.Module):
    margin: object = eqx.field(static=True)

    def __init__(self, margin=2.0):
        self.margin = margin

    def __call__(self, a, b, y, *, key=None):
        d = t2j.pairwise_distance(a, b)
        return jnp.mean((1 - y) * jnp.power(d, 2) + y * jnp.power(t2j.clamp(self.margin - d, min=0.0), 2))


class Head(eqx.Module):  # planted: torch draws Linear's initial weights, this __init__ cannot
    fc: t2j.nn.Linear

    def __init__(self):
        self.fc = t2j.nn.Linear(3, 2, key=None)

    def __call__(self, a, *, key=None):
        return self.fc(a)


class Sized(eqx.Module):  # the same, with constructor arguments
    fc: t2j.nn.Linear

    def __init__(self, n):
        self.fc = t2j.nn.Linear(n, 2, key=None)

    def __call__(self, a, *, key=None):
        return self.fc(a)
'''


def test_module_without_key_is_built_without_one(tmp_path):
    """A translated module whose __init__ takes no key (it has no parameters and draws nothing: a loss) is built
    without one and compared like any other; one whose torch constructor draws initial weights needs a key."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "jax").mkdir()
    (tmp_path / "torch" / "losses.py").write_text(KEYLESS_TORCH)
    (tmp_path / "jax" / "losses.py").write_text(KEYLESS_JAX)
    inputs = ["a: float32[4,3]", "b: float32[4,3]", "y: float32[4]"]
    report = check(tmp_path / "torch" / "losses.py", tmp_path / "jax" / "losses.py", inputs=inputs,
                   args={"Sized": (3,)}, timeout=120)
    loss = stages(report, "ContrastiveLoss")
    assert (loss["interface"].status, loss["numbers"].status) == ("PASS", "PASS"), report.format()
    for name in ("Head", "Sized"):
        assert [(r.stage, r.status) for r in report.find(name)] == [("interface", "FAIL")], report.format()
        assert "takes no keyword-only key, but torch's constructor draws" in report.find(name)[0].message
    # without its constructor arguments the interface cannot build Sized: the numbers stage says it needs them
    skipped = check(tmp_path / "torch" / "losses.py", tmp_path / "jax" / "losses.py", entries=["Sized"], timeout=120)
    assert [(r.stage, r.status) for r in skipped.results] == [("interface", "PASS"), ("numbers", "SKIP")]
    # the translator's own output for it
    translated = check(tmp_path / "torch" / "losses.py", entries=["ContrastiveLoss"], inputs=inputs, timeout=120)
    loss = stages(translated, "ContrastiveLoss")
    assert (loss["interface"].status, loss["numbers"].status) == ("PASS", "PASS"), translated.format()


BUFFER_ONLY = '''
import torch
import torch.nn as nn


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("s", torch.full((4,), 2.0))

    def forward(self, x):
        return x * self.s
'''


def test_module_without_parameters_skips_training(tmp_path):
    """A module of buffers only (a positional encoding) has nothing to train: the training stage says so instead
    of a checker error from torch's backward."""
    src = tmp_path / "scale.py"
    src.write_text(BUFFER_ONLY)
    report = check(src, inputs=["x: float32[3,4]"], timeout=120)
    scale = stages(report, "Scale")
    assert (scale["numbers"].status, scale["training"].status) == ("PASS", "SKIP"), report.format()
    assert "no trainable parameters" in scale["training"].message


def test_random_outputs_compare_dicts_by_key_and_nan_where_both_have_it():
    """A function returning a dict of draws: JAX's tree operations hand dicts back with sorted keys, torch keeps
    insertion order; leaves are paired by key. NaN in the same places on both sides (a std over one element) is
    left out of the moments; NaN on one side only is a failure."""
    import numpy as np

    from torch2jax.check import compare as cmp
    from torch2jax.check.functions import _moments

    assert cmp.flatten({"w": 1, "b": 2}) == cmp.flatten({"b": 2, "w": 1}) == [("['b']", 2), ("['w']", 1)]
    rng = np.random.default_rng(0)
    t, j = rng.standard_normal((200, 3)), rng.standard_normal((200, 3))
    t[:, 1] = j[:, 1] = np.nan
    assert _moments([("", t)], [("", j)], 200, cmp.Comparison()) == []
    j[:, 1] = 0.0
    assert "NaN at 1 elements" in _moments([("", t)], [("", j)], 200, cmp.Comparison())[0]
    j[:, 0] *= 3
    j[:, 1] = np.nan
    assert "standard deviation" in _moments([("", t)], [("", j)], 200, cmp.Comparison())[0]


def test_dependence_flags_a_reused_key_and_not_sparse_masks():
    """The statistical check behind "one key used for two draws?": two elements equal in every draw are flagged;
    independent normals, and rare-event masks whose few joint hits make chance correlations, are not."""
    import numpy as np

    from torch2jax.check.functions import _dependence

    rng = np.random.default_rng(0)
    n = 200
    independent = [(0, rng.standard_normal((n, 40)))]
    same = rng.standard_normal((n, 40))
    same[:, 7] = same[:, 3]  # a key used twice: two elements draw the same number
    assert _dependence(independent, [(0, rng.standard_normal((n, 40)))]) == []
    assert "one key used for two draws" in _dependence(independent, [(0, same)])[0]
    # masks whose edge pixels are set in one or two draws of 200: correlations of 1.0 and 0.0 by chance
    t_mask, j_mask = (rng.random((n, 300)) < 0.005).astype(float), (rng.random((n, 300)) < 0.005).astype(float)
    t_mask[5, :2] = j_mask[9, 0] = j_mask[11, 1] = 1.0
    assert _dependence([(0, t_mask)], [(0, j_mask)]) == []
