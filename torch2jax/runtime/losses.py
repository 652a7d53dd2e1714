"""torch.nn.functional's losses (and the nn.*Loss modules) in pure jax.numpy, with torch's names and defaults.

Translated `F.cross_entropy(...)` calls become `t2j.cross_entropy(...)` and `nn.CrossEntropyLoss(...)` becomes
`t2j.CrossEntropyLoss(...)`, a small Equinox module whose `__call__(input, target)` computes the loss.

What is matched, beyond the formulas:
- the reductions 'mean', 'sum' and 'none' (and 'batchmean' for kl_div), and the legacy `size_average`/`reduce`
  arguments, which override `reduction` exactly as in torch;
- class-weighted means: nll_loss/cross_entropy divide by the summed weight of the (non-ignored) targets, the
  elementwise-weighted mse_loss/l1_loss by the summed weight, huber_loss by the element count;
- gradients at the kinks: torch's clamp_min passes the gradient at the boundary (`where(v >= 0, v, 0)`, not
  `maximum`, which splits it), norms of zero vectors have a zero gradient, and binary_cross_entropy's gradient
  is torch's closed form (finite at input 0 and 1, where the clamped log has none).

Also here, because the losses use them and the layer functions in torch2jax.runtime.nn.functional do not cover
them: cosine_similarity, pairwise_distance, one_hot and scaled_dot_product_attention.
"""
from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = [
    # functions (torch.nn.functional names)
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss",
    "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "cosine_embedding_loss", "margin_ranking_loss",
    "triplet_margin_loss", "soft_margin_loss", "hinge_embedding_loss", "poisson_nll_loss", "gaussian_nll_loss",
    "multilabel_soft_margin_loss", "multi_margin_loss",
    "cosine_similarity", "pairwise_distance", "one_hot", "scaled_dot_product_attention",
    # modules (torch.nn names)
    "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
    "HuberLoss", "KLDivLoss", "CosineEmbeddingLoss", "MarginRankingLoss", "TripletMarginLoss", "SoftMarginLoss",
    "HingeEmbeddingLoss", "PoissonNLLLoss", "GaussianNLLLoss", "MultiLabelSoftMarginLoss", "MultiMarginLoss",
]


# ---------------------------------------------------------------- shared pieces


def _legacy_reduction(size_average, reduce, reduction):
    """torch's _Reduction.legacy_get_string: the deprecated size_average/reduce flags win over `reduction`."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        return "mean"
    return "sum" if reduce else "none"


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return jnp.mean(loss)
    if reduction == "sum":
        return jnp.sum(loss)
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _clamp_min(v, minimum=0.0):
    """torch's clamp_min, gradient included: at v == minimum the gradient passes (jnp.maximum would halve it)."""
    return jnp.where(v >= minimum, v, minimum)


def _abs(x):
    """|x| with torch's gradient sign(x), which is 0 at 0 (jnp.abs's is 1 there)."""
    return x * jax.lax.stop_gradient(jnp.sign(x))


def _vector_norm(x, p, axis, keepdims=False):
    """torch's norm along `axis`; the gradient at a zero vector is 0 (torch masks it) instead of NaN."""
    if p == 2:
        sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
        nonzero = sq > 0
        return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1)), 0)
    if p == 1:
        return jnp.sum(_abs(x), axis=axis, keepdims=keepdims)
    if p == math.inf:
        return jnp.max(jnp.abs(x), axis=axis, keepdims=keepdims)
    if p == -math.inf:
        return jnp.min(jnp.abs(x), axis=axis, keepdims=keepdims)
    if p == 0:
        return jnp.sum(x != 0, axis=axis, keepdims=keepdims).astype(x.dtype)
    powered = jnp.sum(jnp.abs(x) ** p, axis=axis, keepdims=keepdims)
    nonzero = powered > 0
    return jnp.where(nonzero, jnp.where(nonzero, powered, 1) ** (1.0 / p), 0)


def _class_dim(input):
    return 0 if input.ndim == 1 else 1


def _weight_shape(input, class_dim):
    shape = [1] * input.ndim
    shape[class_dim] = -1
    return tuple(shape)


