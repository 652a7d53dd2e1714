"""Import fix-up: drop torch imports nothing uses any more, add the JAX imports the rewrites need."""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.codegen import code_of
from torch2jax.transform.names import dotted
from torch2jax.transform.walk import Transformer, iter_statements, names_read, transform

IMPORT_LINES = {
    "jax": "import jax",
    "jnp": "import jax.numpy as jnp",
    "lax": "from jax import lax",
    "eqx": "import equinox as eqx",
    "optax": "import optax",
    "t2j": "import torch2jax.runtime as t2j",
    "np": "import numpy as np",
    "math": "import math",
}
ORDER = list(IMPORT_LINES)


def _is_torch(module: str | None) -> bool:
    return module is not None and (module == "torch" or module.startswith("torch."))


def _local(alias: cst.ImportAlias) -> str:
    return alias.asname.name.value if alias.asname else dotted(alias.name).split(".")[0]


class _Prune(Transformer):
    def __init__(self, used: set[str]) -> None:
        self.used = used
        self.changed = False  # an import removed, or some of its names

    def visit_FunctionDef(self, node) -> bool:
        return False  # imports inside functions and classes are left as they are: only the file's own are fixed

    def visit_ClassDef(self, node) -> bool:
        return False

    def visit_SimpleStatementLine(self, node) -> bool:
        return any(type(s) in (cst.Import, cst.ImportFrom) for s in node.body)

    def _keep(self, alias: cst.ImportAlias, module: str | None) -> bool:
        return not _is_torch(module) or _local(alias) in self.used

    def leave_Import(self, original, updated):
        names = [a for a in updated.names if self._keep(a, dotted(a.name))]
        return self._rebuild(updated, names)

    def leave_ImportFrom(self, original, updated):
        if updated.relative or updated.module is None or type(updated.names) is cst.ImportStar:
            return updated
        module = dotted(updated.module)
        names = [a for a in updated.names if self._keep(a, module)]
        return self._rebuild(updated, names)

    def _rebuild(self, node, names):
        if len(names) == len(node.names):
            return node
        self.changed = True
        if not names:
            return cst.RemoveFromParent()
        names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return node.with_changes(names=names)


def _existing_imports(module: cst.Module) -> set[str]:
    """Import lines already in the file, normalised the way IMPORT_LINES spells them."""
    out = set()
    for stmt in module.body:
        if type(stmt) is cst.SimpleStatementLine:
            for small in stmt.body:
                if type(small) in (cst.Import, cst.ImportFrom):
                    out.add(code_of(small).strip())
    return out


def _is_docstring_or_future(stmt) -> bool:
    if type(stmt) is not cst.SimpleStatementLine or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if type(small) is cst.Expr:
        return type(small.value) in (cst.SimpleString, cst.ConcatenatedString)
    return type(small) is cst.ImportFrom and small.module is not None and dotted(small.module) == "__future__"


def _has_torch_import(stmt) -> bool:
    if type(stmt) is not cst.SimpleStatementLine:
        return False
    for small in stmt.body:
        if type(small) is cst.Import and any(_is_torch(dotted(a.name)) for a in small.names):
            return True
        if type(small) is cst.ImportFrom and small.module is not None and _is_torch(dotted(small.module)):
            return True
    return False


def fix_imports(module: cst.Module, needed: set[str]) -> cst.Module:
    have = _existing_imports(module)
    lines = [IMPORT_LINES[n] for n in ORDER if n in needed and IMPORT_LINES[n] not in have]
    if lines:
        new = [cst.parse_statement(line + "\n") for line in lines]
        body = list(module.body)
        # where the torch imports were, else after the docstring and __future__ imports; the comments above
        # that statement stay above the new lines
        at = next((i for i, s in enumerate(body) if _has_torch_import(s)), None)
        if at is None:
            at = next((i for i, s in enumerate(body) if not _is_docstring_or_future(s)), len(body))
        if at < len(body) and body[at].leading_lines:
            new[0] = new[0].with_changes(leading_lines=body[at].leading_lines)
            body[at] = body[at].with_changes(leading_lines=[])
        module = module.with_changes(body=body[:at] + new + body[at:])
    # the file's torch imports that nothing reads any more (a read: anywhere but in the imports themselves,
    # attribute names and keywords) go
    imported = frozenset(_torch_import_names(module))
    if not imported:
        return module
    prune = _Prune(names_read(module, (cst.Import, cst.ImportFrom), among=imported))
    pruned = transform(module, prune)
    return pruned if prune.changed or lines else module


def _torch_import_names(module: cst.Module):
    """The local names that the torch imports _Prune looks at bind: the file's own (not in a function or class)."""
    for small in iter_statements(module, enter=lambda stmt: type(stmt) not in (cst.FunctionDef, cst.ClassDef)):
        if type(small) is cst.Import:
            yield from (_local(a) for a in small.names if _is_torch(dotted(a.name)))
        elif type(small) is cst.ImportFrom and not small.relative and small.module is not None \
                and type(small.names) is not cst.ImportStar and _is_torch(dotted(small.module)):
            yield from (_local(a) for a in small.names)
