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

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim
from torch.utils.data import DataLoader, TensorDataset

SOS_token = 0
EOS_token = 1
PAD_OFFSET = 2  # digit d is token d + 2
MAX_LENGTH = 8


class EncoderRNN(nn.Module):
    def __init__(self, input_size=12, hidden_size=32, dropout_p=0.1):
        super(EncoderRNN, self).__init__()
        self.hidden_size = hidden_size

        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input):
        embedded = self.dropout(self.embedding(input))
        output, hidden = self.gru(embedded)
        return output, hidden


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size=32):
        super(BahdanauAttention, self).__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)

        weights = F.softmax(scores, dim=-1)
        context = torch.bmm(weights, keys)

        return context, weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size=32, output_size=12, dropout_p=0.1, max_length=MAX_LENGTH):
        super(AttnDecoderRNN, self).__init__()
        self.max_length = max_length
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, encoder_outputs, encoder_hidden, target_tensor=None):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.empty(batch_size, 1, dtype=torch.long,
                                    device=encoder_outputs.device).fill_(SOS_token)
        decoder_hidden = encoder_hidden
        decoder_outputs = []
        attentions = []

        for i in range(self.max_length):
            decoder_output, decoder_hidden, attn_weights = self.forward_step(
                decoder_input, decoder_hidden, encoder_outputs
            )
            decoder_outputs.append(decoder_output)
            attentions.append(attn_weights)

            if target_tensor is not None:
                # Teacher forcing: Feed the target as the next input
                decoder_input = target_tensor[:, i].unsqueeze(1)  # Teacher forcing
            else:
                # Without teacher forcing: use its own predictions as the next input
                _, topi = decoder_output.topk(1)
                decoder_input = topi.squeeze(-1).detach()  # detach from history as input

        decoder_outputs = torch.cat(decoder_outputs, dim=1)
        decoder_outputs = F.log_softmax(decoder_outputs, dim=-1)
        attentions = torch.cat(attentions, dim=1)

        return decoder_outputs, decoder_hidden, attentions

    def forward_step(self, input, hidden, encoder_outputs):
        embedded = self.dropout(self.embedding(input))

        query = hidden.permute(1, 0, 2)
        context, attn_weights = self.attention(query, encoder_outputs)
        input_gru = torch.cat((embedded, context), dim=2)

        output, hidden = self.gru(input_gru, hidden)
        output = self.out(output)

        return output, hidden, attn_weights


def make_pairs(num_pairs, generator, min_len=3, max_len=MAX_LENGTH - 1):
    """Source: random digits; target: the digits reversed and shifted by one. Both end in EOS."""
    src = torch.full((num_pairs, MAX_LENGTH), EOS_token, dtype=torch.long)
    tgt = torch.full((num_pairs, MAX_LENGTH), EOS_token, dtype=torch.long)
    lengths = torch.randint(min_len, max_len + 1, (num_pairs,), generator=generator)
    for n in range(num_pairs):
        length = lengths[n].item()
        digits = torch.randint(0, 10, (length,), generator=generator)
        src[n, :length] = digits + PAD_OFFSET
        tgt[n, :length] = (digits.flip(0) + 1) % 10 + PAD_OFFSET
    return src, tgt


def train_epoch(dataloader, encoder, decoder, encoder_optimizer, decoder_optimizer, criterion,
                teacher_forcing_ratio, step):
    total_loss = 0
    for input_tensor, target_tensor in dataloader:
        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()

        use_teacher_forcing = random.random() < teacher_forcing_ratio

        encoder_outputs, encoder_hidden = encoder(input_tensor)
        decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden,
                                        target_tensor if use_teacher_forcing else None)

        loss = criterion(
            decoder_outputs.view(-1, decoder_outputs.size(-1)),
            target_tensor.view(-1)
        )
        loss.backward()

        nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
        nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        encoder_optimizer.step()
        decoder_optimizer.step()

        print(f"step {step} loss {loss.item():.6f}")
        step += 1
        total_loss += loss.item()

    return total_loss / len(dataloader), step


def evaluate(encoder, decoder, input_tensor, target_tensor):
    encoder.eval()
    decoder.eval()
    with torch.no_grad():
        encoder_outputs, encoder_hidden = encoder(input_tensor)
        decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden)
        _, topi = decoder_outputs.topk(1)
        decoded_ids = topi.squeeze(-1)
    encoder.train()
    decoder.train()
    return (decoded_ids == target_tensor).float().mean().item()


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
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    vocab_size = 10 + PAD_OFFSET
    g = torch.Generator().manual_seed(args.seed)
    train_src, train_tgt = make_pairs(48, g)
    test_src, test_tgt = make_pairs(16, g)
    train_dataloader = DataLoader(TensorDataset(train_src.to(device), train_tgt.to(device)),
                                  batch_size=args.batch_size, shuffle=True,
                                  generator=torch.Generator().manual_seed(args.seed))

    encoder = EncoderRNN(vocab_size, args.hidden_size, dropout_p=args.dropout).to(device)
    decoder = AttnDecoderRNN(args.hidden_size, vocab_size, dropout_p=args.dropout).to(device)

    encoder_optimizer = optim.Adam(encoder.parameters(), lr=args.lr)
    decoder_optimizer = optim.Adam(decoder.parameters(), lr=args.lr)
    criterion = nn.NLLLoss()

    step = 0
    for epoch in range(1, args.epochs + 1):
        loss, step = train_epoch(train_dataloader, encoder, decoder, encoder_optimizer, decoder_optimizer,
                                 criterion, args.teacher_forcing_ratio, step)
        # halve the learning rate after every epoch
        for optimizer in (encoder_optimizer, decoder_optimizer):
            for param_group in optimizer.param_groups:
                param_group['lr'] *= 0.5
        print(f"epoch {epoch} avg loss {loss:.4f}")

    acc = evaluate(encoder, decoder, test_src.to(device), test_tgt.to(device))
    print(f"final accuracy {acc:.4f}")


if __name__ == '__main__':
    main()
