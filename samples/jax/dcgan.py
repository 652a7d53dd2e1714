"""Deep convolutional GAN (Radford et al. 2015) on 64x64 synthetic images.

Generator: a stack of ConvTranspose2d / BatchNorm2d / ReLU blocks from a
100-dimensional noise vector up to a 3x64x64 image in [-1, 1] (Tanh).
Discriminator: the mirror image with strided Conv2d and LeakyReLU, ending in a
sigmoid. Both are initialised with weights_init through Module.apply and trained
with BCELoss and two Adam optimizers.
"""
import argparse

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


# custom weights initialization called on netG and netD
def weights_init(m, *, key):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        key, subkey = jax.random.split(key)
        m = eqx.tree_at(lambda m: m.weight, m, t2j.init.normal(subkey, m.weight.shape, mean=0.0, std=0.02, dtype=m.weight.dtype))
    elif classname.find('BatchNorm') != -1:
        key, subkey = jax.random.split(key)
        m = eqx.tree_at(lambda m: m.weight, m, t2j.init.normal(subkey, m.weight.shape, mean=1.0, std=0.02, dtype=m.weight.dtype))
        m = eqx.tree_at(lambda m: m.bias, m, t2j.init.constant(m.bias.shape, 0, dtype=m.bias.dtype))
    return m


class Generator(eqx.Module):
    main: t2j.nn.Sequential

    def __init__(self, nz=100, ngf=16, nc=3, *, key):
        key, subkey1, subkey2, subkey3, subkey4, subkey5 = jax.random.split(key, 6)
        self.main = t2j.nn.Sequential(
            # input is Z, going into a convolution
            t2j.nn.ConvTranspose2d(nz, ngf * 8, 4, stride=1, padding=0, bias=False, key=subkey1),
            t2j.nn.BatchNorm2d(ngf * 8),
            t2j.nn.ReLU(),
            # state size. (ngf*8) x 4 x 4
            t2j.nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, stride=2, padding=1, bias=False, key=subkey2),
            t2j.nn.BatchNorm2d(ngf * 4),
            t2j.nn.ReLU(),
            # state size. (ngf*4) x 8 x 8
            t2j.nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, stride=2, padding=1, bias=False, key=subkey3),
            t2j.nn.BatchNorm2d(ngf * 2),
            t2j.nn.ReLU(),
            # state size. (ngf*2) x 16 x 16
            t2j.nn.ConvTranspose2d(ngf * 2, ngf, 4, stride=2, padding=1, bias=False, key=subkey4),
            t2j.nn.BatchNorm2d(ngf),
            t2j.nn.ReLU(),
            # state size. (ngf) x 32 x 32
            t2j.nn.ConvTranspose2d(ngf, nc, 4, stride=2, padding=1, bias=False, key=subkey5),
            t2j.nn.Tanh()
            # state size. (nc) x 64 x 64
        )

    def __call__(self, input, state, *, key=None):
        main_out, state = self.main(input, state=state)
        return main_out, state


class Discriminator(eqx.Module):
    main: t2j.nn.Sequential

    def __init__(self, ndf=16, nc=3, *, key):
        key, subkey1, subkey2, subkey3, subkey4, subkey5 = jax.random.split(key, 6)
        self.main = t2j.nn.Sequential(
            # input is (nc) x 64 x 64
            t2j.nn.Conv2d(nc, ndf, 4, stride=2, padding=1, bias=False, key=subkey1),
            t2j.nn.LeakyReLU(negative_slope=0.2),
            # state size. (ndf) x 32 x 32
            t2j.nn.Conv2d(ndf, ndf * 2, 4, stride=2, padding=1, bias=False, key=subkey2),
            t2j.nn.BatchNorm2d(ndf * 2),
            t2j.nn.LeakyReLU(negative_slope=0.2),
            # state size. (ndf*2) x 16 x 16
            t2j.nn.Conv2d(ndf * 2, ndf * 4, 4, stride=2, padding=1, bias=False, key=subkey3),
            t2j.nn.BatchNorm2d(ndf * 4),
            t2j.nn.LeakyReLU(negative_slope=0.2),
            # state size. (ndf*4) x 8 x 8
            t2j.nn.Conv2d(ndf * 4, ndf * 8, 4, stride=2, padding=1, bias=False, key=subkey4),
            t2j.nn.BatchNorm2d(ndf * 8),
            t2j.nn.LeakyReLU(negative_slope=0.2),
            # state size. (ndf*8) x 4 x 4
            t2j.nn.Conv2d(ndf * 8, 1, 4, stride=1, padding=0, bias=False, key=subkey5),
            t2j.nn.Sigmoid()
        )

    def __call__(self, input, state, *, key=None):
        output, state = self.main(input, state=state)
        return t2j.squeeze(jnp.reshape(output, (-1, 1)), 1), state


