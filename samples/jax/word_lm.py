"""Word-level language model: embedding -> multi-layer LSTM -> linear decoder.

Truncated back-propagation through time over a batchified token stream, the
hidden state carried across batches but detached from the graph
(repackage_hidden), gradient clipping, and plain SGD written out by hand with
the learning rate divided by four whenever the validation loss stops
improving. The corpus is a synthetic first-order Markov chain over a small
vocabulary, so there is something to learn.
"""
import argparse
import math
import time

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


class RNNModel(eqx.Module):
    """Container module with an encoder, a recurrent module, and a decoder."""

    ntoken: object = eqx.field(static=True)
    drop: t2j.nn.Dropout
    encoder: t2j.nn.Embedding
    rnn: object = None
    decoder: t2j.nn.Linear
    rnn_type: object = eqx.field(static=True)
    nhid: object = eqx.field(static=True)
    nlayers: object
    _t2j_ties: tuple = eqx.field(static=True, default=())  # tied weights (t2j.tie_in_init)

    def __init__(self, rnn_type='LSTM', ntoken=50, ninp=32, nhid=32, nlayers=2, dropout=0.5, tie_weights=False, *, key):
        self.ntoken = ntoken
        self.drop = t2j.nn.Dropout(p=dropout)
        key, subkey = jax.random.split(key)
        self.encoder = t2j.nn.Embedding(ntoken, ninp, key=subkey)
        if rnn_type in ['LSTM', 'GRU']:
            key, subkey = jax.random.split(key)
            self.rnn = getattr(t2j.nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout, key=subkey)
        else:
            try:
                nonlinearity = {'RNN_TANH': 'tanh', 'RNN_RELU': 'relu'}[rnn_type]
            except KeyError:
                raise ValueError("An invalid option for `--model` was supplied, "
                                 "options are ['LSTM', 'GRU', 'RNN_TANH' or 'RNN_RELU']")
            key, subkey = jax.random.split(key)
            self.rnn = t2j.nn.RNN(ninp, nhid, num_layers=nlayers, nonlinearity=nonlinearity, dropout=dropout, key=subkey)
        key, subkey = jax.random.split(key)
        self.decoder = t2j.nn.Linear(nhid, ntoken, key=subkey)

        # Optionally tie weights as in:
        # "Using the Output Embedding to Improve Language Models" (Press & Wolf 2016)
        # https://arxiv.org/abs/1608.05859
        if tie_weights:
            if nhid != ninp:
                raise ValueError('When using the tied flag, nhid must be equal to emsize')
            t2j.tie_in_init(self, 'decoder.weight', 'encoder.weight')

        key, subkey = jax.random.split(key)
        self.init_weights(key=subkey)

        self.rnn_type = rnn_type
        self.nhid = nhid
        self.nlayers = nlayers
        t2j.finish_ties_in_init(self)

    def init_weights(self, *, key):
        initrange = 0.1
        key, subkey = jax.random.split(key)
        self.encoder = eqx.tree_at(lambda m: m.weight, self.encoder, t2j.init.uniform(subkey, self.encoder.weight.shape, a=-initrange, b=initrange, dtype=self.encoder.weight.dtype))
        self.decoder = eqx.tree_at(lambda m: m.bias, self.decoder, t2j.init.zeros(self.decoder.bias.shape, dtype=self.decoder.bias.dtype))
        key, subkey = jax.random.split(key)
        self.decoder = eqx.tree_at(lambda m: m.weight, self.decoder, t2j.init.uniform(subkey, self.decoder.weight.shape, a=-initrange, b=initrange, dtype=self.decoder.weight.dtype))

    def __call__(self, input, hidden, *, key=None):
        self = t2j.tied(self)  # tied weights: one parameter in every place
        key, subkey = t2j.split_key(key)
        emb = self.drop(self.encoder(input), key=subkey)
        key, subkey = t2j.split_key(key)
        output, hidden = self.rnn(emb, hidden, key=subkey)
        key, subkey = t2j.split_key(key)
        output = self.drop(output, key=subkey)
        decoded = self.decoder(output)
        decoded = jnp.reshape(decoded, (-1, self.ntoken))
        return jax.nn.log_softmax(decoded, axis=1), hidden

    def init_hidden(self, bsz):
        self = t2j.tied(self)  # tied weights: one parameter in every place
        weight = next(iter(t2j.parameters(self)))
        if self.rnn_type == 'LSTM':
            return (jnp.zeros((self.nlayers, bsz, self.nhid), dtype=weight.dtype),
                    jnp.zeros((self.nlayers, bsz, self.nhid), dtype=weight.dtype))
        else:
            return jnp.zeros((self.nlayers, bsz, self.nhid), dtype=weight.dtype)


