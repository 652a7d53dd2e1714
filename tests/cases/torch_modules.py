"""Torch modules that tests/test_modules.py translates and compares against torch (not imported by the tests:
read as source)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import nn as tnn


class MLP(nn.Module):
    def __init__(self, d_in=6, d_hidden=12, d_out=3, p=0.2):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(p)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(self.drop(self.act(self.fc1(x))))


class ConvNet(tnn.Module):
    def __init__(self, num_classes=4):
        super(ConvNet, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = self.pool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class PreNormBlock(nn.Module):
    def __init__(self, d_model=16, n_heads=4, p=0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=p, batch_first=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        x = x + a
        return x + self.mlp(self.ln2(x))


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.n_embd = n_embd
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class GPTBlock(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    def __init__(self, vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=2):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Parameter(torch.zeros(1, block_size, n_embd))
        self.blocks = nn.ModuleList([GPTBlock(n_embd, n_head, block_size) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, idx):
        b, t = idx.shape
        x = self.wte(idx) + self.wpe[:, :t, :]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class LSTMTagger(nn.Module):
    def __init__(self, vocab_size=13, embedding_dim=8, hidden_dim=10, tagset_size=5):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, batch_first=True)
        self.hidden2tag = nn.Linear(hidden_dim, tagset_size)

    def forward(self, sentence):
        embeds = self.word_embeddings(sentence)
        lstm_out, _ = self.lstm(embeds)
        tag_space = self.hidden2tag(lstm_out)
        return F.log_softmax(tag_space, dim=-1)


class ResBlock1d(nn.Module):
    def __init__(self, channels=8, groups=4):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels)

    def forward(self, x):
        h = F.silu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.silu(x + h)


class SiameseBN(nn.Module):
    """Helper methods that reach BatchNorm (one through the other): they thread the state like forward."""

    def __init__(self, d=5, h=6):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU())
        self.head = nn.Linear(h, 3)

    def embed(self, x):
        return self.enc(x)

    def project(self, x):
        return self.head(self.embed(x))

    def forward(self, a, b):
        return (self.project(a) - self.project(b)).pow(2).sum(-1)


class ConvBNAct(nn.Sequential):
    """torchvision's ConvBNReLU: a Sequential subclass whose layers hold BatchNorm."""

    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class BNUnit(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class StackedBN(nn.Module):
    """A Sequential built from a list (MobileNet's features), through a class alias, with a Sequential subclass."""

    def __init__(self, c=3, w=4):
        super().__init__()
        unit = BNUnit
        layers = [ConvBNAct(c, w)]
        for _ in range(2):
            layers.append(unit(w, w))
        self.features = nn.Sequential(*layers)
        self.extra = ConvBNAct(w, w)
        self.head = nn.Linear(w, 2)

    def forward(self, x):
        return self.head(self.extra(self.features(x)).mean((2, 3)))


class MaskCache(nn.Module):
    """word_language_model's TransformerModel: a causal mask cached in a field __init__ leaves None."""

    def __init__(self, d=6):
        super().__init__()
        self.proj = nn.Linear(d, d)
        self.src_mask = None

    def forward(self, x):
        if self.src_mask is None or self.src_mask.size(0) != x.size(1):
            mask = torch.triu(torch.ones(x.size(1), x.size(1)), diagonal=1).bool()
            self.src_mask = mask
        scores = self.proj(x) @ x.transpose(1, 2)
        return scores.masked_fill(self.src_mask, float("-inf")).softmax(-1) @ x


class Base(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        return self.proj(x)


class Derived(Base):
    def __init__(self, d=5):
        super().__init__(d)
        self.scale = nn.Parameter(torch.ones(d) * 0.5)

    def forward(self, x):
        return super().forward(x) * self.scale


class NamedParts(nn.Module):
    """Layers in a ModuleDict, reached by attribute (nanoGPT's self.transformer.wte), one of them stateful."""

    def __init__(self, d=6):
        super().__init__()
        self.parts = nn.ModuleDict(dict(inp=nn.Linear(d, 8), norm=nn.BatchNorm1d(8), out=nn.Linear(8, 3)))

    def forward(self, x):
        h = torch.relu(self.parts.norm(self.parts.inp(x)))
        return self.parts.out(h) + self.parts["out"].bias


class TiedLM(nn.Module):
    """nanoGPT's weight tying through a ModuleDict (`self.transformer.wte.weight = self.lm_head.weight`): torch
    names the shared matrix transformer.wte.weight, and the output layer reads it through a helper method."""

    def __init__(self, vocab=13, d=8):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(vocab, d), ln=nn.LayerNorm(d)))
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def logits(self, h):
        return self.lm_head(h) + 0.5 * h @ self.transformer.wte.weight.t()

    def forward(self, idx):
        h = self.transformer.ln(torch.tanh(self.transformer.wte(idx)))
        return self.logits(h)


