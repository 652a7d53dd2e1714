"""A small GAN: the discriminator's gradients add up over two backward() calls before its step, and the generator's
step then backpropagates through the fake batch the discriminator's phase computed. Both nets have BatchNorm: each
keeps its own running statistics, which the final evaluation uses. (No BatchNorm right after a Linear layer, nor at
the discriminator's input: gradients that are zero in exact arithmetic, rounding noise, would take Adam's full-size
steps of random sign, which no comparison survives.)"""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


class Generator(nn.Module):
    def __init__(self, nz, d_out):
        super().__init__()
        self.main = nn.Sequential(nn.BatchNorm1d(nz), nn.Linear(nz, 8), nn.ReLU(), nn.Linear(8, d_out))

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, d_in):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(d_in, 8), nn.LeakyReLU(0.2), nn.BatchNorm1d(8),
                                  nn.Linear(8, 1), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1)


def main():
    rng = np.random.default_rng(5)
    real_data = torch.tensor(rng.standard_normal((64, 3)) * 0.5 + 1.0, dtype=torch.float32)
    noise_bank = torch.tensor(rng.standard_normal((64, 4)), dtype=torch.float32)
    netG = Generator(4, 3)
    netD = Discriminator(3)
    with torch.no_grad():
        for p in netG.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.4, dtype=torch.float32))
        for p in netD.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.4, dtype=torch.float32))
    criterion = nn.BCELoss()
    optimizerD = optim.Adam(netD.parameters(), lr=0.002, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=0.002, betas=(0.5, 0.999))
    step = 0
    for epoch in range(2):
        for i in range(0, 64, 16):
            # (1) the discriminator: real and fake batches, two backward() calls, one step
            netD.zero_grad()
            real = real_data[i:i + 16]
            label = torch.full((16,), 1.0)
            output = netD(real)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = noise_bank[i:i + 16]
            fake = netG(noise)
            label.fill_(0.0)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()
            # (2) the generator, through the updated discriminator
            netG.zero_grad()
            label.fill_(1.0)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            optimizerG.step()
            print(f"step {step} loss {errD.item():.6f}")
            print(f"step {step + 1} loss {errG.item():.6f}")
            print(f"step {step + 2} loss {D_x:.6f}")
            print(f"step {step + 3} loss {D_G_z1:.6f}")
            step += 4
    netG.eval()
    netD.eval()
    with torch.no_grad():
        final = criterion(netD(netG(noise_bank)), torch.ones(64)).item()
    print(f"final loss {final:.6f}")
    print(f"final generator {(netG.main[1].weight.sum() + netG.main[3].bias.sum()).item():.6f}")
    print(f"final discriminator {(netD.main[0].weight.sum() + netD.main[3].bias.sum()).item():.6f}")


if __name__ == "__main__":
    main()
