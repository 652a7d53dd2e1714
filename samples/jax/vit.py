"""A small Vision Transformer (Dosovitskiy et al. 2020) trained on synthetic 32x32 images.

Patch embedding with a strided Conv2d, a learnable [CLS] token and learnable
position embeddings (nn.Parameter, truncated-normal init), pre-norm blocks of
multi-head self-attention (fused scaled_dot_product_attention, or the explicit
softmax(QK^T)V when fused_attn=False) and a GELU MLP, stochastic depth
(DropPath), and a classification head on the [CLS] token. Trained with AdamW
(no weight decay on biases, norms, cls_token and pos_embed), a linear warmup
followed by cosine decay (SequentialLR), and gradient-norm clipping.
"""
import argparse
import math

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


def drop_path(x, drop_prob: float = 0., training: bool = False, scale_by_keep: bool = True, *, key):
    """Drop whole residual branches per sample (stochastic depth)."""
    if drop_prob == 0. or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # work with diff dim tensors, not just 2D ConvNets
    random_tensor = jax.random.bernoulli(key, keep_prob, jnp.empty(shape, dtype=x.dtype).shape).astype(jnp.empty(shape, dtype=x.dtype).dtype)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor = jnp.true_divide(random_tensor, keep_prob)
    return x * random_tensor


class DropPath(eqx.Module):
    drop_prob: object = eqx.field(static=True)
    scale_by_keep: object = eqx.field(static=True)
    inference: bool

    def __init__(self, drop_prob=0., scale_by_keep=True):
        self.inference = False
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def __call__(self, x, *, key=None):
        return drop_path(x, self.drop_prob, not self.inference, self.scale_by_keep, key=key)

    def extra_repr(self):
        return f'drop_prob={round(self.drop_prob, 3):0.3f}'


class PatchEmbed(eqx.Module):
    """2D image to a sequence of patch embeddings."""

    img_size: object = eqx.field(static=True)
    patch_size: object = eqx.field(static=True)
    grid_size: object = eqx.field(static=True)
    num_patches: object
    proj: t2j.nn.Conv2d

    def __init__(self, img_size=32, patch_size=4, in_chans=3, embed_dim=64, *, key):
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = t2j.nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, key=key)

    def __call__(self, x, *, key=None):
        B, C, H, W = x.shape
        assert H == self.img_size[0] and W == self.img_size[1], \
            f"Input size ({H}*{W}) doesn't match model ({self.img_size[0]}*{self.img_size[1]})."
        x = jnp.swapaxes(t2j.flatten(self.proj(x), start_dim=2), 1, 2)  # B, C, H, W -> B, N, C
        return x


class Attention(eqx.Module):
    num_heads: object
    head_dim: object
    scale: object
    fused_attn: object
    qkv: t2j.nn.Linear
    attn_drop: t2j.nn.Dropout
    proj: t2j.nn.Linear
    proj_drop: t2j.nn.Dropout
    inference: bool

    def __init__(self, dim, num_heads=8, qkv_bias=False, attn_drop=0., proj_drop=0., fused_attn=True, *, key):
        self.inference = False
        assert dim % num_heads == 0, 'dim should be divisible by num_heads'
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn

        key, subkey = jax.random.split(key)
        self.qkv = t2j.nn.Linear(dim, dim * 3, bias=qkv_bias, key=subkey)
        self.attn_drop = t2j.nn.Dropout(p=attn_drop)
        key, subkey = jax.random.split(key)
        self.proj = t2j.nn.Linear(dim, dim, key=subkey)
        self.proj_drop = t2j.nn.Dropout(p=proj_drop)

    def __call__(self, x, *, key=None):
        B, N, C = x.shape
        qkv = jnp.transpose(jnp.reshape(self.qkv(x), (B, N, 3, self.num_heads, self.head_dim)), (2, 0, 3, 1, 4))
        q, k, v = jnp.unstack(qkv, axis=0)

        if self.fused_attn:
            key, subkey = t2j.split_key(key)
            x = t2j.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if not self.inference else 0., dropout_key=subkey)
        else:
            q = q * self.scale
            attn = q @ jnp.swapaxes(k, -2, -1)
            attn = jax.nn.softmax(attn, axis=-1)
            key, subkey = t2j.split_key(key)
            attn = self.attn_drop(attn, key=subkey)
            x = attn @ v

        x = jnp.reshape(jnp.swapaxes(x, 1, 2), (B, N, C))
        x = self.proj(x)
        key, subkey = t2j.split_key(key)
        x = self.proj_drop(x, key=subkey)
        return x