def make_stripes(num_samples, generator, image_size=64, nc=3):
    """Coloured sinusoidal stripes at random angles and frequencies, in [-1, 1]."""
    coords = jnp.linspace(-1, 1, image_size)
    yy, xx = jnp.meshgrid(coords, coords, indexing='ij')
    angle = jax.random.uniform(generator.next_key(), (num_samples, 1, 1, 1)) * 3.14159
    freq = jax.random.uniform(generator.next_key(), (num_samples, 1, 1, 1)) * 6 + 2
    colour = jax.random.uniform(generator.next_key(), (num_samples, nc, 1, 1)) * 2 - 1
    proj = xx * jnp.cos(angle) + yy * jnp.sin(angle)
    return jnp.sin(freq * proj) * colour


@eqx.filter_jit
def train_step(netD, netD_state, optimizerD_state, optimizerD, real_cpu, criterion, label, fake_label, fake, *, key):
    def loss_fn(netD, netD_state, label):
        output, netD_state = netD(real_cpu, netD_state, key=jax.random.fold_in(key, 1))
        errD_real = criterion(output, label)
        output_1 = output
        label = jnp.full_like(label, fake_label)
        output, netD_state = netD(jax.lax.stop_gradient(fake), netD_state, key=jax.random.fold_in(key, 2))
        errD_fake = criterion(output, label)
        return errD_real + errD_fake, (netD_state, output, label, errD_real, output_1, errD_fake)
    (total_loss, (netD_state, output, label, errD_real, output_1, errD_fake)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(netD, netD_state, label)
    updates, optimizerD_state = optimizerD.update(grads, optimizerD_state, eqx.filter(netD, eqx.is_array))
    netD = eqx.apply_updates(netD, updates)
    return netD, netD_state, optimizerD_state, total_loss, output, label, errD_real, output_1, errD_fake


@eqx.filter_jit
def train_step2(netG, netG_state, netD_state, optimizerG_state, optimizerG, noise, output, label, real_label, netD, criterion, *, key):
    def loss_fn(netG, netG_state, netD_state, output, label):
        fake, _ = netG(noise, jax.tree_util.tree_map(lambda s: s, netG_state), key=jax.random.fold_in(key, 1))
        output_2 = output
        label = jnp.full_like(label, real_label)  # fake labels are real for generator cost
        output, netD_state = netD(fake, netD_state, key=jax.random.fold_in(key, 2))
        errG = criterion(output, label)
        return errG, (netG_state, netD_state, output, label, fake, output_2)
    (errG, (netG_state, netD_state, output, label, fake, output_2)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(netG, netG_state, netD_state, output, label)
    updates, optimizerG_state = optimizerG.update(grads, optimizerG_state, eqx.filter(netG, eqx.is_array))
    netG = eqx.apply_updates(netG, updates)
    return netG, netG_state, netD_state, optimizerG_state, errG, output, label, fake, output_2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batchSize', type=int, default=8, help='input batch size')
    parser.add_argument('--imageSize', type=int, default=64, help='the height / width of the input image to network')
    parser.add_argument('--nz', type=int, default=100, help='size of the latent z vector')
    parser.add_argument('--ngf', type=int, default=16)
    parser.add_argument('--ndf', type=int, default=16)
    parser.add_argument('--niter', type=int, default=2, help='number of epochs to train for')
    parser.add_argument('--lr', type=float, default=0.0002, help='learning rate, default=0.0002')
    parser.add_argument('--beta1', type=float, default=0.5, help='beta1 for adam. default=0.5')
    parser.add_argument('--manualSeed', type=int, default=0, help='manual seed')
    opt = parser.parse_args()

    key = jax.random.key(opt.manualSeed)

    device = t2j.device("cuda:0" if False else "cpu")
    nz = int(opt.nz)
    ngf = int(opt.ngf)
    ndf = int(opt.ndf)
    nc = 3

    g = t2j.Generator().manual_seed(opt.manualSeed)
    dataset = t2j.data.TensorDataset(make_stripes(32, g, opt.imageSize, nc))
    dataloader = t2j.data.DataLoader(dataset, batch_size=opt.batchSize, shuffle=False)

    key, subkey = jax.random.split(key)
    netG, netG_state = eqx.nn.make_with_state(Generator)(nz, ngf, nc, key=subkey)
    key, subkey = jax.random.split(key)
    netG = t2j.apply(netG, weights_init, key=subkey)
    print(netG)

    key, subkey = jax.random.split(key)
    netD, netD_state = eqx.nn.make_with_state(Discriminator)(ndf, nc, key=subkey)
    key, subkey = jax.random.split(key)
    netD = t2j.apply(netD, weights_init, key=subkey)
    print(netD)

    criterion = t2j.BCELoss()

    key, subkey = jax.random.split(key)
    fixed_noise = jax.random.normal(subkey, (opt.batchSize, nz, 1, 1))
    real_label = 1
    fake_label = 0

    # setup optimizer
    optimizerD = t2j.optim.Adam(lr=opt.lr, betas=(opt.beta1, 0.999))
    optimizerD_state = optimizerD.init(eqx.filter(netD, eqx.is_array))
    optimizerG = t2j.optim.Adam(lr=opt.lr, betas=(opt.beta1, 0.999))
    optimizerG_state = optimizerG.init(eqx.filter(netG, eqx.is_array))

    step = 0
    for epoch in range(opt.niter):
        for i, data in enumerate(dataloader, 0):  # torch2jax: T2J510 fake, netG_state computed again from netG inside the step, so that the gradient reaches it (torch kept that graph from before the previous step)
            real_cpu = data[0]
            batch_size = real_cpu.shape[0]
            label = jnp.full((batch_size,), real_label,
                               dtype=real_cpu.dtype)

            # train with fake
            key, subkey = jax.random.split(key)
            noise = jax.random.normal(subkey, (batch_size, nz, 1, 1))
            key, subkey = jax.random.split(key)
            fake, netG_state = netG(noise, netG_state, key=subkey)

            key, subkey = jax.random.split(key)
            netD, netD_state, optimizerD_state, total_loss, output, label, errD_real, output_1, errD_fake = train_step(netD, netD_state, optimizerD_state, optimizerD, real_cpu, criterion, label, fake_label, fake, key=subkey)
            key, subkey = jax.random.split(key)
            netG, netG_state, netD_state, optimizerG_state, errG, output, label, fake, output_2 = train_step2(netG, netG_state, netD_state, optimizerG_state, optimizerG, noise, output, label, real_label, netD, criterion, key=subkey)
            D_x = jnp.mean(output_1).item()
            D_G_z1 = jnp.mean(output_2).item()
            errD = errD_real + errD_fake
            D_G_z2 = jnp.mean(output).item()

            print('[%d/%d][%d/%d] Loss_D: %.4f Loss_G: %.4f D(x): %.4f D(G(z)): %.4f / %.4f'
                  % (epoch, opt.niter, i, len(dataloader),
                     errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))
            loss = errD + errG
            print(f"step {step} loss {loss.item():.6f}")
            step += 1

    netG = eqx.nn.inference_mode(netG, True)
    netD = eqx.nn.inference_mode(netD, True)
    key, subkey = jax.random.split(key)
    fake, netG_state = netG(fixed_noise, netG_state, key=subkey)
    key, subkey = jax.random.split(key)
    final_loss = criterion(netD(fake, netD_state, key=subkey)[0], jnp.full((fake.shape[0],), real_label,
                                                  dtype=fake.dtype))
    print(f"final loss {final_loss.item():.6f}")


if __name__ == '__main__':
    main()
