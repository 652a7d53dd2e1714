"""Sequence-to-sequence GRU with Bahdanau (additive) attention.

The task is a toy "translation": reverse a sequence of digit tokens and add one
to each digit (mod 10). An encoder GRU reads the source; a decoder GRU
generates the target one token at a time, attending over the encoder outputs,
with teacher forcing (feed the ground-truth previous token) on a fraction of
the batches chosen with Python's `random`. Separate Adam optimizers for the
encoder and the decoder, NLLLoss over log-softmax outputs, and greedy decoding
with topk for evaluation.
"""
import argparse
import random

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j

SOS_token = 0
EOS_token = 1
PAD_OFFSET = 2  # digit d is token d + 2
MAX_LENGTH = 8


class EncoderRNN(eqx.Module):
    hidden_size: object = eqx.field(static=True)
    embedding: t2j.nn.Embedding
    gru: t2j.nn.GRU
    dropout: t2j.nn.Dropout

    def __init__(self, input_size=12, hidden_size=32, dropout_p=0.1, *, key):
        self.hidden_size = hidden_size

        key, subkey = jax.random.split(key)
        self.embedding = t2j.nn.Embedding(input_size, hidden_size, key=subkey)
        key, subkey = jax.random.split(key)
        self.gru = t2j.nn.GRU(hidden_size, hidden_size, batch_first=True, key=subkey)
        self.dropout = t2j.nn.Dropout(p=dropout_p)

    def __call__(self, input, *, key=None):
        embedded = self.dropout(self.embedding(input), key=key)
        output, hidden = self.gru(embedded)
        return output, hidden


class BahdanauAttention(eqx.Module):
    Wa: t2j.nn.Linear
    Ua: t2j.nn.Linear
    Va: t2j.nn.Linear

    def __init__(self, hidden_size=32, *, key):
        key, subkey = jax.random.split(key)
        self.Wa = t2j.nn.Linear(hidden_size, hidden_size, key=subkey)
        key, subkey = jax.random.split(key)
        self.Ua = t2j.nn.Linear(hidden_size, hidden_size, key=subkey)
        key, subkey = jax.random.split(key)
        self.Va = t2j.nn.Linear(hidden_size, 1, key=subkey)

    def __call__(self, query, keys, *, key=None):
        scores = self.Va(jnp.tanh(self.Wa(query) + self.Ua(keys)))
        scores = jnp.expand_dims(t2j.squeeze(scores, 2), 1)

        weights = jax.nn.softmax(scores, axis=-1)
        context = jnp.matmul(weights, keys)

        return context, weights


class AttnDecoderRNN(eqx.Module):
    max_length: object = eqx.field(static=True)
    embedding: t2j.nn.Embedding
    attention: BahdanauAttention
    gru: t2j.nn.GRU
    out: t2j.nn.Linear
    dropout: t2j.nn.Dropout

    def __init__(self, hidden_size=32, output_size=12, dropout_p=0.1, max_length=MAX_LENGTH, *, key):
        self.max_length = max_length
        key, subkey = jax.random.split(key)
        self.embedding = t2j.nn.Embedding(output_size, hidden_size, key=subkey)
        key, subkey = jax.random.split(key)
        self.attention = BahdanauAttention(hidden_size, key=subkey)
        key, subkey = jax.random.split(key)
        self.gru = t2j.nn.GRU(2 * hidden_size, hidden_size, batch_first=True, key=subkey)
        key, subkey = jax.random.split(key)
        self.out = t2j.nn.Linear(hidden_size, output_size, key=subkey)
        self.dropout = t2j.nn.Dropout(p=dropout_p)

    def __call__(self, encoder_outputs, encoder_hidden, target_tensor=None, *, key=None):
        batch_size = encoder_outputs.shape[0]
        decoder_input = jnp.full_like(jnp.empty((batch_size, 1), dtype=jnp.int64), SOS_token)
        decoder_hidden = encoder_hidden
        decoder_outputs = []
        attentions = []

        for i in range(self.max_length):
            key, subkey = t2j.split_key(key)
            decoder_output, decoder_hidden, attn_weights = self.forward_step(
                decoder_input, decoder_hidden, encoder_outputs, 
            key=subkey)
            decoder_outputs.append(decoder_output)
            attentions.append(attn_weights)

            if target_tensor is not None:
                # Teacher forcing: Feed the target as the next input
                decoder_input = jnp.expand_dims(target_tensor[:, i], 1)  # Teacher forcing
            else:
                # Without teacher forcing: use its own predictions as the next input
                _, topi = t2j.topk(decoder_output, 1)
                decoder_input = jax.lax.stop_gradient(t2j.squeeze(topi, -1))  # detach from history as input

        decoder_outputs = jnp.concatenate(decoder_outputs, axis=1)
        decoder_outputs = jax.nn.log_softmax(decoder_outputs, axis=-1)
        attentions = jnp.concatenate(attentions, axis=1)

        return decoder_outputs, decoder_hidden, attentions

    def forward_step(self, input, hidden, encoder_outputs, *, key=None):
        key, subkey = t2j.split_key(key)
        embedded = self.dropout(self.embedding(input), key=subkey)

        query = jnp.transpose(hidden, (1, 0, 2))
        key, subkey = t2j.split_key(key)
        context, attn_weights = self.attention(query, encoder_outputs, key=subkey)
        input_gru = jnp.concatenate((embedded, context), axis=2)

        output, hidden = self.gru(input_gru, hidden)
        output = self.out(output)

        return output, hidden, attn_weights