class Mlp(eqx.Module):
    fc1: t2j.nn.Linear
    act: object
    drop1: t2j.nn.Dropout
    fc2: t2j.nn.Linear
    drop2: t2j.nn.Dropout

    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=t2j.nn.GELU, drop=0., *, key):
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        key, subkey = jax.random.split(key)
        self.fc1 = t2j.nn.Linear(in_features, hidden_features, key=subkey)
        self.act = act_layer()
        self.drop1 = t2j.nn.Dropout(p=drop)
        key, subkey = jax.random.split(key)
        self.fc2 = t2j.nn.Linear(hidden_features, out_features, key=subkey)
        self.drop2 = t2j.nn.Dropout(p=drop)

    def __call__(self, x, *, key=None):
        x = self.fc1(x)
        x = self.act(x)
        key, subkey = t2j.split_key(key)
        x = self.drop1(x, key=subkey)
        x = self.fc2(x)
        key, subkey = t2j.split_key(key)
        x = self.drop2(x, key=subkey)
        return x


class Block(eqx.Module):
    norm1: object
    attn: Attention
    drop_path1: object
    norm2: object
    mlp: Mlp
    drop_path2: object

    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False, drop=0., attn_drop=0.,
                 drop_path=0., act_layer=t2j.nn.GELU, norm_layer=t2j.nn.LayerNorm, fused_attn=True, *, key):
        self.norm1 = norm_layer(dim)
        key, subkey = jax.random.split(key)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                              proj_drop=drop, fused_attn=fused_attn, key=subkey)
        # NOTE: drop path for stochastic depth, we shall see if this is better than dropout here
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else t2j.nn.Identity()
        self.norm2 = norm_layer(dim)
        key, subkey = jax.random.split(key)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=drop, key=subkey)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else t2j.nn.Identity()

    def __call__(self, x, *, key=None):
        key, subkey1, subkey2 = t2j.split_key(key, 3)
        x = x + self.drop_path1(self.attn(self.norm1(x), key=subkey2), key=subkey1)
        key, subkey1, subkey2 = t2j.split_key(key, 3)
        x = x + self.drop_path2(self.mlp(self.norm2(x), key=subkey2), key=subkey1)
        return x


