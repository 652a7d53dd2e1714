"""A critic trained n_critic times in an inner loop before each generator step (WGAN): the generator's loss starts
after the critic's steps, which stay steps of their own, with their optimizer state."""
import numpy as np
import torch
import torch.nn as nn


def main():
    rng = np.random.default_rng(11)
    G = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    D = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in G.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))
        for p in D.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.5, 0.9))
    opt_d = torch.optim.RMSprop(D.parameters(), lr=5e-3)
    real = torch.tensor(rng.standard_normal((6, 16, 2)), dtype=torch.float32)
    noise = torch.tensor(rng.standard_normal((6, 3, 16, 3)), dtype=torch.float32)
    step = 0
    for it in range(6):
        for k in range(2):
            fake = G(noise[it, k]).detach()
            d_loss = D(fake).mean() - D(real[it]).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            print(f"step {step} loss {d_loss.item():.6f}")
            step += 1
        g_loss = -D(G(noise[it, 2])).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        print(f"step {step} loss {g_loss.item():.6f}")
        step += 1
    with torch.no_grad():
        final = D(G(noise[0, 0])).mean().item()
    print(f"final score {final:.6f}")


if __name__ == "__main__":
    main()
