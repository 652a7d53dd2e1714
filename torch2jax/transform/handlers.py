"""Named handlers for the torch APIs that a table template cannot express.

A handler gets the pass, the record, the bound arguments and the call node, and returns the replacement
expression, or None to fall back to the record's templates.
"""
from __future__ import annotations


def unwrap_sequence(pass_, record, bound, node):
    """nn.ModuleList([...]) -> [...] and nn.ModuleDict({...}) -> {...}: a plain list or dict is the container."""
    import libcst as cst

    modules = bound.args.get("modules")
    if type(modules) in (cst.List, cst.ListComp, cst.Dict, cst.DictComp):
        return modules
    return None


# --- torch.nn.functional (mappings/functional.toml)

_NOT_LITERAL = object()


def _literal(node):
    """The Python value of a literal argument ('tanh', False, 0.0, -1, None), or _NOT_LITERAL."""
    import ast

    from torch2jax.transform.codegen import code_of

    if node is None:
        return _NOT_LITERAL
    try:
        return ast.literal_eval(code_of(node))
    except (ValueError, SyntaxError, TypeError):
        return _NOT_LITERAL


def _drop(bound, name):
    bound.args.pop(name, None)
    bound.given.discard(name)


def drop_none(pass_, record, bound, node):
    """Arguments written as a literal None where torch's default is None (bias=None) are dropped, so that the
    template without them applies."""
    for p in record.params:
        if p.name in bound.given and p.has_default and _literal(bound.args[p.name]) is None:
            _drop(bound, p.name)
    return None


def gelu_approximate(pass_, record, bound, node):
    """F.gelu: torch's default is the exact erf form, jax.nn.gelu's the tanh one. torch's literal
    approximate='none' / 'tanh' (or none given) becomes jax.nn.gelu's boolean; any other value goes to the
    runtime function, which takes torch's string."""
    value = _literal(bound.args.get("approximate")) if "approximate" in bound.given else "none"
    if value not in ("none", "tanh"):
        return None
    from torch2jax.transform.templates import render

    _drop(bound, "approximate")
    pass_.need("jax")
    flag = "True" if value == "tanh" else "False"
    return render(f"jax.nn.gelu(input, approximate={flag})", bound, {p.name for p in record.params})


def implicit_softmax_dim(pass_, record, bound, node):
    """softmax/log_softmax/softmin without dim: torch's deprecated implicit choice (dim 0 for 0-, 1- and 3-d
    input, else 1) is kept by the runtime function, and flagged."""
    if "dim" not in bound.given or _literal(bound.args["dim"]) is None:
        _drop(bound, "dim")
        pass_.report("T2J104", f"{record.name} without dim uses torch's deprecated implicit dim (0 for 0-, 1- and "
                               "3-d input, else 1): pass dim explicitly", node)
    return None


def rrelu_eval(pass_, record, bound, node):
    """F.rrelu is random only in training mode; in eval mode (torch's default) it is leaky_relu with the mean
    slope (lower + upper) / 2."""
    if "training" in bound.given:
        if _literal(bound.args["training"]) is not False:
            pass_.report("T2J102", "F.rrelu(training=True) draws random slopes: not supported; use "
                                   "training=False (leaky_relu with slope (lower + upper) / 2)", node)
            return node
        _drop(bound, "training")
    return None


def one_hot_classes(pass_, record, bound, node):
    """F.one_hot without num_classes (or -1) infers the count from the values: fine eagerly, impossible under
    jit. Flagged, and mapped to the runtime function that says so when traced."""
    n = bound.args.get("num_classes")
    if "num_classes" not in bound.given or _literal(n) == -1:
        _drop(bound, "num_classes")
        pass_.report("T2J104", "one_hot without num_classes takes max(tensor) + 1 classes, a value-dependent shape "
                               "that cannot be traced (jax.jit, grad, vmap): pass num_classes", node)
    return None


def sdpa_dropout(pass_, record, bound, node):
    """F.scaled_dot_product_attention: a literal dropout_p of 0 is dropped; any other dropout_p (often
    `self.dropout if self.training else 0`) is passed on with a fresh PRNG key for the dropout mask."""
    if "dropout_p" not in bound.given:
        return None
    if _literal(bound.args["dropout_p"]) in (0, 0.0):
        _drop(bound, "dropout_p")
        return None
    template = record.templates[0]
    return pass_.emit(record, template[:-1] + ", dropout_p=dropout_p, dropout_key=KEY)", bound)


def dropout_eval(pass_, record, bound, node):
    """F.dropout and friends: training=False (or p=0) is the identity; otherwise the templates draw with KEY."""
    if _literal(bound.args.get("training")) is False or _literal(bound.args.get("p")) in (0, 0.0):
        from torch2jax.transform.templates import paren

        return paren(bound.args[record.params[0].name])
    return None


