"""What a value all-reduced across DDP ranks is: a per-sample mean or a sum over samples (parallel.py's question).

A data-parallel translation computes every value on the global batch. What torch's collective on the per-rank
value becomes then depends on the value's kind:

- "mean" (a mean loss, an accuracy, a constant): every rank holds about the same number, so all_reduce(SUM) of it
  is world_size times the global value, and all_reduce(AVG) is the global value itself;
- "sum" (a count of correct predictions, a number of samples, a sum of losses over samples): all_reduce(SUM) is
  the global value itself, and all_reduce(AVG) is the global value over world_size.

value_kind() follows the assignments of a name in its function (all of them, in any order) down to the calls that
make it, and into what the file's own functions return: losses with the default reduction and .mean() give "mean";
.sum(), .numel(), .size(0), .shape[0] and len() give "sum"; .item(), .detach(), torch.tensor(...) and the like keep
their argument's kind; literals and torch.zeros(...) are neutral (an accumulator's start); a loss whose maker is
not seen (a criterion passed in) but on which backward() is called is taken as a mean, the losses' default. None
when the sources disagree or are not seen.
"""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.names import dotted
from torch2jax.transform.walk import Visitor, walk

MEAN, SUM, NEUTRAL = "mean", "sum", "neutral"

# methods and functions that keep their receiver's (or first argument's) kind
KEEP = {"item", "detach", "clone", "float", "double", "half", "cpu", "cuda", "to", "contiguous", "squeeze",
        "unsqueeze", "view", "reshape", "tolist", "numpy", "abs"}
KEEP_FUNCTIONS = {"float", "int", "abs", "torch.tensor", "torch.as_tensor", "torch.Tensor", "torch.FloatTensor",
                  "torch.scalar_tensor", "torch.clone"}
SUM_METHODS = {"sum", "numel", "nelement", "count_nonzero", "nansum"}
SUM_FUNCTIONS = {"len", "torch.sum", "torch.numel", "torch.count_nonzero", "torch.nansum"}
MEAN_METHODS = {"mean", "nanmean"}
MEAN_FUNCTIONS = {"torch.mean", "torch.nanmean"}
ZEROS = {"torch.zeros", "torch.zeros_like", "torch.ones", "torch.ones_like", "torch.full", "torch.empty"}


def _combine(kinds) -> str | None:
    kinds = set(kinds) - {NEUTRAL}
    if not kinds:
        return NEUTRAL
    return kinds.pop() if len(kinds) == 1 and None not in kinds else None


