"""The optional adversarial term of VAE training: a PatchGAN discriminator with hinge losses.

Off by default: Qwen-Image-2.0 (§3.1) and Qwen-Image-VAE-2.0 drop it, finding reconstruction + perceptual +
alignment enough at scale. VA-VAE and most latent-diffusion VAEs keep it (taming-transformers' recipe):
a fully convolutional discriminator that scores overlapping patches real or fake, switched on after
`loss.gan_start` steps once reconstructions are roughly right, its generator term weighted adaptively
against reconstruction at the decoder's last layer.
"""

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """`layers` stride-2 4x4 convolutions doubling the width (capped at 8x), then a stride-1 conv and a
    one-channel conv: one logit per ~70x70 px patch at 3 layers. GroupNorm instead of BatchNorm, so that
    a batch of one image and a resumed run behave like any other batch."""

    def __init__(self, in_channels: int, base_channels: int = 64, layers: int = 3):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = base_channels
        for index in range(1, layers + 1):
            wider = base_channels * min(2**index, 8)
            stride = 2 if index < layers else 1
            blocks += [
                nn.Conv2d(width, wider, 4, stride, 1, bias=False),
                nn.GroupNorm(min(32, wider // 4), wider),
                nn.LeakyReLU(0.2),
            ]
            width = wider
        blocks.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (B, C, H, W) in [-1, 1] -> patch logits (B, 1, h, w)."""
        return self.net(pixels)


def discriminator_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½(mean ReLU(1 − D(x)) + mean ReLU(1 + D(x̂))): zero once real patches score ≥ 1 and fakes ≤ −1."""
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """−mean D(x̂): the decoder is pushed toward patches the discriminator scores as real."""
    return -fake_logits.mean()
