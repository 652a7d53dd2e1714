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

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

PAD_IDX = 0


class PositionalEncoding(nn.Module):

    def __init__(self, d_model, dropout=0.1, max_len=512):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)

        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(1, max_len, d_model)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer('pe', pe)

    def forward(self, x):
        """
        Arguments:
            x: Tensor, shape ``[batch_size, seq_len, embedding_dim]``
        """
        x = x + self.pe[:, :x.size(1)]
        return self.dropout(x)


class TransformerClassifier(nn.Module):
    def __init__(self, vocab_size=100, num_classes=4, d_model=64, nhead=4, d_hid=128, nlayers=2,
                 dropout=0.1):
        super().__init__()
        self.model_type = 'Transformer'
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD_IDX)
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        encoder_layer = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout, activation='gelu',
                                                   batch_first=True, norm_first=True)
        self.transformer_encoder = nn.TransformerEncoder(encoder_layer, nlayers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, num_classes)

        self.init_weights()

    def init_weights(self):
        initrange = 0.1
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.embedding.weight.data[PAD_IDX].zero_()
        self.classifier.bias.data.zero_()
        self.classifier.weight.data.uniform_(-initrange, initrange)

    def forward(self, src):
        """
        Arguments:
            src: Tensor, shape ``[batch_size, seq_len]``, padded with PAD_IDX
        Returns:
            logits of shape ``[batch_size, num_classes]``
        """
        padding_mask = src == PAD_IDX  # True where the position must be ignored
        x = self.embedding(src) * math.sqrt(self.d_model)
        x = self.pos_encoder(x)
        x = self.transformer_encoder(x, src_key_padding_mask=padding_mask)
        x = self.norm(x)
        # mean over the real (non-padding) tokens
        keep = (~padding_mask).unsqueeze(-1).type_as(x)
        pooled = (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return self.classifier(pooled)


def make_sentences(num_samples, vocab_size, num_classes, max_len, generator):
    """Filler tokens plus a few copies of one of `num_classes` keyword tokens; the keyword is the label."""
    first_filler = num_classes + 1
    labels = torch.randint(0, num_classes, (num_samples,), generator=generator)
    lengths = torch.randint(max_len // 2, max_len + 1, (num_samples,), generator=generator)
    tokens = torch.randint(first_filler, vocab_size, (num_samples, max_len), generator=generator)
    positions = torch.arange(max_len).unsqueeze(0)
    keyword_spots = torch.rand(num_samples, max_len, generator=generator) < 0.2
    tokens = torch.where(keyword_spots, (labels + 1).unsqueeze(1), tokens)
    tokens[positions >= lengths.unsqueeze(1)] = PAD_IDX
    return tokens, labels


def run_epoch(model, loader, criterion, optimizer, scheduler, device, step):
    model.train()
    for tokens, labels in loader:
        tokens, labels = tokens.to(device), labels.to(device)
        logits = model(tokens)
        loss = criterion(logits, labels)

        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        scheduler.step()

        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    return step


@torch.no_grad()
def accuracy(model, loader, device):
    model.eval()
    correct = 0
    for tokens, labels in loader:
        tokens, labels = tokens.to(device), labels.to(device)
        correct += (model(tokens).argmax(1) == labels).sum().item()
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

    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

    g = torch.Generator().manual_seed(args.seed)
    train_x, train_y = make_sentences(64, args.vocab_size, args.num_classes, args.max_len, g)
    test_x, test_y = make_sentences(32, args.vocab_size, args.num_classes, args.max_len, g)
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=False)
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=args.batch_size)

    model = TransformerClassifier(args.vocab_size, args.num_classes, dropout=args.dropout).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.max_lr,
                                                    epochs=args.epochs, steps_per_epoch=len(train_loader))

    step = 0
    for epoch in range(args.epochs):
        step = run_epoch(model, train_loader, criterion, optimizer, scheduler, device, step)
        acc = accuracy(model, test_loader, device)
        print(f"epoch {epoch} test accuracy {acc:.4f}")

    print(f"final accuracy {acc:.4f}")


if __name__ == '__main__':
    main()
