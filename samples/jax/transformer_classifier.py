"""Text classification with torch's built-in nn.TransformerEncoder.

Token embeddings scaled by sqrt(d_model), a fixed sinusoidal positional
encoding stored as a registered buffer, a stack of nn.TransformerEncoderLayer
(batch_first, pre-norm, GELU), a key padding mask built from the padding
token, masked mean-pooling over the sequence, and a linear classifier.
Variable-length synthetic "sentences" whose class is decided by which keyword
tokens they contain. Adam with OneCycleLR, stepped every batch.
"""
import argparse
import math

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j

PAD_IDX = 0


class PositionalEncoding(eqx.Module):

    dropout: t2j.nn.Dropout
    pe: jax.Array
    _t2j_buffers = ('pe',)  # not trained: torch's buffers

    def __init__(self, d_model, dropout=0.1, max_len=512):
        self.dropout = t2j.nn.Dropout(p=dropout)

        position = jnp.expand_dims(jnp.arange(max_len), 1)
        div_term = jnp.exp(jnp.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = jnp.zeros((1, max_len, d_model))
        pe = pe.at[0, :, 0::2].set(jnp.sin(position * div_term))
        pe = pe.at[0, :, 1::2].set(jnp.cos(position * div_term))
        self.pe = pe

    def __call__(self, x, *, key=None):
        """
        Arguments:
            x: Tensor, shape ``[batch_size, seq_len, embedding_dim]``
        """
        x = x + jax.lax.stop_gradient(self.pe)[:, :x.shape[1]]
        return self.dropout(x, key=key)


class TransformerClassifier(eqx.Module):
    model_type: str = eqx.field(static=True)
    d_model: object
    embedding: t2j.nn.Embedding
    pos_encoder: PositionalEncoding
    transformer_encoder: t2j.nn.TransformerEncoder
    norm: t2j.nn.LayerNorm
    classifier: t2j.nn.Linear

    def __init__(self, vocab_size=100, num_classes=4, d_model=64, nhead=4, d_hid=128, nlayers=2,
                 dropout=0.1, *, key):
        self.model_type = 'Transformer'
        self.d_model = d_model
        key, subkey = jax.random.split(key)
        self.embedding = t2j.nn.Embedding(vocab_size, d_model, padding_idx=PAD_IDX, key=subkey)
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        key, subkey = jax.random.split(key)
        encoder_layer = t2j.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=d_hid, dropout=dropout, activation='gelu',
                                                   batch_first=True, norm_first=True, key=subkey)
        key, subkey = jax.random.split(key)
        self.transformer_encoder = t2j.nn.TransformerEncoder(encoder_layer, nlayers, enable_nested_tensor=False, key=subkey)
        self.norm = t2j.nn.LayerNorm(d_model)
        key, subkey = jax.random.split(key)
        self.classifier = t2j.nn.Linear(d_model, num_classes, key=subkey)

        key, subkey = jax.random.split(key)
        self.init_weights(key=subkey)

    def init_weights(self, *, key):
        initrange = 0.1
        key, subkey = jax.random.split(key)
        self.embedding = eqx.tree_at(lambda m: m.weight, self.embedding, jax.random.uniform(subkey, self.embedding.weight.shape, self.embedding.weight.dtype, minval=-initrange, maxval=initrange))
        self.embedding = eqx.tree_at(lambda m: m.weight, self.embedding, jax.lax.stop_gradient(self.embedding.weight).at[PAD_IDX].set(jnp.zeros_like(jax.lax.stop_gradient(self.embedding.weight)[PAD_IDX])))
        self.classifier = eqx.tree_at(lambda m: m.bias, self.classifier, jnp.zeros_like(self.classifier.bias))
        key, subkey = jax.random.split(key)
        self.classifier = eqx.tree_at(lambda m: m.weight, self.classifier, jax.random.uniform(subkey, self.classifier.weight.shape, self.classifier.weight.dtype, minval=-initrange, maxval=initrange))

    def __call__(self, src, *, key=None):
        """
        Arguments:
            src: Tensor, shape ``[batch_size, seq_len]``, padded with PAD_IDX
        Returns:
            logits of shape ``[batch_size, num_classes]``
        """
        padding_mask = src == PAD_IDX  # True where the position must be ignored
        x = self.embedding(src) * math.sqrt(self.d_model)
        key, subkey = t2j.split_key(key)
        x = self.pos_encoder(x, key=subkey)
        key, subkey = t2j.split_key(key)
        x = self.transformer_encoder(x, src_key_padding_mask=padding_mask, key=subkey)
        x = self.norm(x)
        # mean over the real (non-padding) tokens
        keep = jnp.expand_dims(~padding_mask, -1).astype(x.dtype)
        pooled = jnp.sum(x * keep, axis=1) / t2j.clamp(jnp.sum(keep, axis=1), min=1.0)
        return self.classifier(pooled)