class SharedConvBlock(nn.Module):
    """The TCN block's layout: fields that are also the layers of a Sequential (one module in two places), weights
    re-initialised through the field names after the Sequential is built, and the field called directly too."""

    def __init__(self, c=4):
        super().__init__()
        self.conv1 = nn.Conv1d(c, c, 3, padding=1)
        self.act = nn.Tanh()
        self.conv2 = nn.Conv1d(c, c, 1)
        self.net = nn.Sequential(self.conv1, self.act, self.conv2)
        self.branches = nn.ModuleList([self.conv2, nn.Conv1d(c, c, 1)])
        self.conv1.weight.data.normal_(0, 0.1)
        nn.init.zeros_(self.branches[0].bias)

    def forward(self, x):
        return self.net(x) + self.conv1(x) * self.branches[1](x)


class ShortcutBlock(nn.Module):
    """ResNet's shortcut: an empty Sequential, replaced on some paths by one holding BatchNorm, added in place."""

    def __init__(self, cin=3, c=4, stride=2):
        super().__init__()
        self.conv = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != c:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        out = self.bn(self.conv(x))
        out += self.shortcut(x)
        return F.relu(out)


class Affine(nn.Module):
    def __init__(self, d=3):
        super().__init__()
        self.log_scale = nn.Parameter(torch.linspace(-0.2, 0.2, d))
        self.shift = nn.Linear(d, d)

    def forward(self, x):
        return x * torch.exp(self.log_scale) + self.shift(x).tanh()

    def inverse(self, y):  # a Tensor method's name, on a module
        return y * torch.exp(-self.log_scale)


class AffineFlow(nn.Module):
    """A flow's layers called through their own `inverse` (RealNVP), next to a tensor's `.inverse()`."""

    def __init__(self, d=3, n=2):
        super().__init__()
        self.layers = nn.ModuleList([Affine(d) for _ in range(n)])

    def forward(self, x):
        z = x
        for layer in self.layers:
            z = layer(z)
        back = z
        for layer in reversed(self.layers):
            back = layer.inverse(back)
        square = torch.eye(3) * 2 + z[:3, :3] * 0.1
        return back, square.inverse()


class CopyTransformer(nn.Module):
    """An encoder-decoder nn.Transformer over token embeddings, with a causal target mask from the class's static
    generate_square_subsequent_mask and padding masks. (The decoder ignores padded memory: torch's eval fast path
    zeroes the encoder's outputs there, which the translation does not.)"""

    def __init__(self, vocab=11, d=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.transformer = nn.Transformer(d_model=d, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                                          dim_feedforward=16, dropout=0.0, batch_first=True)
        self.out = nn.Linear(d, vocab)

    def forward(self, src, tgt):
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        pad = src == 0
        h = self.transformer(self.embed(src), self.embed(tgt), tgt_mask=mask, src_key_padding_mask=pad,
                             tgt_key_padding_mask=tgt == 0, memory_key_padding_mask=pad)
        return self.out(h)


class FilledBN(nn.Module):
    """`for p in self.parameters(): p.copy_(...)` in __init__ over a model holding BatchNorm: the values go to the
    parameters in torch's order (not to the BatchNorm statistics' initial arrays, which Equinox keeps in the module
    until make_with_state takes them)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        scale = 1.0
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.linspace(-1.0, 1.0, p.numel()).reshape(p.shape) * scale)
                scale += 1.0

    def forward(self, x):
        return self.body(x)