def _reduction(call: cst.Call) -> str | None:
    """The kind of a loss by its reduction= argument (torch's default is 'mean')."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == "reduction":
            value = a.value.evaluated_value if type(a.value) is cst.SimpleString else None
            return {"mean": MEAN, "sum": SUM}.get(value)
    return MEAN


def _is_loss(qual: str | None) -> bool:
    if not qual or not qual.startswith(("torch.nn.functional.", "torch.nn.")):
        return False
    last = qual.rsplit(".", 1)[1].lower()
    return "loss" in last or "entropy" in last or last == "kl_div"


class _Element:
    """Element `index` of the value `of` (a tuple unpacked by an assignment)."""

    def __init__(self, of, index: int) -> None:
        self.of, self.index = of, index


class _Returns(Visitor):
    def __init__(self) -> None:
        self.values: list = []

    def visit_FunctionDef(self, node) -> bool:
        return False

    def visit_Return(self, node: cst.Return) -> None:
        self.values.append(node.value)


class _Assignments(Visitor):
    """Every value assigned to each name of a function (not descending into nested functions)."""

    def __init__(self) -> None:
        self.values: dict[str, list[cst.BaseExpression]] = {}
        self.backward: set[str] = set()  # loss.backward(): the names differentiated

    def visit_FunctionDef(self, node) -> bool:
        return False

    def visit_Lambda(self, node) -> bool:
        return False

    def _add(self, target, value) -> None:
        if type(target) is cst.Name:
            self.values.setdefault(target.value, []).append(value)
        elif type(target) in (cst.Tuple, cst.List):
            if type(value) in (cst.Tuple, cst.List) and len(value.elements) == len(target.elements):
                for t, v in zip(target.elements, value.elements):
                    self._add(t.value, v.value)
            else:
                for k, t in enumerate(target.elements):
                    self._add(t.value, _Element(value, k))  # a, b = f(...): element k of what f returns

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._add(t.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if type(node.operator) in (cst.AddAssign, cst.SubtractAssign):
            self._add(node.target, node.value)
        elif type(node.operator) is cst.MultiplyAssign:
            self._add(node.target, cst.BinaryOperation(node.target, cst.Multiply(), node.value))
        # `x /= n`: a rescaling that the collective's caller handles (the world-size division) or keeps the kind

    def visit_For(self, node: cst.For) -> None:
        self._add(node.target, None)

    def visit_Call(self, node: cst.Call) -> None:
        if type(node.func) is cst.Attribute and node.func.attr.value == "backward" \
                and type(node.func.value) is cst.Name:
            self.backward.add(node.func.value.value)


class KindFinder:
    def __init__(self, scope: cst.CSTNode, qual, functions: dict | None = None) -> None:
        finder = _Assignments()
        body = scope.body if type(scope) is cst.FunctionDef else scope
        walk(body, finder)
        self.values, self.backward = finder.values, finder.backward
        self.qual = qual  # node -> torch qualified name (the pass's scopes)
        self.functions = functions or {}  # the file's module-level functions, by name: what their calls return
        self._busy: set[str] = set()  # names of this scope being followed (x += x.sum() refers to itself)
        self._calling: set[str] = set()  # functions being followed (recursion)

    def _returned(self, call: cst.Call, index: int | None) -> str | None:
        """The kind of what a call of one of the file's functions returns (element `index` of a tuple)."""
        fn = self.functions.get(call.func.value) if type(call.func) is cst.Name else None
        if fn is None or fn.name.value in self._calling:
            return None
        returns = _Returns()
        walk(fn.body, returns)
        inner = KindFinder(fn, self.qual, self.functions)
        inner._calling = self._calling | {fn.name.value}
        kinds = []
        for value in returns.values:
            if index is not None:
                if not (type(value) in (cst.Tuple, cst.List) and index < len(value.elements)):
                    return None
                value = value.elements[index].value
            kinds.append(inner.kind(value) if value is not None else None)
        return _combine(kinds) if kinds else None

    def name_kind(self, name: str) -> str | None:
        if name in self._busy:
            return NEUTRAL  # x += x.sum(): the other sources decide
        values = self.values.get(name)
        if not values:
            return None
        self._busy.add(name)
        try:
            kind = _combine(self._element(v) if isinstance(v, _Element) else self.kind(v) if v is not None else None
                            for v in values)
        finally:
            self._busy.discard(name)
        if kind is None and name in self.backward:
            return MEAN  # the loss DDP averages gradients of: a batch mean (the losses' default reduction)
        return kind

    def _element(self, element: _Element) -> str | None:
        return self._returned(element.of, element.index) if type(element.of) is cst.Call else None

    def kind(self, node) -> str | None:
        if type(node) in (cst.Integer, cst.Float):
            return NEUTRAL
        if type(node) is cst.Name:
            return self.name_kind(node.value)
        if type(node) is cst.UnaryOperation:
            return self.kind(node.expression)
        if type(node) is cst.Subscript:
            if type(node.value) is cst.Attribute and node.value.attr.value == "shape":
                return SUM  # x.shape[0]: a number of samples
            return self.kind(node.value) if type(node.value) is cst.Name else None
        if type(node) is cst.BinaryOperation:
            return self._binary(node)
        if type(node) in (cst.List, cst.Tuple) and node.elements:
            return _combine(self.kind(e.value) for e in node.elements)  # torch.tensor([correct, seen])
        if type(node) is cst.Call:
            return self._call(node)
        return None

    def _binary(self, node: cst.BinaryOperation) -> str | None:
        left, right = self.kind(node.left), self.kind(node.right)
        op = node.operator
        if type(op) in (cst.Add, cst.Subtract):
            return _combine([left, right])
        if type(op) is cst.Multiply:
            if {left, right} == {MEAN, SUM}:
                return SUM  # loss.item() * x.size(0): a sum over the samples
            return _combine([left, right])
        if type(op) in (cst.Divide, cst.FloorDivide):
            if left == SUM and right == SUM:
                return MEAN  # correct / total
            return left  # a rescaling (by the world size, a number of batches) keeps the kind
        return None

    def _call(self, call: cst.Call) -> str | None:
        func = call.func
        qual = self.qual(func)
        first = call.args[0].value if call.args else None
        if qual in MEAN_FUNCTIONS:
            return MEAN
        if qual in SUM_FUNCTIONS or dotted(func) == "len":
            return SUM
        if qual in ZEROS:
            return NEUTRAL
        if _is_loss(qual):
            return _reduction(call)
        if qual in KEEP_FUNCTIONS or dotted(func) in KEEP_FUNCTIONS:
            return self.kind(first) if first is not None else NEUTRAL
        if type(func) is cst.Name and func.value in self.functions:
            return self._returned(call, None)
        if type(func) is cst.Name and func.value in self.values:
            # criterion(out, y) where criterion = nn.CrossEntropyLoss(...)
            makers = [v for v in self.values[func.value] if type(v) is cst.Call]
            if makers and all(_is_loss(self.qual(m.func)) for m in makers):
                return _combine(_reduction(m) for m in makers)
            return None
        if type(func) is cst.Attribute:
            method = func.attr.value
            if method in MEAN_METHODS:
                return MEAN
            if method in SUM_METHODS:
                return SUM
            if method == "size" and call.args:
                return SUM  # x.size(0)
            if method in KEEP:
                return self.kind(func.value)
        return None
