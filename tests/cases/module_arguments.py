"""Torch modules whose submodules come from constructor arguments: a module handed in (or None), a layer class
handed in (norm_layer=nn.BatchNorm2d), and attention dropout through F.scaled_dot_product_attention. Read as
source by tests/test_module_arguments.py (not imported)."""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F


class ShortcutBlock(nn.Module):
    """A residual block whose shortcut is whatever module the caller hands it, or the identity (torchvision's
    BasicBlock and its `downsample`)."""

    def __init__(self, c_in, c_out, stride=1, shortcut=None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.shortcut = shortcut

    def forward(self, x):
        out = self.bn(self.conv(x))
        identity = x
        if self.shortcut is not None:
            identity = self.shortcut(x)
        return F.relu(out + identity)


class InlineShortcutBlock(nn.Module):
    """The same, choosing the shortcut in a conditional expression (timm's style)."""

    def __init__(self, c, shortcut=None):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.shortcut = shortcut

    def forward(self, x):
        identity = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(self.bn(self.conv(x)) + identity)


class ShortcutNet(nn.Module):
    """Builds shortcuts (conv + BatchNorm, so they hold state) and passes them positionally or by keyword; two
    blocks get none."""

    def __init__(self, c=3, width=6):
        super().__init__()
        shortcut = nn.Sequential(nn.Conv2d(c, width, 1, stride=2, bias=False), nn.BatchNorm2d(width))
        self.block1 = ShortcutBlock(c, width, 2, shortcut)
        self.block2 = ShortcutBlock(width, width)
        self.block3 = InlineShortcutBlock(width)
        self.block4 = InlineShortcutBlock(width, shortcut=nn.Sequential(nn.Conv2d(width, width, 1),
                                                                        nn.BatchNorm2d(width)))
        self.head = nn.Linear(width, 4)

    def forward(self, x):
        x = self.block2(self.block1(x))
        x = self.block4(self.block3(x))
        return self.head(x.mean((2, 3)))


class Gated(nn.Module):
    """A stateless block holding a module it is given: its parameters are trained like any other."""

    def __init__(self, d, gate):
        super().__init__()
        self.proj = nn.Linear(d, d)
        self.gate = gate

    def forward(self, x):
        return self.proj(x) * torch.sigmoid(self.gate(x))


class GatedNet(nn.Module):
    def __init__(self, d=5):
        super().__init__()
        self.body = Gated(d, nn.Linear(d, d))

    def forward(self, x):
        return self.body(x)


class NormConv(nn.Module):
    """conv -> norm -> relu, the norm built from a class argument (BatchNorm2d unless told otherwise)."""

    def __init__(self, c_in, c_out, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = norm_layer(c_out)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


class NormNet(nn.Module):
    """norm_layer=None replaced by nn.BatchNorm2d, kept on self and handed to a block and to a Sequential."""

    def __init__(self, c_in=3, c_out=6, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.stem = NormConv(c_in, c_out, norm_layer)
        self.proj = nn.Sequential(nn.Conv2d(c_out, c_out, 1), norm_layer(c_out))

    def forward(self, x):
        return self.proj(self.stem(x))


class GroupNormStack(nn.Module):
    """NormConv blocks given norm classes without running statistics: nothing here holds state."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(NormConv(3, 6, partial(nn.GroupNorm, 2)), NormConv(6, 4, partial(nn.GroupNorm, 1)))

    def forward(self, x):
        return self.blocks(x)


class DropAttention(nn.Module):
    """Causal self-attention whose dropout is F.scaled_dot_product_attention's dropout_p in train mode."""

    def __init__(self, d=8, heads=2, p=0.5):
        super().__init__()
        self.heads = heads
        self.p = p
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


def make_features(widths, batch_norm=False):
    """torchvision's VGG make_layers: the layers exist only in this function's list."""
    layers = []
    c_in = 3
    for w in widths:
        layers += [nn.Conv2d(c_in, w, 3, padding=1)]
        if batch_norm:
            layers += [nn.BatchNorm2d(w)]
        layers += [nn.ReLU(inplace=True)]
        c_in = w
    return nn.Sequential(*layers)


class FeatureClassifier(nn.Module):
    """Its only stateful part is the `features` it is given."""

    def __init__(self, features, width=6, num_classes=3):
        super().__init__()
        self.features = features
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class BatchNormFeatureClassifier(FeatureClassifier):
    def __init__(self):
        super().__init__(make_features([4, 6], batch_norm=True))


class LayerLoop(nn.Module):
    """Calls the layers of a ModuleList it is given one by one."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class LayerLoopNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = LayerLoop(nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh()]))

    def forward(self, x):
        return self.body(x)


class OptionalNormConv(nn.Module):
    """No norm unless the caller names a class: `norm_layer(c) if norm_layer else nn.Identity()`."""

    def __init__(self, c_in, c_out, norm_layer=None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = norm_layer(c_out) if norm_layer is not None else nn.Identity()

    def forward(self, x):
        return torch.tanh(self.norm(self.conv(x)))


class GivenNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.plain = OptionalNormConv(3, 4)
        self.normed = OptionalNormConv(4, 4, norm_layer=nn.BatchNorm2d)

    def forward(self, x):
        return self.normed(self.plain(x))