def make_sentences(num_samples, vocab_size, num_classes, max_len, generator):
    """Filler tokens plus a few copies of one of `num_classes` keyword tokens; the keyword is the label."""
    first_filler = num_classes + 1
    labels = jax.random.randint(generator.next_key(), (num_samples,), 0, num_classes)
    lengths = jax.random.randint(generator.next_key(), (num_samples,), max_len // 2, max_len + 1)
    tokens = jax.random.randint(generator.next_key(), (num_samples, max_len), first_filler, vocab_size)
    positions = jnp.expand_dims(jnp.arange(max_len), 0)
    keyword_spots = jax.random.uniform(generator.next_key(), (num_samples, max_len)) < 0.2
    tokens = jnp.where(keyword_spots, jnp.expand_dims(labels + 1, 1), tokens)
    tokens = t2j.masked_set(tokens, positions >= jnp.expand_dims(lengths, 1), PAD_IDX)
    return tokens, labels


@eqx.filter_jit
def train_step(model, opt_state, optimizer, tokens, criterion, labels, *, key):
    def loss_fn(model):
        logits = model(tokens, key=key)
        loss = criterion(logits, labels)
        return loss
    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    grads = t2j.clip_grad_norm(grads, 0.5)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss


def run_epoch(model, loader, criterion, optimizer, opt_state, scheduler, device, step, *, key):
    model = eqx.nn.inference_mode(model, False)
    for tokens, labels in loader:
        tokens, labels = tokens, labels
        key, subkey = jax.random.split(key)
        model, opt_state, loss = train_step(model, opt_state, optimizer, tokens, criterion, labels, key=subkey)
        opt_state = scheduler.step(opt_state)

        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    return model, opt_state, step


def accuracy(model, loader, device, *, key):
    model = eqx.nn.inference_mode(model, True)
    correct = 0
    for tokens, labels in loader:
        tokens, labels = tokens, labels
        key, subkey = jax.random.split(key)
        correct += jnp.sum(jnp.argmax(model(tokens, key=subkey), axis=1) == labels).item()
    return correct / len(loader.dataset)


def main():
    parser = argparse.ArgumentParser(description='Transformer text classifier (synthetic sentences)')
    parser.add_argument('--vocab-size', type=int, default=100)
    parser.add_argument('--num-classes', type=int, default=4)
    parser.add_argument('--max-len', type=int, default=24)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--max-lr', type=float, default=3e-3)
    parser.add_argument('--dropout', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    key = jax.random.key(args.seed)
    device = t2j.device('cuda' if False else 'cpu')

    g = t2j.Generator().manual_seed(args.seed)
    train_x, train_y = make_sentences(64, args.vocab_size, args.num_classes, args.max_len, g)
    test_x, test_y = make_sentences(32, args.vocab_size, args.num_classes, args.max_len, g)
    train_loader = t2j.data.DataLoader(t2j.data.TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=False)
    test_loader = t2j.data.DataLoader(t2j.data.TensorDataset(test_x, test_y), batch_size=args.batch_size)

    key, subkey = jax.random.split(key)
    model = TransformerClassifier(args.vocab_size, args.num_classes, dropout=args.dropout, key=subkey)
    criterion = t2j.CrossEntropyLoss()
    optimizer = t2j.optim.Adam(lr=args.max_lr)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    scheduler = t2j.optim.lr_scheduler.OneCycleLR(optimizer, args.max_lr,
                                                    epochs=args.epochs, steps_per_epoch=len(train_loader))
    opt_state = scheduler.sync(opt_state)

    step = 0
    for epoch in range(args.epochs):
        key, subkey = jax.random.split(key)
        model, opt_state, step = run_epoch(model, train_loader, criterion, optimizer, opt_state, scheduler, device, step, key=subkey)
        key, subkey = jax.random.split(key)
        acc = accuracy(model, test_loader, device, key=subkey)
        print(f"epoch {epoch} test accuracy {acc:.4f}")

    print(f"final accuracy {acc:.4f}")


if __name__ == '__main__':
    main()
