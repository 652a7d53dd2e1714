"""U-Net (Ronneberger et al. 2015) for binary segmentation of synthetic shapes.

Encoder: repeated (Conv3x3 -> BatchNorm -> ReLU) x 2 blocks with 2x2 max-pooling
between them. Decoder: 2x2 transposed convolutions (or bilinear upsampling)
that double the resolution, zero-padding when the odd-sized encoder map is one
pixel larger, and skip connections joined with torch.cat. Loss is
BCEWithLogits plus a soft Dice loss; Adam with ReduceLROnPlateau on the
validation Dice score. The images are 44x44 so that the decoder really has to
pad (44 -> 22 -> 11 -> 5 -> 2).
"""
import argparse

import jax
import jax.numpy as jnp
import equinox as eqx
import torch2jax.runtime as t2j


class DoubleConv(eqx.Module):
    """(convolution => [BN] => ReLU) * 2"""

    double_conv: t2j.nn.Sequential

    def __init__(self, in_channels, out_channels, mid_channels=None, *, key):
        if not mid_channels:
            mid_channels = out_channels
        key, subkey1, subkey2 = jax.random.split(key, 3)
        self.double_conv = t2j.nn.Sequential(
            t2j.nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False, key=subkey1),
            t2j.nn.BatchNorm2d(mid_channels),
            t2j.nn.ReLU(),
            t2j.nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False, key=subkey2),
            t2j.nn.BatchNorm2d(out_channels),
            t2j.nn.ReLU()
        )

    def __call__(self, x, state, *, key=None):
        double_conv_out, state = self.double_conv(x, state=state)
        return double_conv_out, state


class Down(eqx.Module):
    """Downscaling with maxpool then double conv"""

    maxpool_conv: t2j.nn.Sequential

    def __init__(self, in_channels, out_channels, *, key):
        self.maxpool_conv = t2j.nn.Sequential(
            t2j.nn.MaxPool2d(2),
            DoubleConv(in_channels, out_channels, key=key)
        )

    def __call__(self, x, state, *, key=None):
        maxpool_conv_out, state = self.maxpool_conv(x, state=state, key=key)
        return maxpool_conv_out, state