def make_pairs(num_pairs, generator, min_len=3, max_len=MAX_LENGTH - 1):
    """Source: random digits; target: the digits reversed and shifted by one. Both end in EOS."""
    src = jnp.full((num_pairs, MAX_LENGTH), EOS_token, dtype=jnp.int64)
    tgt = jnp.full((num_pairs, MAX_LENGTH), EOS_token, dtype=jnp.int64)
    lengths = jax.random.randint(generator.next_key(), (num_pairs,), min_len, max_len + 1)
    for n in range(num_pairs):
        length = lengths[n].item()
        digits = jax.random.randint(generator.next_key(), (length,), 0, 10)
        src = src.at[n, :length].set(digits + PAD_OFFSET)
        tgt = tgt.at[n, :length].set((jnp.flip(digits, axis=0) + 1) % 10 + PAD_OFFSET)
    return src, tgt


@eqx.filter_jit
def train_step(encoder, decoder, encoder_optimizer_state, decoder_optimizer_state, encoder_optimizer, decoder_optimizer, input_tensor, target_tensor, use_teacher_forcing, criterion, *, key):
    def loss_fn(models):
        encoder, decoder = models
        encoder_outputs, encoder_hidden = encoder(input_tensor, key=jax.random.fold_in(key, 1))
        decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, target_tensor if use_teacher_forcing else None, key=jax.random.fold_in(key, 2))
        loss = criterion(
            jnp.reshape(decoder_outputs, (-1, decoder_outputs.shape[-1])),
            jnp.reshape(target_tensor, -1)
        )
        return loss
    loss, grads = eqx.filter_value_and_grad(loss_fn)((encoder, decoder))
    encoder_grads, decoder_grads = grads
    encoder_grads = t2j.clip_grad_norm(encoder_grads, 1.0)
    decoder_grads = t2j.clip_grad_norm(decoder_grads, 1.0)
    updates, encoder_optimizer_state = encoder_optimizer.update(encoder_grads, encoder_optimizer_state, eqx.filter(encoder, eqx.is_array))
    encoder = eqx.apply_updates(encoder, updates)
    updates, decoder_optimizer_state = decoder_optimizer.update(decoder_grads, decoder_optimizer_state, eqx.filter(decoder, eqx.is_array))
    decoder = eqx.apply_updates(decoder, updates)
    return encoder, decoder, encoder_optimizer_state, decoder_optimizer_state, loss