class VisionTransformer(eqx.Module):
    num_classes: object = eqx.field(static=True)
    num_features: object
    embed_dim: object
    patch_embed: PatchEmbed
    cls_token: jax.Array
    pos_embed: jax.Array
    pos_drop: t2j.nn.Dropout
    blocks: t2j.nn.Sequential
    norm: t2j.nn.LayerNorm
    head: object

    def __init__(self, img_size=32, patch_size=4, in_chans=3, num_classes=10, embed_dim=64, depth=4,
                 num_heads=4, mlp_ratio=2., qkv_bias=True, drop_rate=0., attn_drop_rate=0.,
                 drop_path_rate=0.1, fused_attn=True, *, key):
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        norm_layer = t2j.nn.LayerNorm

        key, subkey = jax.random.split(key)
        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size,
                                      in_chans=in_chans, embed_dim=embed_dim, key=subkey)
        num_patches = self.patch_embed.num_patches

        self.cls_token = jnp.zeros((1, 1, embed_dim))
        self.pos_embed = jnp.zeros((1, num_patches + 1, embed_dim))
        self.pos_drop = t2j.nn.Dropout(p=drop_rate)

        dpr = [x.item() for x in jnp.linspace(0, drop_path_rate, depth)]  # stochastic depth decay rule
        key, subkey = jax.random.split(key)
        self.blocks = t2j.nn.Sequential(*[
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                  drop=drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i], norm_layer=norm_layer,
                  fused_attn=fused_attn, key=k)
            for i, k in zip(range(depth), jax.random.split(subkey, depth))])
        self.norm = norm_layer(embed_dim)
        key, subkey = jax.random.split(key)
        self.head = t2j.nn.Linear(self.num_features, num_classes, key=subkey) if num_classes > 0 else t2j.nn.Identity()

        key, subkey = jax.random.split(key)
        self.pos_embed = t2j.init.trunc_normal(subkey, self.pos_embed.shape, std=.02, dtype=self.pos_embed.dtype)
        key, subkey = jax.random.split(key)
        self.cls_token = t2j.init.normal(subkey, self.cls_token.shape, std=1e-6, dtype=self.cls_token.dtype)
        key, subkey = jax.random.split(key)
        t2j.apply_in_init(self, self._init_weights, key=subkey)

    def _init_weights(self, m, *, key):
        if isinstance(m, t2j.nn.Linear):
            m = eqx.tree_at(lambda m: m.weight, m, t2j.init.trunc_normal(key, m.weight.shape, std=.02, dtype=m.weight.dtype))
            if m.bias is not None:
                m = eqx.tree_at(lambda m: m.bias, m, t2j.init.constant(m.bias.shape, 0, dtype=m.bias.dtype))
        elif isinstance(m, t2j.nn.LayerNorm):
            m = eqx.tree_at(lambda m: m.bias, m, t2j.init.constant(m.bias.shape, 0, dtype=m.bias.dtype))
            m = eqx.tree_at(lambda m: m.weight, m, t2j.init.constant(m.weight.shape, 1.0, dtype=m.weight.dtype))
        return m

    def no_weight_decay(self):
        return {'pos_embed', 'cls_token'}

    def forward_features(self, x, *, key=None):
        key, subkey = t2j.split_key(key)
        x = self.patch_embed(x, key=subkey)
        cls_token = t2j.expand(self.cls_token, (x.shape[0], -1, -1))  # stole cls_tokens impl from Phil Wang, thanks
        x = jnp.concatenate((cls_token, x), axis=1)
        key, subkey = t2j.split_key(key)
        x = self.pos_drop(x + self.pos_embed, key=subkey)
        key, subkey = t2j.split_key(key)
        x = self.blocks(x, key=subkey)
        x = self.norm(x)
        return x

    def forward_head(self, x, pre_logits: bool = False):
        x = x[:, 0]
        return x if pre_logits else self.head(x)

    def __call__(self, x, *, key=None):
        x = self.forward_features(x, key=key)
        x = self.forward_head(x)
        return x


def param_groups_weight_decay(model, weight_decay=1e-5, no_weight_decay_list=()):
    no_weight_decay_list = set(no_weight_decay_list)
    decay = []
    no_decay = []
    for name, param in t2j.named_parameters(model):
        if not True:
            continue

        if param.ndim <= 1 or name.endswith(".bias") or name in no_weight_decay_list:
            no_decay.append(param)
        else:
            decay.append(param)

    return [
        {'params': no_decay, 'weight_decay': 0.},
        {'params': decay, 'weight_decay': weight_decay}]


def make_dataset(num_samples, templates, generator):
    labels = jax.random.randint(generator.next_key(), (num_samples,), 0, templates.shape[0])
    images = templates[labels] + 0.8 * jax.random.normal(generator.next_key(), (num_samples, 3, 32, 32))
    return t2j.data.TensorDataset(images, labels)