def make_corpus(length, ntokens, generator):
    """A Markov chain whose transition matrix is sparse-ish (each word has a few likely successors)."""
    logits = jax.random.normal(generator.next_key(), (ntokens, ntokens)) * 3.0
    probs = jax.nn.softmax(logits, axis=1)
    tokens = jnp.empty(length, dtype=jnp.int64)
    tokens = tokens.at[0].set(0)
    for t in range(1, length):
        tokens = tokens.at[t].set(t2j.drop_leading_ones(t2j.multinomial(generator.next_key(), probs[tokens[t - 1]], 1), tokens[t].ndim))
    return tokens


# Starting from sequential data, batchify arranges the dataset into columns.
# For instance, with the alphabet as the sequence and batch size 4, we'd get
# | a g m s |
# | b h n t |
# | c i o u |
# | d j p v |
# | e k q w |
# | f l r x |.
# These columns are treated as independent by the model, which means that the
# dependence of e. g. 'g' on 'f' can not be learned, but allows more efficient
# batch processing.
def batchify(data, bsz, device):
    # Work out how cleanly we can divide the dataset into bsz parts.
    nbatch = data.shape[0] // bsz
    # Trim off any extra elements that wouldn't cleanly fit (remainders).
    data = t2j.narrow(data, 0, 0, nbatch * bsz)
    # Evenly divide the data across the bsz batches.
    data = jnp.reshape(data, (bsz, -1)).T
    return data


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, jax.Array):
        return jax.lax.stop_gradient(h)
    else:
        return tuple(repackage_hidden(v) for v in h)


# get_batch subdivides the source data into chunks of length args.bptt.
# If source is equal to the example output of the batchify function, with
# a bptt-limit of 2, we'd get the following two Variables for i = 0:
# | a g m s | | b h n t |
# | b h n t | | c i o u |
# Note that despite the name of the function, the subdivison of data is not
# done along the batch dimension (i.e. dimension 1), since that was handled
# by the batchify function. The chunks are along dimension 0, corresponding
# to the seq_len dimension in the LSTM.
def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = jnp.reshape(source[i + 1:i + 1 + seq_len], -1)
    return data, target


def evaluate(model, data_source, criterion, eval_batch_size, bptt, *, key):
    # Turn on evaluation mode which disables dropout.
    model = eqx.nn.inference_mode(model, True)
    total_loss = 0.
    hidden = model.init_hidden(eval_batch_size)
    for i in range(0, data_source.shape[0] - 1, bptt):
        data, targets = get_batch(data_source, i, bptt)
        key, subkey = jax.random.split(key)
        output, hidden = model(data, hidden, key=subkey)
        hidden = repackage_hidden(hidden)
        total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


@eqx.filter_jit
def train_step(model, data, hidden, criterion, targets, lr, max_norm, *, key):
    def loss_fn(model, hidden):
        output, hidden = model(data, hidden, key=key)
        loss = criterion(output, targets)
        return loss, (hidden,)
    (loss, (hidden,)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, hidden)
    grads = t2j.clip_grad_norm(grads, max_norm)
    new_params = []
    for p, p_grad in zip(t2j.parameters(model), t2j.parameters(grads)):
        p = jnp.add(p, (-lr) * p_grad)
        new_params.append(p)
    model = t2j.replace_parameters(model, new_params)
    return model, loss, hidden