class Up(eqx.Module):
    """Upscaling then double conv"""

    up: eqx.Module = None
    conv: DoubleConv = None

    def __init__(self, in_channels, out_channels, bilinear=False, *, key):

        # if bilinear, use the normal convolutions to reduce the number of channels
        if bilinear:
            self.up = t2j.nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)
            key, subkey = jax.random.split(key)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2, key=subkey)
        else:
            key, subkey = jax.random.split(key)
            self.up = t2j.nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2, key=subkey)
            key, subkey = jax.random.split(key)
            self.conv = DoubleConv(in_channels, out_channels, key=subkey)

    def __call__(self, x1, x2, state, *, key=None):
        x1 = self.up(x1)
        # input is CHW
        diffY = x2.shape[2] - x1.shape[2]
        diffX = x2.shape[3] - x1.shape[3]

        x1 = t2j.nn.functional.pad(x1, [diffX // 2, diffX - diffX // 2,
                        diffY // 2, diffY - diffY // 2])
        x = jnp.concatenate([x2, x1], axis=1)
        conv_out, state = self.conv(x, state=state, key=key)
        return conv_out, state


class OutConv(eqx.Module):
    conv: t2j.nn.Conv2d

    def __init__(self, in_channels, out_channels, *, key):
        self.conv = t2j.nn.Conv2d(in_channels, out_channels, 1, key=key)

    def __call__(self, x, *, key=None):
        return self.conv(x)


class UNet(eqx.Module):
    n_channels: object = eqx.field(static=True)
    n_classes: object = eqx.field(static=True)
    bilinear: object = eqx.field(static=True)
    inc: DoubleConv
    down1: Down
    down2: Down
    down3: Down
    down4: Down
    up1: Up
    up2: Up
    up3: Up
    up4: Up
    outc: OutConv

    def __init__(self, n_channels=3, n_classes=1, base=8, bilinear=False, *, key):
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.bilinear = bilinear

        factor = 2 if bilinear else 1
        key, subkey = jax.random.split(key)
        self.inc = DoubleConv(n_channels, base, key=subkey)
        key, subkey = jax.random.split(key)
        self.down1 = Down(base, base * 2, key=subkey)
        key, subkey = jax.random.split(key)
        self.down2 = Down(base * 2, base * 4, key=subkey)
        key, subkey = jax.random.split(key)
        self.down3 = Down(base * 4, base * 8, key=subkey)
        key, subkey = jax.random.split(key)
        self.down4 = Down(base * 8, base * 16 // factor, key=subkey)
        key, subkey = jax.random.split(key)
        self.up1 = Up(base * 16, base * 8 // factor, bilinear, key=subkey)
        key, subkey = jax.random.split(key)
        self.up2 = Up(base * 8, base * 4 // factor, bilinear, key=subkey)
        key, subkey = jax.random.split(key)
        self.up3 = Up(base * 4, base * 2 // factor, bilinear, key=subkey)
        key, subkey = jax.random.split(key)
        self.up4 = Up(base * 2, base, bilinear, key=subkey)
        key, subkey = jax.random.split(key)
        self.outc = OutConv(base, n_classes, key=subkey)

    def __call__(self, x, state, *, key=None):
        key, subkey = t2j.split_key(key)
        x1, state = self.inc(x, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        x2, state = self.down1(x1, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        x3, state = self.down2(x2, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        x4, state = self.down3(x3, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        x5, state = self.down4(x4, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        x, state = self.up1(x5, x4, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        x, state = self.up2(x, x3, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        x, state = self.up3(x, x2, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        x, state = self.up4(x, x1, state=state, key=subkey)
        key, subkey = t2j.split_key(key)
        logits = self.outc(x, key=subkey)
        return logits, state


def dice_coeff(input, target, reduce_batch_first=False, epsilon=1e-6):
    # Average of Dice coefficient for all batches, or for a single mask
    assert input.shape == target.shape
    assert input.ndim == 3 or not reduce_batch_first

    sum_dim = (-1, -2) if input.ndim == 2 or not reduce_batch_first else (-1, -2, -3)

    inter = 2 * jnp.sum(input * target, axis=sum_dim)
    sets_sum = jnp.sum(input, axis=sum_dim) + jnp.sum(target, axis=sum_dim)
    sets_sum = jnp.where(sets_sum == 0, inter, sets_sum)

    dice = (inter + epsilon) / (sets_sum + epsilon)
    return jnp.mean(dice)


def dice_loss(input, target):
    # Dice loss (objective to minimize) between 0 and 1
    return 1 - dice_coeff(input, target, reduce_batch_first=True)


def make_shapes(num_samples, size, generator):
    """Random filled discs on a noisy background; the target mask is the union of the discs."""
    coords = jnp.arange(size, dtype=jnp.float32)
    yy, xx = jnp.meshgrid(coords, coords, indexing='ij')
    masks = jnp.zeros((num_samples, size, size))
    for _ in range(3):
        cy = jax.random.uniform(generator.next_key(), (num_samples, 1, 1)) * size
        cx = jax.random.uniform(generator.next_key(), (num_samples, 1, 1)) * size
        r = jax.random.uniform(generator.next_key(), (num_samples, 1, 1)) * size / 6 + size / 12
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2).astype(jnp.float32)
        masks = jnp.maximum(masks, disc)
    tint = jax.random.uniform(generator.next_key(), (num_samples, 3, 1, 1)) + 0.5
    images = jnp.expand_dims(masks, 1) * tint + 0.3 * jax.random.normal(generator.next_key(), (num_samples, 3, size, size))
    return images, masks


def evaluate(net, state, dataloader, device, *, key):
    net = eqx.nn.inference_mode(net, True)
    num_val_batches = len(dataloader)
    dice_score = 0
    val_loss = 0

    # iterate over the validation set
    for image, mask_true in dataloader:
        image = image.astype(jnp.float32)
        mask_true = mask_true.astype(jnp.int64)

        key, subkey = jax.random.split(key)
        logits = t2j.squeeze(net(image, state, key=subkey)[0], 1)
        val_loss += t2j.binary_cross_entropy_with_logits(logits, mask_true.astype(jnp.float32)).item()
        val_loss += dice_loss(jax.nn.sigmoid(logits), mask_true.astype(jnp.float32)).item()
        mask_pred = (jax.nn.sigmoid(logits) > 0.5).astype(jnp.float32)
        dice_score += dice_coeff(mask_pred, mask_true.astype(jnp.float32), reduce_batch_first=False)

    net = eqx.nn.inference_mode(net, False)
    return dice_score / max(num_val_batches, 1), val_loss / max(num_val_batches, 1)


@eqx.filter_jit
def train_step(model, state, opt_state, optimizer, images, device, true_masks, criterion, *, key):
    def loss_fn(model, state, images, true_masks):
        assert images.shape[1] == model.n_channels, \
                f'Network has been defined with {model.n_channels} input channels, ' \
                f'but loaded images have {images.shape[1]} channels.'
        images = images.astype(jnp.float32)
        true_masks = true_masks.astype(jnp.int64)
        masks_pred, state = model(images, state, key=key)
        if model.n_classes == 1:
            loss = criterion(t2j.squeeze(masks_pred, 1), true_masks.astype(jnp.float32))
            loss += dice_loss(jax.nn.sigmoid(t2j.squeeze(masks_pred, 1)), true_masks.astype(jnp.float32))
        else:
            loss = criterion(masks_pred, true_masks)
            loss += dice_loss(
                jax.nn.softmax(masks_pred, axis=1).astype(jnp.float32),
                jnp.transpose(jax.nn.one_hot(true_masks, model.n_classes, dtype=jnp.int32), (0, 3, 1, 2)).astype(jnp.float32),
            )
        return loss, (state, images, true_masks)
    (loss, (state, images, true_masks)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, state, images, true_masks)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss, images, true_masks


def train_model(model, state, device, dataset, epochs=2, batch_size=8, learning_rate=1e-3, val_percent=0.25,
                weight_decay=1e-8, *, key):
    # 1. Split into train / validation partitions
    n_val = int(len(dataset) * val_percent)
    n_train = len(dataset) - n_val
    train_set, val_set = t2j.data.random_split(dataset, [n_train, n_val], generator=t2j.Generator().manual_seed(0))  # torch2jax: T2J104 torch.utils.data.random_split: the split's permutation is drawn by numpy: the same sizes as torch's, other samples in each part

    # 2. Create data loaders
    train_loader = t2j.data.DataLoader(train_set, batch_size=batch_size,
                              shuffle=True, generator=t2j.Generator().manual_seed(0))
    val_loader = t2j.data.DataLoader(val_set, batch_size=batch_size, shuffle=False, drop_last=True)

    # 3. Set up the optimizer, the loss and the learning rate scheduler
    optimizer = t2j.optim.Adam(lr=learning_rate, weight_decay=weight_decay)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    scheduler = t2j.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode='max', factor=0.5, patience=1)  # goal: maximize Dice
    opt_state = scheduler.sync(opt_state)
    criterion = t2j.CrossEntropyLoss() if model.n_classes > 1 else t2j.BCEWithLogitsLoss()
    global_step = 0
    val_score, val_loss = 0.0, 0.0

    # 4. Begin training
    for epoch in range(1, epochs + 1):
        model = eqx.nn.inference_mode(model, False)
        epoch_loss = 0
        for images, true_masks in train_loader:
            key, subkey = jax.random.split(key)
            model, state, opt_state, loss, images, true_masks = train_step(model, state, opt_state, optimizer, images, device, true_masks, criterion, key=subkey)

            print(f"step {global_step} loss {loss.item():.6f}")
            global_step += 1
            epoch_loss += loss.item()

        key, subkey = jax.random.split(key)
        val_score, val_loss = evaluate(model, state, val_loader, device, key=subkey)
        opt_state = scheduler.step(opt_state, val_score)
        print(f'Epoch {epoch}: train loss {epoch_loss / len(train_loader):.4f}, '
              f'validation loss {val_loss:.4f}, validation Dice score {float(val_score):.4f}, '
              f'lr {optimizer.param_groups[0]["lr"]:.2e}')
    return val_loss


def main():
    parser = argparse.ArgumentParser(description='Train the UNet on synthetic images and target masks')
    parser.add_argument('--epochs', '-e', metavar='E', type=int, default=2, help='Number of epochs')
    parser.add_argument('--batch-size', '-b', dest='batch_size', metavar='B', type=int, default=8, help='Batch size')
    parser.add_argument('--learning-rate', '-l', metavar='LR', type=float, default=1e-3,
                        help='Learning rate', dest='lr')
    parser.add_argument('--size', type=int, default=44, help='Image height and width')
    parser.add_argument('--base', type=int, default=8, help='Channels of the first level (64 in the paper)')
    parser.add_argument('--bilinear', action='store_true', default=False, help='Use bilinear upsampling')
    parser.add_argument('--classes', '-c', type=int, default=1, help='Number of classes')
    args = parser.parse_args()

    key = jax.random.key(0)
    device = t2j.device('cuda' if False else 'cpu')

    g = t2j.Generator().manual_seed(0)
    images, masks = make_shapes(32, args.size, g)
    dataset = t2j.data.TensorDataset(images, masks)

    key, subkey = jax.random.split(key)
    model, state = eqx.nn.make_with_state(UNet)(n_channels=3, n_classes=args.classes, base=args.base, bilinear=args.bilinear, key=subkey)
    model = model

    key, subkey = jax.random.split(key)
    val_loss = train_model(model=model, device=device, dataset=dataset, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.lr, state=state, key=subkey)
    print(f"final loss {val_loss:.6f}")


if __name__ == '__main__':
    main()