def optimizer_params(pass_, record, bound, node):
    """torch.optim.X(model.parameters(), ...) -> t2j.optim.X(...): the optimizer state is initialised from the
    model itself (the training pass adds `opt_state = optimizer.init(...)`). Parameter groups stay."""
    import libcst as cst

    params = bound.args.get("params")
    inner = params
    if type(inner) is cst.Call and type(inner.func) is cst.Name and inner.func.value in ("list", "filter") \
            and inner.args:
        inner = inner.args[-1].value
    if not (type(inner) is cst.Call and type(inner.func) is cst.Attribute
            and inner.func.attr.value in ("parameters", "named_parameters")):
        return None
    del bound.args["params"]
    bound.given.discard("params")
    template = record.templates[0].replace("(params, ", "(").replace("(params)", "()")
    return pass_.emit(record, template, bound)


# --- torch.* tensor functions and Tensor methods (mappings/tensor_ops.toml)

JNP_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                        "bool_", "bool", "complex64", "complex128"})
TENSOR_TYPE_DTYPES = {"FloatTensor": "float32", "DoubleTensor": "float64", "HalfTensor": "float16",
                      "BFloat16Tensor": "bfloat16", "LongTensor": "int64", "IntTensor": "int32", "ShortTensor": "int16",
                      "CharTensor": "int8", "ByteTensor": "uint8", "BoolTensor": "bool_"}
DEVICE_WORDS = ("device", "dev", "cuda", "cpu", "gpu", "rank", "local_rank", "gpu_id", "device_id")


def _kind(node) -> str:
    """What a (translated) argument of Tensor.to is: 'dtype', 'device', 'none' or 'unknown' (a tensor, or a name
    that could be either)."""
    import libcst as cst

    from torch2jax.transform.names import dotted

    value = _literal(node)
    if value is None:
        return "none"
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return "device"  # "cuda", "cuda:0", 0
    if type(node) is cst.Call:
        func = dotted(node.func) or ""
        if func == "t2j.device" or func.endswith(("get_device", "current_device")):
            return "device"
        return "unknown"
    path = dotted(node)
    if path is None:
        return "unknown"
    last = path.rsplit(".", 1)[-1].lower()
    if (path.startswith("jnp.") and path[4:] in JNP_DTYPES) or last == "dtype" or last.endswith("_dtype"):
        return "dtype"
    if last in DEVICE_WORDS or "device" in last:
        return "device"
    return "unknown"


def _receiver(record, bound):
    return bound.args[record.params[0].name]


def tensor_to(pass_, record, bound, node):
    """Tensor.to(...): a dtype (torch.float16, x.dtype) -> x.astype(dtype); a device ("cuda", device, x.device)
    -> x itself (T2J103); both -> astype. An argument that could be a tensor or a device (a plain name) goes to
    t2j.to, which decides at run time."""
    positional = (bound.varargs or {}).get("args", [])
    kinds = [_kind(a.value) for a in positional if not a.star]
    if any(a.star for a in positional) or "unknown" in kinds:
        return pass_.emit(record, "t2j.to(self, *args, dtype=dtype)", bound)
    dtypes = [a.value for a, k in zip(positional, kinds) if k == "dtype"]
    if "dtype" in bound.given and _kind(bound.args["dtype"]) != "none":
        dtypes.append(bound.args["dtype"])
    if "device" in kinds or "device" in bound.given:
        pass_.report("T2J103", ".to(device) dropped: JAX places arrays on its default device", node)
    if dtypes:
        bound.args["dtype"] = dtypes[-1]
        return pass_.emit(record, "self.astype(dtype)", bound)
    from torch2jax.transform.templates import paren

    return paren(_receiver(record, bound))


def tensor_type(pass_, record, bound, node):
    """Tensor.type('torch.cuda.FloatTensor') -> x.astype(jnp.float32); a dtype argument falls through to
    the templates (astype); no argument -> torch's type name, at run time."""
    import libcst as cst

    value = _literal(bound.args.get("dtype"))
    if isinstance(value, str):
        dtype = TENSOR_TYPE_DTYPES.get(value.rsplit(".", 1)[-1])
        if dtype is None:
            pass_.report("T2J102", f"Tensor.type({value!r}): unknown tensor type", node)
            return node
        bound.args["dtype"] = cst.parse_expression(f"jnp.{dtype}")
        pass_.need("jnp")
        return pass_.emit(record, "self.astype(dtype)", bound)
    return None


def device_dropped(pass_, record, bound, node):
    """.cuda(), .cpu(), torch.device(...), torch.cuda.is_available(): placement is JAX's business (T2J103);
    the templates say what stands in."""
    pass_.report("T2J103", f"{record.name}: JAX places arrays on its default device", node)
    return None


def gradient_stopped(pass_, record, bound, node):
    """x.detach() -> jax.lax.stop_gradient(x) (T2J106)."""
    pass_.report("T2J106", "detach() -> jax.lax.stop_gradient: JAX differentiates only what a transformation asks for",
                 node)
    return None


