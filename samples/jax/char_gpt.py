"""A character-level GPT, written the way minimal GPT trainers usually are.

Causal self-attention with a lower-triangular mask kept as a registered buffer
(or PyTorch's fused scaled_dot_product_attention when config.flash is set),
pre-LayerNorm residual blocks with a GELU MLP, learned position embeddings,
the token embedding shared with the output head, GPT-2 style initialisation,
AdamW with separate decay / no-decay parameter groups, a warmup + cosine
learning-rate schedule applied by hand, gradient clipping, periodic evaluation
under torch.no_grad, and top-k sampling with torch.multinomial.

The "dataset" is a few hundred characters of synthetic text built from a
small word list, so the character vocabulary and the data are deterministic.
"""
import argparse
import inspect
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


class LayerNorm(eqx.Module):
    """LayerNorm with an optional bias (nn.LayerNorm only gained bias=False recently)."""

    weight: jax.Array
    bias: jax.Array = None

    def __init__(self, ndim, bias):
        self.weight = jnp.ones(ndim)
        self.bias = jnp.zeros(ndim) if bias else None

    def __call__(self, input, *, key=None):
        return t2j.nn.functional.layer_norm(input, self.weight.shape, weight=self.weight, bias=self.bias, eps=1e-5)


class CausalSelfAttention(eqx.Module):

    c_attn: t2j.nn.Linear
    c_proj: t2j.nn.Linear
    attn_dropout: t2j.nn.Dropout
    resid_dropout: t2j.nn.Dropout
    n_head: object
    n_embd: object = eqx.field(static=True)
    dropout: object = eqx.field(static=True)
    flash: object
    bias: jax.Array = None
    inference: bool
    _t2j_buffers = ('bias',)  # not trained: torch's buffers

    def __init__(self, config, *, key):
        self.inference = False
        assert config.n_embd % config.n_head == 0
        # key, query, value projections for all heads, but in a batch
        key, subkey = jax.random.split(key)
        self.c_attn = t2j.nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias, key=subkey)
        # output projection
        key, subkey = jax.random.split(key)
        self.c_proj = t2j.nn.Linear(config.n_embd, config.n_embd, bias=config.bias, key=subkey)
        # regularization
        self.attn_dropout = t2j.nn.Dropout(p=config.dropout)
        self.resid_dropout = t2j.nn.Dropout(p=config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.flash = config.flash and True
        if not self.flash:
            # causal mask to ensure that attention is only applied to the left in the input sequence
            self.bias = jnp.reshape(jnp.tril(jnp.ones((config.block_size, config.block_size))), (1, 1, config.block_size, config.block_size))

    def __call__(self, x, *, key=None):
        B, T, C = x.shape  # batch size, sequence length, embedding dimensionality (n_embd)

        # calculate query, key, values for all heads in batch and move head forward to be the batch dim
        q, k, v = t2j.split(self.c_attn(x), self.n_embd, dim=2)
        k = jnp.swapaxes(jnp.reshape(k, (B, T, self.n_head, C // self.n_head)), 1, 2)  # (B, nh, T, hs)
        q = jnp.swapaxes(jnp.reshape(q, (B, T, self.n_head, C // self.n_head)), 1, 2)  # (B, nh, T, hs)
        v = jnp.swapaxes(jnp.reshape(v, (B, T, self.n_head, C // self.n_head)), 1, 2)  # (B, nh, T, hs)

        # causal self-attention; Self-attend: (B, nh, T, hs) x (B, nh, hs, T) -> (B, nh, T, T)
        if self.flash:
            key, subkey = t2j.split_key(key)
            y = t2j.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=True, dropout_p=self.dropout if not self.inference else 0, dropout_key=subkey)
        else:
            att = (q @ jnp.swapaxes(k, -2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
            att = jnp.where(jax.lax.stop_gradient(self.bias)[:, :, :T, :T] == 0, float('-inf'), att)
            att = jax.nn.softmax(att, axis=-1)
            key, subkey = t2j.split_key(key)
            att = self.attn_dropout(att, key=subkey)
            y = att @ v  # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
        y = jnp.reshape(jnp.swapaxes(y, 1, 2), (B, T, C))  # re-assemble all head outputs side by side

        # output projection
        key, subkey = t2j.split_key(key)
        y = self.resid_dropout(self.c_proj(y), key=subkey)
        return y


class MLP(eqx.Module):

    c_fc: t2j.nn.Linear
    gelu: t2j.nn.GELU
    c_proj: t2j.nn.Linear
    dropout: t2j.nn.Dropout

    def __init__(self, config, *, key):
        key, subkey = jax.random.split(key)
        self.c_fc = t2j.nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias, key=subkey)
        self.gelu = t2j.nn.GELU()
        key, subkey = jax.random.split(key)
        self.c_proj = t2j.nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias, key=subkey)
        self.dropout = t2j.nn.Dropout(p=config.dropout)

    def __call__(self, x, *, key=None):
        x = self.c_fc(x)
        x = self.gelu(x)
        x = self.c_proj(x)
        x = self.dropout(x, key=key)
        return x


class Block(eqx.Module):

    ln_1: LayerNorm
    attn: CausalSelfAttention
    ln_2: LayerNorm
    mlp: MLP

    def __init__(self, config, *, key):
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        key, subkey = jax.random.split(key)
        self.attn = CausalSelfAttention(config, key=subkey)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        key, subkey = jax.random.split(key)
        self.mlp = MLP(config, key=subkey)

    def __call__(self, x, *, key=None):
        key, subkey1, subkey2 = t2j.split_key(key, 3)
        x = x + self.attn(self.ln_1(x, key=subkey2), key=subkey1)
        key, subkey1, subkey2 = t2j.split_key(key, 3)
        x = x + self.mlp(self.ln_2(x, key=subkey2), key=subkey1)
        return x


@dataclass
class GPTConfig:
    block_size: int = 32
    vocab_size: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True  # True: bias in Linears and LayerNorms, like GPT-2. False: a bit better and faster
    flash: bool = False  # use F.scaled_dot_product_attention instead of the explicit masked softmax


class GPT(eqx.Module):

    config: object = eqx.field(static=True)
    transformer: dict
    lm_head: t2j.nn.Linear
    _t2j_ties: tuple = eqx.field(static=True, default=())  # tied weights (t2j.tie_in_init)

    def __init__(self, config, *, key):
        assert config.vocab_size is not None
        assert config.block_size is not None
        self.config = config

        key, subkey1, subkey2, subkey3 = jax.random.split(key, 4)
        self.transformer = dict(dict(
            wte=t2j.nn.Embedding(config.vocab_size, config.n_embd, key=subkey1),
            wpe=t2j.nn.Embedding(config.block_size, config.n_embd, key=subkey2),
            drop=t2j.nn.Dropout(p=config.dropout),
            h=[Block(config, key=k) for k in jax.random.split(subkey3, config.n_layer)],
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        key, subkey = jax.random.split(key)
        self.lm_head = t2j.nn.Linear(config.n_embd, config.vocab_size, bias=False, key=subkey)
        # with weight tying the token embedding and the output projection share one matrix
        t2j.tie_in_init(self, 'transformer.wte.weight', 'lm_head.weight')

        # init all weights
        key, subkey = jax.random.split(key)
        t2j.apply_in_init(self, self._init_weights, key=subkey)
        # apply special scaled init to the residual projections, per GPT-2 paper
        new_params = []
        for pn, p in t2j.named_parameters(self):
            if pn.endswith('c_proj.weight'):
                key, subkey = jax.random.split(key)
                p = t2j.init.normal(subkey, p.shape, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer), dtype=p.dtype)
            new_params.append(p)
        t2j.replace_parameters_in_init(self, new_params)

        # report number of parameters
        print("number of parameters: %.2fM" % (self.get_num_params() / 1e6,))
        t2j.finish_ties_in_init(self)

    def get_num_params(self, non_embedding=True):
        """
        Return the number of parameters in the model.
        For non-embedding count (default), the position embeddings get subtracted.
        The token embeddings would too, except due to the parameter sharing these
        params are actually used as weights in the final layer, so we include them.
        """
        n_params = sum(p.size for p in t2j.parameters(self))
        if non_embedding:
            n_params -= self.transformer['wpe'].weight.size
        return n_params

    def _init_weights(self, module, *, key):
        self = t2j.tied(self)  # tied weights: one parameter in every place
        if isinstance(module, t2j.nn.Linear):
            key, subkey = jax.random.split(key)
            module = eqx.tree_at(lambda m: m.weight, module, t2j.init.normal(subkey, module.weight.shape, mean=0.0, std=0.02, dtype=module.weight.dtype))
            if module.bias is not None:
                module = eqx.tree_at(lambda m: m.bias, module, t2j.init.zeros(module.bias.shape, dtype=module.bias.dtype))
        elif isinstance(module, t2j.nn.Embedding):
            key, subkey = jax.random.split(key)
            module = eqx.tree_at(lambda m: m.weight, module, t2j.init.normal(subkey, module.weight.shape, mean=0.0, std=0.02, dtype=module.weight.dtype))
        return module

    def __call__(self, idx, targets=None, *, key=None):
        self = t2j.tied(self)  # tied weights: one parameter in every place
        device = t2j.device('cpu')
        b, t = idx.shape
        assert t <= self.config.block_size, f"Cannot forward sequence of length {t}, block size is only {self.config.block_size}"
        pos = jnp.arange(0, t, dtype=jnp.int64)  # shape (t)

        # forward the GPT model itself
        key, subkey = t2j.split_key(key)
        tok_emb = self.transformer['wte'](idx, key=subkey)  # token embeddings of shape (b, t, n_embd)
        key, subkey = t2j.split_key(key)
        pos_emb = self.transformer['wpe'](pos, key=subkey)  # position embeddings of shape (t, n_embd)
        key, subkey = t2j.split_key(key)
        x = self.transformer['drop'](tok_emb + pos_emb, key=subkey)
        for block in self.transformer['h']:
            key, subkey = t2j.split_key(key)
            x = block(x, key=subkey)
        key, subkey = t2j.split_key(key)
        x = self.transformer['ln_f'](x, key=subkey)

        if targets is not None:
            # if we are given some desired targets also calculate the loss
            logits = self.lm_head(x)
            loss = t2j.cross_entropy(jnp.reshape(logits, (-1, logits.shape[-1])), jnp.reshape(targets, -1), ignore_index=-1)
        else:
            # inference-time mini-optimization: only forward the lm_head on the very last position
            logits = self.lm_head(x[:, [-1], :])  # note: using list [-1] to preserve the time dim
            loss = None

        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        self = t2j.tied(self)  # tied weights: one parameter in every place
        # start with all of the candidate parameters
        param_dict = {pn: p for pn, p in t2j.named_parameters(self)}
        # filter out those that do not require grad
        param_dict = {pn: p for pn, p in param_dict.items()}
        # create optim groups. Any parameters that is 2D will be weight decayed, otherwise no.
        # i.e. all weight tensors in matmuls + embeddings decay, all biases and layernorms don't.
        decay_params = [p for n, p in param_dict.items() if p.ndim >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.ndim < 2]
        optim_groups = [
            {'params': decay_params, 'weight_decay': weight_decay},
            {'params': nodecay_params, 'weight_decay': 0.0}
        ]
        num_decay_params = sum(p.size for p in decay_params)
        num_nodecay_params = sum(p.size for p in nodecay_params)
        print(f"num decayed parameter tensors: {len(decay_params)}, with {num_decay_params:,} parameters")
        print(f"num non-decayed parameter tensors: {len(nodecay_params)}, with {num_nodecay_params:,} parameters")
        # Create AdamW optimizer and use the fused version if it is available
        fused_available = 'fused' in inspect.signature(t2j.optim.AdamW).parameters
        use_fused = fused_available and device_type == 'cuda'
        extra_args = dict(fused=True) if use_fused else dict()
        optimizer = t2j.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)
        return optimizer

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, *, key):
        """
        Take a conditioning sequence of indices idx (LongTensor of shape (b,t)) and complete
        the sequence max_new_tokens times, feeding the predictions back into the model each time.
        Most likely you'll want to make sure to be in model.eval() mode of operation for this.
        """
        self = t2j.tied(self)  # tied weights: one parameter in every place
        for _ in range(max_new_tokens):
            # if the sequence context is growing too long we must crop it at block_size
            idx_cond = idx if idx.shape[1] <= self.config.block_size else idx[:, -self.config.block_size:]
            # forward the model to get the logits for the index in the sequence
            logits, _ = self(idx_cond)
            # pluck the logits at the final step and scale by desired temperature
            logits = logits[:, -1, :] / temperature
            # optionally crop the logits to only the top k options
            if top_k is not None:
                v, _ = t2j.topk(logits, min(top_k, logits.shape[-1]))
                logits = jnp.where(logits < v[:, [-1]], -float('Inf'), logits)
            # apply softmax to convert logits to (normalized) probabilities
            probs = jax.nn.softmax(logits, axis=-1)
            # sample from the distribution
            key, subkey = jax.random.split(key)
            idx_next = t2j.multinomial(subkey, probs, 1)
            # append sampled index to the running sequence and continue
            idx = jnp.concatenate((idx, idx_next), axis=1)

        return idx


WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "cat",
         "sleeps", "under", "a", "warm", "sun", "while", "birds", "sing"]


def make_text(num_words, generator):
    picks = jax.random.randint(generator.next_key(), (num_words,), 0, len(WORDS))
    sentence_ends = jax.random.uniform(generator.next_key(), num_words) < 0.15
    out = []
    for w, end in zip(picks.tolist(), sentence_ends.tolist()):
        out.append(WORDS[w] + (".\n" if end else " "))
    return "".join(out)


def get_lr(it, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    # 1) linear warmup for warmup_iters steps
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    # 2) if it > lr_decay_iters, return min learning rate
    if it > lr_decay_iters:
        return min_lr
    # 3) in between, use cosine decay down to min learning rate
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # coeff ranges 0..1
    return min_lr + coeff * (learning_rate - min_lr)


@eqx.filter_jit
def train_step(model, opt_state, optimizer, X, Y, max_norm, clip_grads, *, key):
    def loss_fn(model):
        logits, loss = model(X, Y, key=key)
        return loss
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    if clip_grads:
        grads = t2j.clip_grad_norm(grads, max_norm)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss


def main():
    parser = argparse.ArgumentParser(description='character-level GPT (synthetic text)')
    parser.add_argument('--batch_size', type=int, default=12)
    parser.add_argument('--block_size', type=int, default=32)
    parser.add_argument('--n_layer', type=int, default=2)
    parser.add_argument('--n_head', type=int, default=4)
    parser.add_argument('--n_embd', type=int, default=64)
    parser.add_argument('--dropout', type=float, default=0.1)
    parser.add_argument('--flash', action='store_true')
    parser.add_argument('--learning_rate', type=float, default=1e-3)
    parser.add_argument('--max_iters', type=int, default=10)
    parser.add_argument('--weight_decay', type=float, default=1e-1)
    parser.add_argument('--beta1', type=float, default=0.9)
    parser.add_argument('--beta2', type=float, default=0.99)
    parser.add_argument('--grad_clip', type=float, default=1.0)
    parser.add_argument('--warmup_iters', type=int, default=3)
    parser.add_argument('--min_lr', type=float, default=1e-4)
    parser.add_argument('--eval_interval', type=int, default=5)
    parser.add_argument('--eval_iters', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    key = jax.random.key(args.seed)
    device = 'cuda' if False else 'cpu'
    device_type = 'cuda' if 'cuda' in device else 'cpu'

    # data: characters of a synthetic text, 90% train / 10% val
    g = t2j.Generator().manual_seed(args.seed)
    text = make_text(400, g)
    chars = sorted(list(set(text)))
    vocab_size = len(chars)
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}

    def encode(s):
        return [stoi[c] for c in s]

    def decode(ids):
        return ''.join([itos[i] for i in ids])

    data = jnp.array(encode(text), dtype=jnp.int64)
    n = int(0.9 * len(data))
    train_data = data[:n]
    val_data = data[n:]

    def get_batch(split, *, key):
        source = train_data if split == 'train' else val_data
        ix = jax.random.randint(key, (args.batch_size,), 0, len(source) - args.block_size)
        x = jnp.stack([source[i:i + args.block_size] for i in ix])
        y = jnp.stack([source[i + 1:i + 1 + args.block_size] for i in ix])
        x, y = x, y
        return x, y

    config = GPTConfig(block_size=args.block_size, vocab_size=vocab_size, n_layer=args.n_layer,
                       n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout, flash=args.flash)
    key, subkey = jax.random.split(key)
    model = GPT(config, key=subkey)

    optimizer = model.configure_optimizers(args.weight_decay, args.learning_rate,
                                           (args.beta1, args.beta2), device_type)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    def estimate_loss(*, key):
        nonlocal model
        out = {}
        model = eqx.nn.inference_mode(model, True)
        for split in ['train', 'val']:
            losses = jnp.zeros(args.eval_iters)
            for k in range(args.eval_iters):
                key, subkey = jax.random.split(key)
                X, Y = get_batch(split, key=subkey)
                logits, loss = model(X, Y)
                losses = losses.at[k].set(loss.item())
            out[split] = jnp.mean(losses)
        model = eqx.nn.inference_mode(model, False)
        return out

    key, subkey = jax.random.split(key)
    X, Y = get_batch('train', key=subkey)  # fetch the very first batch
    for iter_num in range(args.max_iters):
        # determine and set the learning rate for this iteration
        lr = get_lr(iter_num, args.learning_rate, args.warmup_iters, args.max_iters, args.min_lr)
        for param_group in optimizer.param_groups:
            param_group['lr'] = lr
        opt_state = optimizer.sync(opt_state)

        if iter_num > 0 and iter_num % args.eval_interval == 0:
            key, subkey = jax.random.split(key)
            losses = estimate_loss(key=subkey)
            print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")

        key, subkey = jax.random.split(key)
        model, opt_state, loss = train_step(model, opt_state, optimizer, X, Y, args.grad_clip, args.grad_clip != 0.0, key=subkey)
        # immediately async prefetch next batch while model is doing the forward pass on the GPU
        key, subkey = jax.random.split(key)
        X, Y = get_batch('train', key=subkey)
        print(f"step {iter_num} loss {loss.item():.6f}")

    key, subkey = jax.random.split(key)
    losses = estimate_loss(key=subkey)
    model = eqx.nn.inference_mode(model, True)
    context = jnp.array([encode("the ")], dtype=jnp.int64)
    key, subkey = jax.random.split(key)
    sample = model.generate(context, max_new_tokens=40, temperature=0.8, top_k=10, key=subkey)
    print(decode(sample[0].tolist()))
    print(f"final loss {losses['val'].item():.6f}")


if __name__ == '__main__':
    main()
