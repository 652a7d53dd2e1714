"""Everyday tensor code, written the way real models write it (the shape of issue 2's held-out check)."""
import math

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).type_as(x)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def normalized_scores(x, dim=-1):
    mu = x.mean(dim, keepdim=True)
    sd = x.std(dim, keepdim=True, unbiased=False)
    return (x - mu) / (sd + 1e-5)


def max_pooled(x):
    values, idx = torch.max(x, dim=1)
    best = x.max(-1).values
    return values + best.sum(), idx


def heads(x, n_heads):
    b, t, c = x.size()
    q = x.view(b, t, n_heads, c // n_heads).transpose(1, 2)
    return q.permute(0, 2, 1, 3).contiguous().view(b, t, -1)


def attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(mask == 0, float("-inf"))
    weights = F.softmax(scores, dim=-1)
    return torch.matmul(weights, v), weights


def expand_and_stack(x, y):
    z = torch.cat([x, y], dim=0)
    s = torch.stack((x, y), dim=1)
    row = x[:1].expand(3, -1)
    return z.sum(0, keepdim=True) + s.mean(1)[:1] + row[:1]


def losses(logits, target, pred, y):
    ce = F.cross_entropy(logits, target, reduction="mean")
    nll = F.nll_loss(F.log_softmax(logits, dim=1), target)
    mse = F.mse_loss(pred, y)
    l1 = F.smooth_l1_loss(pred, y, beta=0.5)
    bce = F.binary_cross_entropy_with_logits(pred, torch.sigmoid(y))
    return ce + nll + mse + l1 + bce


def clamp_where(x):
    y = torch.clamp(x, -1.0, 2.0)
    z = torch.where(x > 0, y, torch.zeros_like(x))
    return z.abs().pow(1.5) + x.clamp_min(0.5)


def top_gather(scores, values):
    top, idx = scores.topk(3, dim=-1)
    picked = torch.gather(values, -1, idx)
    return top * picked, idx


def pad_norm(x, w, b):
    x = F.pad(x, (1, 2))
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def mixing(a, b):
    return torch.einsum("bij,bjk->bik", a, b) + torch.bmm(a, b).relu()


def reductions(x):
    s = x.sum(dim=(1, 2))
    p = x.prod(-1).mean()
    a = x.argmax(dim=1, keepdim=True).float()
    n = x.norm(p=2, dim=-1)
    return s + p, a, n, torch.logsumexp(x, dim=-1), x.cumsum(1)
