"""An encoder and a decoder trained by one loss, each with its own optimizer and its own gradient clipping, inside
a helper that receives both; the learning rates are halved through param_groups between epochs."""
import numpy as np
import torch
from torch import nn, optim


class Encoder(nn.Module):
    def __init__(self, d_in, d_code):
        super().__init__()
        self.fc = nn.Linear(d_in, d_code)

    def forward(self, x):
        return torch.tanh(self.fc(x))


class Decoder(nn.Module):
    def __init__(self, d_code, d_out):
        super().__init__()
        self.fc1 = nn.Linear(d_code, 8)
        self.fc2 = nn.Linear(8, d_out)

    def forward(self, h):
        return self.fc2(torch.relu(self.fc1(h)))


def train_epoch(X, Y, enc, dec, enc_opt, dec_opt, step):
    total = 0.0
    for i in range(0, X.shape[0], 16):
        enc_opt.zero_grad()
        dec_opt.zero_grad()
        code = enc(X[i:i + 16])
        loss = nn.functional.mse_loss(dec(code), Y[i:i + 16])
        loss.backward()
        # small limits, different per model: clipping is active, and each norm is its own model's
        nn.utils.clip_grad_norm_(enc.parameters(), 0.05)
        nn.utils.clip_grad_norm_(dec.parameters(), max_norm=0.2)
        enc_opt.step()
        dec_opt.step()
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
        total += loss.item()
    return total, step


def main():
    rng = np.random.default_rng(3)
    X = torch.tensor(rng.standard_normal((48, 5)), dtype=torch.float32)
    Y = torch.tensor(rng.standard_normal((48, 3)), dtype=torch.float32)
    encoder = Encoder(5, 4)
    decoder = Decoder(4, 3)
    with torch.no_grad():
        for p in encoder.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))
        for p in decoder.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))
    encoder_optimizer = optim.Adam(encoder.parameters(), lr=0.02)
    decoder_optimizer = optim.SGD(decoder.parameters(), lr=0.1, momentum=0.9)
    step = 0
    for epoch in range(3):
        total, step = train_epoch(X, Y, encoder, decoder, encoder_optimizer, decoder_optimizer, step)
        for opt in (encoder_optimizer, decoder_optimizer):
            for group in opt.param_groups:
                group["lr"] *= 0.5
        print(f"epoch {epoch} total {total:.4f}")
    print(f"final encoder {(encoder.fc.weight.sum() + encoder.fc.bias.sum()).item():.6f}")
    print(f"final decoder {(decoder.fc1.weight.sum() + decoder.fc1.bias.sum() + decoder.fc2.weight.sum() + decoder.fc2.bias.sum()).item():.6f}")


if __name__ == "__main__":
    main()
