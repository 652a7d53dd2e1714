"""model.parameters() / named_parameters() read outside training (parameter counts, name listings,
next(...) for a dtype): the translation lists the same arrays, names, shapes and counts as torch."""
import subprocess
import sys
import textwrap

from torch2jax import translate

SOURCE = textwrap.dedent('''
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.body(x).mean((2, 3)))

    net = Net()
    print("count", sum(p.numel() for p in net.parameters() if p.requires_grad))
    print("head", sum(p.numel() for p in net.head.parameters()))
    print("names", [n for n, _ in net.named_parameters()])
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        print("param", name, tuple(p.shape), p.requires_grad)
    print("first", tuple(next(net.parameters()).shape))
    param_dict = {pn: p for pn, p in net.named_parameters()}
    param_dict = {pn: p for pn, p in param_dict.items() if p.requires_grad}
    print("decayed", sorted(n for n, p in param_dict.items() if p.dim() >= 2))
''')


def _run(code: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:] + "\n" + code
    return proc.stdout.splitlines()


def test_listings_match_torch():
    result = translate(SOURCE)
    assert "import torch\n" not in result.code and "from torch " not in result.code
    assert "T2J514" in {d.code for d in result.diagnostics}
    expected = _run(SOURCE)
    assert len(expected) >= 10
    assert _run(result.code) == expected