def train(model, train_data, criterion, lr, args, epoch, global_step, *, key):
    # Turn on training mode which enables dropout.
    model = eqx.nn.inference_mode(model, False)
    total_loss = 0.
    start_time = time.time()
    hidden = model.init_hidden(args.batch_size)
    for batch, i in enumerate(range(0, train_data.shape[0] - 1, args.bptt)):
        data, targets = get_batch(train_data, i, args.bptt)
        hidden = repackage_hidden(hidden)
        key, subkey = jax.random.split(key)
        model, loss, hidden = train_step(model, data, hidden, criterion, targets, lr, args.clip, key=subkey)

        total_loss += loss.item()
        print(f"step {global_step} loss {loss.item():.6f}")
        global_step += 1

        if batch % args.log_interval == 0 and batch > 0:
            cur_loss = total_loss / args.log_interval
            elapsed = time.time() - start_time
            print('| epoch {:3d} | {:5d}/{:5d} batches | lr {:02.2f} | ms/batch {:5.2f} | '
                  'loss {:5.2f} | ppl {:8.2f}'.format(
                      epoch, batch, len(train_data) // args.bptt, lr,
                      elapsed * 1000 / args.log_interval, cur_loss, math.exp(cur_loss)))
            total_loss = 0
            start_time = time.time()
    return model, global_step


def main():
    parser = argparse.ArgumentParser(description='PyTorch word-level RNN/LSTM language model (synthetic corpus)')
    parser.add_argument('--model', type=str, default='LSTM',
                        help='type of network (RNN_TANH, RNN_RELU, LSTM, GRU)')
    parser.add_argument('--ntokens', type=int, default=50, help='vocabulary size')
    parser.add_argument('--emsize', type=int, default=32, help='size of word embeddings')
    parser.add_argument('--nhid', type=int, default=32, help='number of hidden units per layer')
    parser.add_argument('--nlayers', type=int, default=2, help='number of layers')
    parser.add_argument('--lr', type=float, default=20, help='initial learning rate')
    parser.add_argument('--clip', type=float, default=0.25, help='gradient clipping')
    parser.add_argument('--epochs', type=int, default=3, help='upper epoch limit')
    parser.add_argument('--batch_size', type=int, default=8, metavar='N', help='batch size')
    parser.add_argument('--bptt', type=int, default=12, help='sequence length')
    parser.add_argument('--dropout', type=float, default=0.2,
                        help='dropout applied to layers (0 = no dropout)')
    parser.add_argument('--untied', action='store_true',
                        help='do not tie the word embedding and softmax weights')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--log-interval', type=int, default=2, metavar='N', help='report interval')
    args = parser.parse_args()

    # Set the random seed manually for reproducibility.
    key = jax.random.key(args.seed)
    device = t2j.device("cuda" if False else "cpu")

    ###############################################################################
    # Load data
    ###############################################################################
    g = t2j.Generator().manual_seed(args.seed)
    corpus = make_corpus(600, args.ntokens, g)
    eval_batch_size = 4
    train_data = batchify(corpus[:400], args.batch_size, device)
    val_data = batchify(corpus[400:500], eval_batch_size, device)
    test_data = batchify(corpus[500:], eval_batch_size, device)

    ###############################################################################
    # Build the model
    ###############################################################################
    key, subkey = jax.random.split(key)
    model = RNNModel(args.model, args.ntokens, args.emsize, args.nhid, args.nlayers,
                     args.dropout, tie_weights=not args.untied, key=subkey)
    criterion = t2j.NLLLoss()

    # Loop over epochs.
    lr = args.lr
    best_val_loss = None
    global_step = 0
    for epoch in range(1, args.epochs + 1):
        epoch_start_time = time.time()
        key, subkey = jax.random.split(key)
        model, global_step = train(model, train_data, criterion, lr, args, epoch, global_step, key=subkey)
        key, subkey = jax.random.split(key)
        val_loss = evaluate(model, val_data, criterion, eval_batch_size, args.bptt, key=subkey)
        print('-' * 89)
        print('| end of epoch {:3d} | time: {:5.2f}s | valid loss {:5.2f} | '
              'valid ppl {:8.2f}'.format(epoch, (time.time() - epoch_start_time),
                                         val_loss, math.exp(val_loss)))
        print('-' * 89)
        # Keep the best validation loss; anneal the learning rate if no improvement has been seen.
        if not best_val_loss or val_loss < best_val_loss:
            best_val_loss = val_loss
        else:
            lr /= 4.0

    # Run on test data.
    key, subkey = jax.random.split(key)
    test_loss = evaluate(model, test_data, criterion, eval_batch_size, args.bptt, key=subkey)
    print('=' * 89)
    print('| End of training | test loss {:5.2f} | test ppl {:8.2f}'.format(
        test_loss, math.exp(test_loss)))
    print('=' * 89)
    print(f"final loss {test_loss:.6f}")


if __name__ == '__main__':
    main()