def tensor_split_method(pass_, record, bound, node):
    """Tensor.split without a size is str.split(): left alone."""
    if "split_size" not in bound.given:
        return node
    return None


# legacy typed constructors: torch.FloatTensor(2, 3), torch.Tensor(n), torch.LongTensor([0, 1]) (tensor_ops.toml)

# calls that give an int (or torch.Size([...]), translated to tuple([...])): their value is a size
LEGACY_SIZE_CALLS = frozenset({"len", "int", "round", "abs", "max", "min", "math.ceil", "math.floor", "math.prod",
                               "operator.index", "tuple"})
_DATA_LITERALS = ("List", "Tuple", "ListComp", "GeneratorExp", "Set", "SetComp", "Float", "Imaginary",
                  "SimpleString", "ConcatenatedString", "FormattedString", "Dict")


def _pure(node) -> bool:
    """No calls inside: the expression may be evaluated twice (the run-time choice below)."""
    import libcst as cst

    from torch2jax.transform.walk import content_children

    stack = [node]
    while stack:
        n = stack.pop()
        if type(n) is cst.Call:
            return False
        stack.extend(content_children(n))
    return True


def _legacy_argument(node) -> str:
    """What the one positional argument of a legacy constructor is: 'size' (an int, x.shape, a torch.Size), 'data'
    (a list, tuple or other literal, an array a call makes) or 'either' (a name: an int or an array, decided at run
    time)."""
    import libcst as cst

    from torch2jax.transform.names import dotted

    if type(node) is cst.Integer or (type(node) is cst.UnaryOperation and isinstance(node.expression,
                                                                                           cst.Integer)):
        return "size"
    if type(node).__name__ in _DATA_LITERALS:
        return "data"
    if type(node) is cst.Attribute and node.attr.value == "shape":
        return "size"  # x.size() / x.shape: a torch.Size
    if type(node) is cst.Subscript and type(node.value) is cst.Attribute and node.value.attr.value == "shape":
        return "size"  # x.size(0), x.shape[1:]
    if type(node) is cst.Call:
        return "size" if dotted(node.func) in LEGACY_SIZE_CALLS else "data"
    if type(node) is cst.BinaryOperation and _legacy_argument(node.left) == _legacy_argument(node.right) == "size":
        return "size"  # x.shape[0] * 2
    if type(node) in (cst.Name, cst.Attribute, cst.Subscript, cst.BinaryOperation) and _pure(node):
        return "either"
    return "data"


def legacy_tensor(pass_, record, bound, node):
    """torch.FloatTensor / DoubleTensor / LongTensor / ... and torch.Tensor called. With sizes (ints, x.size(), a
    torch.Size, `*shape`) they allocate an uninitialised tensor: jnp.empty(sizes, dtype) (JAX has no uninitialised
    memory: jnp.empty gives zeros, and the code overwrites the values anyway, pygcn's `.uniform_(-stdv, stdv)`).
    With data (a list or tuple literal, an array) they copy it: jnp.asarray(data, dtype). A single name can be
    either: the choice is made at run time (an int is a size), where a torch.Size held in a name has become a plain
    tuple and is read as data."""
    import libcst as cst

    from torch2jax.transform.codegen import code_of as code
    short = record.name.rsplit(".", 1)[-1]
    dtype = "jnp." + TENSOR_TYPE_DTYPES.get(short, "float32")  # torch.Tensor: the default dtype
    pass_.need("jnp")
    args = (bound.varargs or {}).get(record.params[0].name, [])
    if not args:
        pass_.note("T2J100", f"{record.name}() -> jnp.empty((0,)): an empty tensor", node)
        return cst.parse_expression(f"jnp.empty((0,), dtype={dtype})")
    if len(args) > 1 or args[0].star:
        sizes = ", ".join(a.star + code(a.value) for a in args)
        pass_.note("T2J100", f"{record.name}(sizes) -> jnp.empty: torch leaves the values uninitialised, JAX gives "
                             "zeros", node)
        sizes = sizes if len(args) > 1 else sizes + ","  # (*shape,)
        return cst.parse_expression(f"jnp.empty(({sizes}), dtype={dtype})")
    arg = code(args[0].value)
    kind = _legacy_argument(args[0].value)
    empty, data = f"jnp.empty({arg}, dtype={dtype})", f"jnp.asarray({arg}, dtype={dtype})"
    if kind == "size":
        pass_.note("T2J100", f"{record.name}(size) -> jnp.empty: torch leaves the values uninitialised, JAX gives "
                             "zeros", node)
        return cst.parse_expression(empty)
    if kind == "data":
        pass_.note("T2J100", f"{record.name}(data) -> jnp.asarray", node)
        return cst.parse_expression(data)
    pass_.note("T2J100", f"{record.name}({arg}): a size when {arg} is an int (jnp.empty), else data (jnp.asarray); "
                         "a torch.Size held in a name is a tuple in JAX and is read as data", node)
    return cst.parse_expression(f"({empty} if isinstance({arg}, int) else {data})")