def train_epoch(dataloader, encoder, decoder, encoder_optimizer, encoder_optimizer_state, decoder_optimizer, decoder_optimizer_state, criterion,
                teacher_forcing_ratio, step, *, key):
    total_loss = 0
    for input_tensor, target_tensor in dataloader:

        use_teacher_forcing = random.random() < teacher_forcing_ratio

        key, subkey = jax.random.split(key)
        encoder, decoder, encoder_optimizer_state, decoder_optimizer_state, loss = train_step(encoder, decoder, encoder_optimizer_state, decoder_optimizer_state, encoder_optimizer, decoder_optimizer, input_tensor, target_tensor, use_teacher_forcing, criterion, key=subkey)

        print(f"step {step} loss {loss.item():.6f}")
        step += 1
        total_loss += loss.item()

    return encoder, decoder, encoder_optimizer_state, decoder_optimizer_state, (total_loss / len(dataloader), step)


def evaluate(encoder, decoder, input_tensor, target_tensor, *, key):
    encoder = eqx.nn.inference_mode(encoder, True)
    decoder = eqx.nn.inference_mode(decoder, True)
    key, subkey = jax.random.split(key)
    encoder_outputs, encoder_hidden = encoder(input_tensor, key=subkey)
    key, subkey = jax.random.split(key)
    decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, key=subkey)
    _, topi = t2j.topk(decoder_outputs, 1)
    decoded_ids = t2j.squeeze(topi, -1)
    encoder = eqx.nn.inference_mode(encoder, False)
    decoder = eqx.nn.inference_mode(decoder, False)
    return jnp.mean((decoded_ids == target_tensor).astype(jnp.float32)).item()


def main():
    parser = argparse.ArgumentParser(description='seq2seq GRU with attention (synthetic reversal task)')
    parser.add_argument('--hidden-size', type=int, default=32)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--lr', type=float, default=0.003)
    parser.add_argument('--teacher-forcing-ratio', type=float, default=0.5)
    parser.add_argument('--dropout', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    random.seed(args.seed)
    key = jax.random.key(args.seed)
    device = t2j.device("cuda" if False else "cpu")

    vocab_size = 10 + PAD_OFFSET
    g = t2j.Generator().manual_seed(args.seed)
    train_src, train_tgt = make_pairs(48, g)
    test_src, test_tgt = make_pairs(16, g)
    train_dataloader = t2j.data.DataLoader(t2j.data.TensorDataset(train_src, train_tgt),
                                  batch_size=args.batch_size, shuffle=True,
                                  generator=t2j.Generator().manual_seed(args.seed))

    key, subkey = jax.random.split(key)
    encoder = EncoderRNN(vocab_size, args.hidden_size, dropout_p=args.dropout, key=subkey)
    key, subkey = jax.random.split(key)
    decoder = AttnDecoderRNN(args.hidden_size, vocab_size, dropout_p=args.dropout, key=subkey)

    encoder_optimizer = t2j.optim.Adam(lr=args.lr)
    encoder_optimizer_state = encoder_optimizer.init(eqx.filter(encoder, eqx.is_array))
    decoder_optimizer = t2j.optim.Adam(lr=args.lr)
    decoder_optimizer_state = decoder_optimizer.init(eqx.filter(decoder, eqx.is_array))
    criterion = t2j.NLLLoss()

    step = 0
    for epoch in range(1, args.epochs + 1):
        key, subkey = jax.random.split(key)
        encoder, decoder, encoder_optimizer_state, decoder_optimizer_state, (loss, step) = train_epoch(train_dataloader, encoder, decoder, encoder_optimizer, encoder_optimizer_state, decoder_optimizer, decoder_optimizer_state, criterion, args.teacher_forcing_ratio, step, key=subkey)
        # halve the learning rate after every epoch
        for optimizer in (encoder_optimizer, decoder_optimizer):
            for param_group in optimizer.param_groups:
                param_group['lr'] *= 0.5
        encoder_optimizer_state = encoder_optimizer.sync(encoder_optimizer_state)
        decoder_optimizer_state = decoder_optimizer.sync(decoder_optimizer_state)
        print(f"epoch {epoch} avg loss {loss:.4f}")

    key, subkey = jax.random.split(key)
    acc = evaluate(encoder, decoder, test_src, test_tgt, key=subkey)
    print(f"final accuracy {acc:.4f}")


if __name__ == '__main__':
    main()
