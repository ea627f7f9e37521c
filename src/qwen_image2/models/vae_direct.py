"""The image VAE's encoder and decoder called directly on one frame, for training and latent caching.

`AutoencoderKLQwenImage21.encode/decode` run the video VAE's frame loop with a feature cache (a `clone()` of
every causal-conv input) and clamp the decoded pixels. An image is one frame, so the cache holds nothing
the next frame reads: calling the public `encoder`/`quant_conv` and `post_quant_conv`/`decoder` modules
with no cache gives the same numbers (tests/vae/test_vae_direct.py), keeps gradients through the clamp
range, and lets the convolutions run channels-last under autocast.
"""

import torch
from diffusers import AutoencoderKLQwenImage21

from qwen_image2.errors import UserError


def check_trainable(vae: AutoencoderKLQwenImage21) -> None:
    if vae.config.patch_size is not None:
        raise UserError("the VAE's patch_size must be null (the Qwen-Image-2.1 VAE has none) to train it")


def apply_image_only(vae: AutoencoderKLQwenImage21) -> int:
    """Freeze the `time_conv` layers, which only mix video frames (a single frame never reaches them), so
    that an optimizer and its checkpoints hold exactly the weights an image trains. Returns how many."""
    frozen = 0
    for name, parameter in vae.named_parameters():
        if ".time_conv." in name:
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def encode_moments(vae: AutoencoderKLQwenImage21, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (B, C, H, W) in [-1, 1] -> posterior (mean, logvar), each (B, z_dim, H/16, W/16)."""
    moments = vae.quant_conv(vae.encoder(pixels.unsqueeze(2)))[:, :, 0]
    mean, logvar = moments.chunk(2, dim=1)
    # diffusers' DiagonalGaussianDistribution clamps logvar to this range before using it.
    return mean, logvar.clamp(-30.0, 20.0)


def decode_raw(vae: AutoencoderKLQwenImage21, latents: torch.Tensor) -> torch.Tensor:
    """Un-normalised latents (B, z_dim, h, w) -> pixels (B, C, 16h, 16w), not clamped (training)."""
    return vae.decoder(vae.post_quant_conv(latents.unsqueeze(2)), first_chunk=True)[:, :, 0]


@torch.no_grad()
def encode_for_cache(
    vae: AutoencoderKLQwenImage21,
    pixels: torch.Tensor,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Posterior mode (B, z_dim, h, w) in fp32 for latent caching; `autocast_dtype=torch.bfloat16` on GPU.

    `channels_last=True` (with the VAE moved `to(memory_format=torch.channels_last)`) lets oneDNN/cuDNN
    pick their NHWC kernels: 2-3x on a 2-core CPU for the tiny preset (benchmarks/vae_throughput.py).
    """
    if channels_last:
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    enabled = autocast_dtype is not None
    with torch.autocast(pixels.device.type, dtype=autocast_dtype or torch.float32, enabled=enabled):
        mean, _ = encode_moments(vae, pixels)
    return mean.float().contiguous()
