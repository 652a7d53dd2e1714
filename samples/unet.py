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

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim
from torch.utils.data import DataLoader, TensorDataset, random_split


class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2"""

    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        if not mid_channels:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    """Downscaling with maxpool then double conv"""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(2),
            DoubleConv(in_channels, out_channels)
        )

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upscaling then double conv"""

    def __init__(self, in_channels, out_channels, bilinear=False):
        super().__init__()

        # if bilinear, use the normal convolutions to reduce the number of channels
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        # input is CHW
        diffY = x2.size()[2] - x1.size()[2]
        diffX = x2.size()[3] - x1.size()[3]

        x1 = F.pad(x1, [diffX // 2, diffX - diffX // 2,
                        diffY // 2, diffY - diffY // 2])
        x = torch.cat([x2, x1], dim=1)
        return self.conv(x)


class OutConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super(OutConv, self).__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=1, base=8, bilinear=False):
        super(UNet, self).__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.bilinear = bilinear

        factor = 2 if bilinear else 1
        self.inc = DoubleConv(n_channels, base)
        self.down1 = Down(base, base * 2)
        self.down2 = Down(base * 2, base * 4)
        self.down3 = Down(base * 4, base * 8)
        self.down4 = Down(base * 8, base * 16 // factor)
        self.up1 = Up(base * 16, base * 8 // factor, bilinear)
        self.up2 = Up(base * 8, base * 4 // factor, bilinear)
        self.up3 = Up(base * 4, base * 2 // factor, bilinear)
        self.up4 = Up(base * 2, base, bilinear)
        self.outc = OutConv(base, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        logits = self.outc(x)
        return logits


def dice_coeff(input, target, reduce_batch_first=False, epsilon=1e-6):
    # Average of Dice coefficient for all batches, or for a single mask
    assert input.size() == target.size()
    assert input.dim() == 3 or not reduce_batch_first

    sum_dim = (-1, -2) if input.dim() == 2 or not reduce_batch_first else (-1, -2, -3)

    inter = 2 * (input * target).sum(dim=sum_dim)
    sets_sum = input.sum(dim=sum_dim) + target.sum(dim=sum_dim)
    sets_sum = torch.where(sets_sum == 0, inter, sets_sum)

    dice = (inter + epsilon) / (sets_sum + epsilon)
    return dice.mean()


def dice_loss(input, target):
    # Dice loss (objective to minimize) between 0 and 1
    return 1 - dice_coeff(input, target, reduce_batch_first=True)


def make_shapes(num_samples, size, generator):
    """Random filled discs on a noisy background; the target mask is the union of the discs."""
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing='ij')
    masks = torch.zeros(num_samples, size, size)
    for _ in range(3):
        cy = torch.rand(num_samples, 1, 1, generator=generator) * size
        cx = torch.rand(num_samples, 1, 1, generator=generator) * size
        r = torch.rand(num_samples, 1, 1, generator=generator) * size / 6 + size / 12
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2).float()
        masks = torch.maximum(masks, disc)
    tint = torch.rand(num_samples, 3, 1, 1, generator=generator) + 0.5
    images = masks.unsqueeze(1) * tint + 0.3 * torch.randn(num_samples, 3, size, size, generator=generator)
    return images, masks


@torch.inference_mode()
def evaluate(net, dataloader, device):
    net.eval()
    num_val_batches = len(dataloader)
    dice_score = 0
    val_loss = 0

    # iterate over the validation set
    for image, mask_true in dataloader:
        image = image.to(device=device, dtype=torch.float32, memory_format=torch.channels_last)
        mask_true = mask_true.to(device=device, dtype=torch.long)

        logits = net(image).squeeze(1)
        val_loss += F.binary_cross_entropy_with_logits(logits, mask_true.float()).item()
        val_loss += dice_loss(torch.sigmoid(logits), mask_true.float()).item()
        mask_pred = (F.sigmoid(logits) > 0.5).float()
        dice_score += dice_coeff(mask_pred, mask_true.float(), reduce_batch_first=False)

    net.train()
    return dice_score / max(num_val_batches, 1), val_loss / max(num_val_batches, 1)


def train_model(model, device, dataset, epochs=2, batch_size=8, learning_rate=1e-3, val_percent=0.25,
                weight_decay=1e-8):
    # 1. Split into train / validation partitions
    n_val = int(len(dataset) * val_percent)
    n_train = len(dataset) - n_val
    train_set, val_set = random_split(dataset, [n_train, n_val], generator=torch.Generator().manual_seed(0))

    # 2. Create data loaders
    train_loader = DataLoader(train_set, shuffle=True, batch_size=batch_size,
                              generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(val_set, shuffle=False, drop_last=True, batch_size=batch_size)

    # 3. Set up the optimizer, the loss and the learning rate scheduler
    optimizer = optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, 'max', patience=1, factor=0.5)  # goal: maximize Dice
    criterion = nn.CrossEntropyLoss() if model.n_classes > 1 else nn.BCEWithLogitsLoss()
    global_step = 0
    val_score, val_loss = 0.0, 0.0

    # 4. Begin training
    for epoch in range(1, epochs + 1):
        model.train()
        epoch_loss = 0
        for images, true_masks in train_loader:
            assert images.shape[1] == model.n_channels, \
                f'Network has been defined with {model.n_channels} input channels, ' \
                f'but loaded images have {images.shape[1]} channels.'

            images = images.to(device=device, dtype=torch.float32, memory_format=torch.channels_last)
            true_masks = true_masks.to(device=device, dtype=torch.long)

            masks_pred = model(images)
            if model.n_classes == 1:
                loss = criterion(masks_pred.squeeze(1), true_masks.float())
                loss += dice_loss(F.sigmoid(masks_pred.squeeze(1)), true_masks.float())
            else:
                loss = criterion(masks_pred, true_masks)
                loss += dice_loss(
                    F.softmax(masks_pred, dim=1).float(),
                    F.one_hot(true_masks, model.n_classes).permute(0, 3, 1, 2).float(),
                )

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            print(f"step {global_step} loss {loss.item():.6f}")
            global_step += 1
            epoch_loss += loss.item()

        val_score, val_loss = evaluate(model, val_loader, device)
        scheduler.step(val_score)
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

    torch.manual_seed(0)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

    g = torch.Generator().manual_seed(0)
    images, masks = make_shapes(32, args.size, g)
    dataset = TensorDataset(images, masks)

    model = UNet(n_channels=3, n_classes=args.classes, base=args.base, bilinear=args.bilinear)
    model = model.to(memory_format=torch.channels_last)
    model.to(device=device)

    val_loss = train_model(model=model, device=device, dataset=dataset, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.lr)
    print(f"final loss {val_loss:.6f}")


if __name__ == '__main__':
    main()