# ---------------------------------------------------------------- classification


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """torch.nn.functional.nll_loss: input holds log-probabilities, (C,), (N, C) or (N, C, d1, ...); target holds
    class indices, (), (N,) or (N, d1, ...). Targets equal to ignore_index add nothing and do not count in the
    mean, which divides by the summed weight of the counted targets (NaN when every target is ignored, as torch)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    class_dim = _class_dim(input)
    target = jnp.asarray(target)
    ignored = target == ignore_index
    safe = jnp.where(ignored, 0, target).astype(jnp.int32)
    picked = jnp.take_along_axis(input, jnp.expand_dims(safe, class_dim), axis=class_dim)
    picked = jnp.squeeze(picked, class_dim)
    w = jnp.ones((), input.dtype) if weight is None else jnp.asarray(weight, input.dtype)[safe]
    w = jnp.where(ignored, 0, w).astype(input.dtype)
    # `where`, not a product with the zero weight: with every target ignored the mean is 0 / 0 = NaN, and torch's
    # gradient is still 0 there (a product would send NaN back)
    loss = jnp.where(ignored, 0, -picked * w)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    if reduction == "mean":
        return jnp.sum(loss) / jnp.sum(jnp.broadcast_to(w, loss.shape))
    raise ValueError(f"{reduction} is not a valid value for reduction")


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """torch.nn.functional.cross_entropy: log_softmax over dim 1 (dim 0 for a (C,) input), then the NLL.

    `target` is either class indices (integer, shape of input without the class dim) or class probabilities
    (floating, the shape of input). With probabilities, ignore_index is not used and 'mean' divides by the
    number of samples (N * d1 * ...), whatever the weights. label_smoothing mixes in the uniform distribution
    over the C classes, with torch's weighting and ignore rules.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    class_dim = _class_dim(input)
    n_classes = input.shape[class_dim]
    logp = jax.nn.log_softmax(input, axis=class_dim)
    target = jnp.asarray(target)
    wshape = _weight_shape(input, class_dim)
    if jnp.issubdtype(target.dtype, jnp.floating):
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        terms = logp * target
        if weight is not None:
            terms = terms * jnp.reshape(weight, wshape)
        loss = -jnp.sum(terms, axis=class_dim)
        if reduction == "mean":
            return jnp.sum(loss) / (input.size // n_classes) if input.size else jnp.sum(loss) / 0.0
        return _reduce(loss, reduction)
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing <= 0:
        return nll
    ignored = target == ignore_index
    smooth = logp if weight is None else logp * jnp.reshape(weight, wshape)
    smooth = jnp.where(ignored, 0, -jnp.sum(smooth, axis=class_dim))
    if reduction == "none":
        ret = smooth
    elif reduction == "sum":
        ret = jnp.sum(smooth)
    elif reduction == "mean":
        if weight is None:
            denominator = jnp.sum(~ignored)
        else:
            safe = jnp.where(ignored, 0, target).astype(jnp.int32)
            denominator = jnp.sum(jnp.where(ignored, 0, jnp.asarray(weight)[safe]))
        ret = jnp.sum(smooth) / denominator
    else:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return (1 - label_smoothing) * nll + ret * (label_smoothing / n_classes)


@jax.custom_vjp
def _bce_terms(input, target):
    # torch clamps each log at -100, so that input 0 or 1 gives a finite loss
    log_p = jnp.maximum(jnp.log(input), -100.0)
    log_1mp = jnp.maximum(jnp.log1p(-input), -100.0)
    return (target - 1) * log_1mp - target * log_p


def _bce_fwd(input, target):
    return _bce_terms(input, target), (input, target)


def _bce_bwd(res, g):
    # torch's closed-form gradients: d/dinput = (input - target) / max(input * (1 - input), 1e-12),
    # d/dtarget = -logit(input); both finite where the clamped logs have no useful derivative
    input, target = res
    grad_input = g * (input - target) / jnp.maximum((1 - input) * input, 1e-12)
    grad_target = g * (jnp.log1p(-input) - jnp.log(input))
    return grad_input.astype(input.dtype), grad_target.astype(target.dtype)


_bce_terms.defvjp(_bce_fwd, _bce_bwd)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """torch.nn.functional.binary_cross_entropy on probabilities, with torch's log clamp at -100 and its gradient."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    input, target = jnp.broadcast_arrays(input, jnp.asarray(target, jnp.result_type(input)))
    loss = _bce_terms(input, target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """torch.nn.functional.binary_cross_entropy_with_logits: (1 - t) * x - (1 + (pos_weight - 1) * t) * logsigmoid(x),
    times weight; pos_weight broadcasts over the last (class) dim."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    log_sigmoid = jax.nn.log_sigmoid(input)
    if pos_weight is not None:
        log_sigmoid = log_sigmoid * ((pos_weight - 1) * target + 1)
    loss = (1 - target) * input - log_sigmoid
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """torch.nn.functional.multilabel_soft_margin_loss: the mean over classes of the logistic loss per sample."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = -(target * jax.nn.log_sigmoid(input) + (1 - target) * jax.nn.log_sigmoid(-input))
    if weight is not None:
        loss = loss * weight
    loss = jnp.sum(loss, axis=input.ndim - 1) / input.shape[-1]
    return _reduce(loss, reduction)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """torch.nn.functional.multi_margin_loss: sum over j != y of max(0, margin - x[y] + x[j]) ** p, divided by C."""
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x = input if input.ndim > 1 else input[None]
    y = jnp.reshape(jnp.asarray(target), (-1,)).astype(jnp.int32)
    x_y = jnp.take_along_axis(x, y[:, None], axis=1)
    z = margin - x_y + x
    h = z if p == 1 else z * z
    if weight is not None:
        h = h * jnp.asarray(weight, x.dtype)[y][:, None]
    not_target = jnp.arange(x.shape[1])[None, :] != y[:, None]
    loss = jnp.sum(jnp.where((z > 0) & not_target, h, 0), axis=1) / x.shape[1]
    if input.ndim <= 1:
        loss = loss[0]
    return _reduce(loss, reduction)


# ---------------------------------------------------------------- regression


def _weighted(loss, weight, reduction, mean_by_weight):
    loss = loss * weight
    if reduction == "mean" and mean_by_weight:
        return jnp.sum(loss) / jnp.sum(weight)
    return _reduce(loss, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """torch.nn.functional.mse_loss; with `weight` (input's shape), 'mean' is sum(w * err ** 2) / sum(w)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = jnp.square(input - target)
    return _reduce(loss, reduction) if weight is None else _weighted(loss, weight, reduction, True)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """torch.nn.functional.l1_loss; with `weight` (input's shape), 'mean' is sum(w * |err|) / sum(w)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = _abs(input - target)
    return _reduce(loss, reduction) if weight is None else _weighted(loss, weight, reduction, True)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """torch.nn.functional.smooth_l1_loss: 0.5 * d ** 2 / beta where |d| < beta, else |d| - 0.5 * beta (L1 at beta 0)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    d = _abs(input - target)
    if beta == 0:
        return _reduce(d, reduction)
    loss = jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """torch.nn.functional.huber_loss: 0.5 * d ** 2 where |d| < delta, else delta * (|d| - 0.5 * delta).
    With `weight`, 'mean' is the plain mean of the weighted losses (unlike mse_loss/l1_loss)."""
    d = _abs(input - target)
    loss = jnp.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return _reduce(loss, reduction) if weight is None else _weighted(loss, weight, reduction, False)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """torch.nn.functional.kl_div: input holds log-probabilities; target probabilities (log-probabilities with
    log_target=True). Pointwise target * (log(target) - input), 0 where target is 0. 'batchmean' divides the sum
    by the batch size (the mathematically right KL); torch's default 'mean' divides by the element count."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if log_target:
        loss = jnp.exp(target) * (target - input)
    else:
        loss = jax.scipy.special.xlogy(target, target) - target * input
    if reduction == "batchmean":
        return jnp.sum(loss) / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """torch.nn.functional.poisson_nll_loss: exp(input) - target * input (log_input), else
    input - target * log(input + eps); full adds Stirling's term where target > 1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if log_input:
        loss = jnp.exp(input) - target * input
    else:
        loss = input - target * jnp.log(input + eps)
    if full:
        safe = jnp.where(target > 1, target, 2.0)
        stirling = safe * jnp.log(safe) - safe + 0.5 * jnp.log(2 * math.pi * safe)
        loss = loss + jnp.where(target > 1, stirling, 0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """torch.nn.functional.gaussian_nll_loss: 0.5 * (log(var) + (input - target) ** 2 / var), var clamped at eps
    (without a gradient through the clamp, as torch); a var one dim short of input is broadcast over the last."""
    if isinstance(var, (int, float)):
        var = jnp.full_like(input, var)
    elif var.shape != input.shape and input.shape[:-1] == var.shape:
        var = var[..., None]
    var = var + jax.lax.stop_gradient(jnp.maximum(var, eps) - var)
    loss = 0.5 * (jnp.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    return _reduce(loss, reduction)


# ---------------------------------------------------------------- embeddings and ranking


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """torch.nn.functional.cosine_similarity: sum(x1 / max(|x1|, eps) * x2 / max(|x2|, eps)) along dim.
    Like torch, the clamp at eps carries no gradient, and a zero vector's norm has a zero gradient."""
    x1, x2 = jnp.broadcast_arrays(x1, x2)
    n1 = _vector_norm(x1, 2, dim, keepdims=True)
    n2 = _vector_norm(x2, 2, dim, keepdims=True)
    n1 = n1 + jax.lax.stop_gradient(jnp.maximum(n1, eps) - n1)
    n2 = n2 + jax.lax.stop_gradient(jnp.maximum(n2, eps) - n2)
    return jnp.sum((x1 / n1) * (x2 / n2), axis=dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """torch.nn.functional.pairwise_distance: the p-norm of x1 - x2 + eps over the last dim."""
    return _vector_norm(x1 - x2 + eps, p, max(jnp.ndim(x1), jnp.ndim(x2)) - 1, keepdims=keepdim)


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """torch.nn.functional.cosine_embedding_loss: 1 - cos where target == 1, max(0, cos - margin) where
    target == -1 (cos with torch's 1e-12 added to each squared norm)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    dim = jnp.ndim(target)
    prod = jnp.sum(input1 * input2, axis=dim)
    mag1 = jnp.sum(input1 * input1, axis=dim) + 1e-12
    mag2 = jnp.sum(input2 * input2, axis=dim) + 1e-12
    cos = prod / jnp.sqrt(mag1 * mag2)
    loss = jnp.where(target == 1, 1 - cos, 0) + jnp.where(target == -1, _clamp_min(cos - margin), 0)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """torch.nn.functional.margin_ranking_loss: max(0, -target * (input1 - input2) + margin)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _reduce(_clamp_min(-target * (input1 - input2) + margin), reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """torch.nn.functional.hinge_embedding_loss: input where target != -1, plus max(0, margin - input) where
    target != 1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = jnp.where(target != 1, _clamp_min(margin - input), 0) + jnp.where(target != -1, input, 0)
    return _reduce(loss, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """torch.nn.functional.soft_margin_loss: log(1 + exp(-target * input))."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _reduce(jnp.log1p(jnp.exp(-target * input)), reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """torch.nn.functional.triplet_margin_loss: max(0, margin + d(a, p) - d(a, n)) with pairwise_distance;
    swap uses min(d(a, n), d(p, n))."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = jnp.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(_clamp_min(margin + d_pos - d_neg), reduction)


# ---------------------------------------------------------------- other functional helpers


def one_hot(tensor, num_classes=-1):
    """torch.nn.functional.one_hot: integer one-hot vectors in a new last dim.

    num_classes=-1 means max(tensor) + 1, a value-dependent shape: it works on concrete arrays only, not under
    jax.jit/grad/vmap tracing; pass num_classes explicitly there.
    """
    if num_classes == -1:
        try:
            num_classes = int(jnp.max(tensor)) + 1
        except jax.errors.ConcretizationTypeError:
            raise ValueError(
                "one_hot(num_classes=-1) infers the class count from the values, which a traced (jit) array does "
                "not have: pass num_classes explicitly"
            ) from None
    return jax.nn.one_hot(tensor, num_classes, dtype=jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False, *, dropout_key=None):
    """torch.nn.functional.scaled_dot_product_attention on (..., L, E) queries and (..., S, E) keys/values.

    attn_mask is a bool mask (True takes part) or a float mask added to the scores; is_causal masks the upper
    triangle (top-left aligned when L != S). Rows that are masked entirely give zeros, like torch's math kernel.
    dropout_p > 0 needs `dropout_key` (a PRNG key): torch's `key` argument is the key tensor.
    """
    if is_causal and attn_mask is not None:
        raise ValueError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    length, source = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if enable_gqa and key.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        repeats = query.shape[-3] // key.shape[-3]
        key = jnp.repeat(key, repeats, axis=-3)
        value = jnp.repeat(value, repeats, axis=-3)
    scores = (query @ jnp.swapaxes(key, -2, -1)) * scale
    if is_causal:
        scores = jnp.where(jnp.tril(jnp.ones((length, source), bool)), scores, -jnp.inf)
    if attn_mask is not None:
        attn_mask = jnp.asarray(attn_mask)
        if attn_mask.dtype == jnp.bool_:
            scores = jnp.where(attn_mask, scores, -jnp.inf)
        else:
            scores = scores + attn_mask
    fully_masked = jnp.all(scores == -jnp.inf, axis=-1, keepdims=True)
    weights = jax.nn.softmax(jnp.where(fully_masked, 0, scores), axis=-1)
    weights = jnp.where(fully_masked, 0, weights)
    if dropout_p > 0:
        if dropout_key is None:
            raise ValueError("scaled_dot_product_attention with dropout_p > 0 needs dropout_key=<a PRNG key>")
        keep = jax.random.bernoulli(dropout_key, 1 - dropout_p, weights.shape)
        weights = jnp.where(keep, weights / (1 - dropout_p), 0)
    return weights @ value


# ---------------------------------------------------------------- the nn.*Loss modules


class _Loss(eqx.Module):
    reduction: str = eqx.field(static=True, default="mean")


class CrossEntropyLoss(_Loss):
    """torch.nn.CrossEntropyLoss: `CrossEntropyLoss(...)(input, target)` is cross_entropy(input, target, ...)."""

    weight: jax.Array | None = None
    ignore_index: int = eqx.field(static=True, default=-100)
    label_smoothing: float = eqx.field(static=True, default=0.0)

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        self.weight = weight
        self.ignore_index = ignore_index
        self.reduction = _legacy_reduction(size_average, reduce, reduction)
        self.label_smoothing = label_smoothing

    def __call__(self, input, target):
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                             label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """torch.nn.NLLLoss: nll_loss on log-probabilities."""

    weight: jax.Array | None = None
    ignore_index: int = eqx.field(static=True, default=-100)

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        self.weight = weight
        self.ignore_index = ignore_index
        self.reduction = _legacy_reduction(size_average, reduce, reduction)

    def __call__(self, input, target):
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class _WeightedLoss(_Loss):
    weight: jax.Array | None = None

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        self.weight = weight
        self.reduction = _legacy_reduction(size_average, reduce, reduction)


class BCELoss(_WeightedLoss):
    """torch.nn.BCELoss: binary_cross_entropy on probabilities."""

    def __call__(self, input, target):
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """torch.nn.MultiLabelSoftMarginLoss."""

    def __call__(self, input, target):
        return multilabel_soft_margin_loss(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """torch.nn.BCEWithLogitsLoss: binary_cross_entropy_with_logits, with weight and pos_weight."""

    weight: jax.Array | None = None
    pos_weight: jax.Array | None = None

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        self.weight = weight
        self.pos_weight = pos_weight
        self.reduction = _legacy_reduction(size_average, reduce, reduction)

    def __call__(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                pos_weight=self.pos_weight)


class _PlainLoss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        self.reduction = _legacy_reduction(size_average, reduce, reduction)


class MSELoss(_PlainLoss):
    """torch.nn.MSELoss."""

    def __call__(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_PlainLoss):
    """torch.nn.L1Loss."""

    def __call__(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)


class SoftMarginLoss(_PlainLoss):
    """torch.nn.SoftMarginLoss."""

    def __call__(self, input, target):
        return soft_margin_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """torch.nn.SmoothL1Loss."""

    beta: float = eqx.field(static=True, default=1.0)

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        self.reduction = _legacy_reduction(size_average, reduce, reduction)
        self.beta = beta

    def __call__(self, input, target):
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """torch.nn.HuberLoss."""

    delta: float = eqx.field(static=True, default=1.0)

    def __init__(self, reduction="mean", delta=1.0):
        self.reduction = reduction
        self.delta = delta

    def __call__(self, input, target):
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(_Loss):
    """torch.nn.KLDivLoss: kl_div(input, target); input holds log-probabilities."""

    log_target: bool = eqx.field(static=True, default=False)

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        self.reduction = _legacy_reduction(size_average, reduce, reduction)
        self.log_target = log_target

    def __call__(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class _MarginLoss(_Loss):
    margin: float = eqx.field(static=True, default=0.0)

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        self.margin = margin
        self.reduction = _legacy_reduction(size_average, reduce, reduction)


class CosineEmbeddingLoss(_MarginLoss):
    """torch.nn.CosineEmbeddingLoss: called with (input1, input2, target)."""

    def __call__(self, input1, input2, target):
        return cosine_embedding_loss(input1, input2, target, self.margin, reduction=self.reduction)


class MarginRankingLoss(_MarginLoss):
    """torch.nn.MarginRankingLoss: called with (input1, input2, target)."""

    def __call__(self, input1, input2, target):
        return margin_ranking_loss(input1, input2, target, self.margin, reduction=self.reduction)


class HingeEmbeddingLoss(_MarginLoss):
    """torch.nn.HingeEmbeddingLoss (margin defaults to 1.0)."""

    def __init__(self, margin=1.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(margin, size_average, reduce, reduction)

    def __call__(self, input, target):
        return hinge_embedding_loss(input, target, self.margin, reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """torch.nn.TripletMarginLoss: called with (anchor, positive, negative)."""

    margin: float = eqx.field(static=True, default=1.0)
    p: float = eqx.field(static=True, default=2.0)
    eps: float = eqx.field(static=True, default=1e-6)
    swap: bool = eqx.field(static=True, default=False)

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None, reduce=None, reduction="mean"):
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap
        self.reduction = _legacy_reduction(size_average, reduce, reduction)

    def __call__(self, anchor, positive, negative):
        return triplet_margin_loss(anchor, positive, negative, self.margin, self.p, self.eps, self.swap,
                                   reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    """torch.nn.PoissonNLLLoss."""

    log_input: bool = eqx.field(static=True, default=True)
    full: bool = eqx.field(static=True, default=False)
    eps: float = eqx.field(static=True, default=1e-8)

    def __init__(self, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None, reduction="mean"):
        self.log_input, self.full, self.eps = log_input, full, eps
        self.reduction = _legacy_reduction(size_average, reduce, reduction)

    def __call__(self, log_input, target):
        return poisson_nll_loss(log_input, target, self.log_input, self.full, eps=self.eps, reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """torch.nn.GaussianNLLLoss: called with (input, target, var)."""

    full: bool = eqx.field(static=True, default=False)
    eps: float = eqx.field(static=True, default=1e-6)

    def __init__(self, *, full=False, eps=1e-6, reduction="mean"):
        self.full, self.eps, self.reduction = full, eps, reduction

    def __call__(self, input, target, var):
        return gaussian_nll_loss(input, target, var, self.full, self.eps, self.reduction)


class MultiMarginLoss(_Loss):
    """torch.nn.MultiMarginLoss."""

    p: int = eqx.field(static=True, default=1)
    margin: float = eqx.field(static=True, default=1.0)
    weight: jax.Array | None = None

    def __init__(self, p=1, margin=1.0, weight=None, size_average=None, reduce=None, reduction="mean"):
        self.p, self.margin, self.weight = p, margin, weight
        self.reduction = _legacy_reduction(size_average, reduce, reduction)

    def __call__(self, input, target):
        return multi_margin_loss(input, target, self.p, self.margin, self.weight, reduction=self.reduction)