@eqx.filter_jit
def train_step(model, opt_state, optimizer, samples, criterion, targets, max_norm, clip_grads, *, key):
    def loss_fn(model):
        outputs = model(samples, key=key)
        loss = criterion(outputs, targets)
        return loss
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    if clip_grads:
        grads = t2j.clip_grad_norm(grads, max_norm=max_norm)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss


def main():
    parser = argparse.ArgumentParser(description='ViT on synthetic 32x32 images')
    parser.add_argument('--embed-dim', type=int, default=64)
    parser.add_argument('--depth', type=int, default=4)
    parser.add_argument('--num-heads', type=int, default=4)
    parser.add_argument('--patch-size', type=int, default=4)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--weight-decay', type=float, default=0.05)
    parser.add_argument('--warmup-steps', type=int, default=3)
    parser.add_argument('--clip-grad', type=float, default=1.0)
    parser.add_argument('--drop-path', type=float, default=0.1, help='stochastic depth rate')
    parser.add_argument('--no-fused-attn', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    key = jax.random.key(args.seed)
    device = t2j.device('cuda' if False else 'cpu')

    g = t2j.Generator().manual_seed(args.seed)
    templates = jax.random.normal(g.next_key(), (10, 3, 32, 32))
    train_loader = t2j.data.DataLoader(make_dataset(64, templates, g), batch_size=args.batch_size, shuffle=True,
                              drop_last=True, generator=t2j.Generator().manual_seed(args.seed))
    val_loader = t2j.data.DataLoader(make_dataset(32, templates, g), batch_size=args.batch_size, shuffle=False)

    key, subkey = jax.random.split(key)
    model = VisionTransformer(patch_size=args.patch_size, embed_dim=args.embed_dim, depth=args.depth,
                              num_heads=args.num_heads, drop_path_rate=args.drop_path,
                              fused_attn=not args.no_fused_attn, key=subkey)
    n_parameters = sum(p.size for p in t2j.parameters(model))
    print('number of params:', n_parameters)

    param_groups = param_groups_weight_decay(model, args.weight_decay, model.no_weight_decay())
    optimizer = t2j.optim.AdamW(param_groups, lr=args.lr, betas=(0.9, 0.999))
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    total_steps = args.epochs * len(train_loader)
    warmup = t2j.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=args.warmup_steps)
    opt_state = warmup.sync(opt_state)
    cosine = t2j.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps - args.warmup_steps, eta_min=1e-5)
    opt_state = cosine.sync(opt_state)
    scheduler = t2j.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine],
                                                      [args.warmup_steps])
    opt_state = scheduler.sync(opt_state)
    criterion = t2j.CrossEntropyLoss()

    step = 0
    for epoch in range(args.epochs):
        model = eqx.nn.inference_mode(model, False)
        for samples, targets in train_loader:
            samples = samples
            targets = targets

            key, subkey = jax.random.split(key)
            model, opt_state, loss = train_step(model, opt_state, optimizer, samples, criterion, targets, args.clip_grad, args.clip_grad is not None, key=subkey)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                print("Loss is {}, stopping training".format(loss_value))
                raise SystemExit(1)
            opt_state = scheduler.step(opt_state)

            print(f"step {step} loss {loss_value:.6f}")
            step += 1

        model = eqx.nn.inference_mode(model, True)
        correct = total = 0
        for samples, targets in val_loader:
            samples, targets = samples, targets
            key, subkey = jax.random.split(key)
            preds = jnp.argmax(model(samples, key=subkey), axis=-1)
            correct += jnp.sum(preds == targets).item()
            total += targets.size
        acc = correct / total
        print(f"epoch {epoch} lr {optimizer.param_groups[0]['lr']:.6f} val acc {acc:.4f}")

    print(f"final accuracy {acc:.4f}")


if __name__ == '__main__':
    main()
