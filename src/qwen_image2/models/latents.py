"""VAE latents as the DiT reads them: posterior mode, per-channel normalised, one token per 16x16 cell."""

import numpy as np
import torch
from diffusers import AutoencoderKLQwenImage21
from PIL import Image

from qwen_image2.errors import UserError
from qwen_image2.models.conditioning import encoder_view
from qwen_image2.models.vae_direct import encode_for_cache, encode_moments


def _stats(vae: AutoencoderKLQwenImage21, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, vae.config.z_dim, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(like.device, like.dtype)
    std = torch.tensor(vae.config.latents_std).view(shape).to(like.device, like.dtype)
    return mean, std


def _normalise(vae: AutoencoderKLQwenImage21, latents: torch.Tensor) -> torch.Tensor:
    mean, std = _stats(vae, latents)
    return (latents - mean) / std


def encode_latents(vae: AutoencoderKLQwenImage21, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels (B, C, H, W) in [-1, 1] -> normalised latents (B, z_dim, H/16, W/16), deterministic.

    The encoder is called directly, without the video frame loop's feature cache: the same numbers as
    `vae.encode(...).latent_dist.mode()` (tests/vae/test_vae_losses.py) without a copy of every layer's input.
    """
    return _normalise(vae, encode_moments(vae, pixels)[0])


def encode_image_batches(
    vae: AutoencoderKLQwenImage21, images: list[Image.Image], batch_size: int = 16, channels_last: bool = True
) -> list[tuple[torch.Tensor, tuple[int, int]]]:
    """Each image's packed normalised latents (h·w, z_dim) in fp32 and its (h, w) grid, encoded in batches
    of same-size images with the direct encoder (`encode_for_cache`, channels-last): the latent cache's
    path, where throughput matters (benchmarks/vae_throughput.py)."""
    channels = vae.config.in_channels
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        by_size.setdefault(image.size, []).append(index)
    out: list = [None] * len(images)
    for indices in by_size.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            pixels = to_pixels([images[i] for i in chunk], channels).to(vae.device, vae.dtype)
            latents = encode_for_cache(vae, pixels, channels_last=channels_last)
            grid = tuple(latents.shape[-2:])
            for i, tokens in zip(chunk, pack(_normalise(vae, latents)), strict=True):
                out[i] = tokens, grid
    return out


def decode_latents(vae: AutoencoderKLQwenImage21, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents (B, z_dim, h, w) -> pixels (B, C, 16h, 16w) in [-1, 1]."""
    mean, std = _stats(vae, latents)
    return vae.decode((latents * std + mean).unsqueeze(2), return_dict=False)[0][:, :, 0]


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C): raster-order tokens, no 2x2 patchify (2.1 reads cells unpatched)."""
    batch, channels, height, width = latents.shape
    return latents.reshape(batch, channels, height * width).transpose(1, 2)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, h*w, C) -> (B, C, h, w); `height`, `width` in latent cells."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


def to_pixels(images: list[Image.Image], channels: int = 4) -> torch.Tensor:
    """Images of one size, sides multiples of 32 -> (B, channels, H, W) in [-1, 1] (diffusers' arithmetic).

    4 channels (the Qwen-Image-2.1 VAE): RGBA. 3 (an RGB VAE, such as the tiny demo's): RGB, transparent
    pixels laid over white, as the condition encoder sees them.
    """
    for image in images:
        if image.width % 32 or image.height % 32:
            raise UserError(f"image of {image.width}x{image.height}: both sides must be multiples of 32")
    images = [image.convert("RGBA") if channels == 4 else encoder_view(image) for image in images]
    arrays = np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in images])
    return 2.0 * torch.from_numpy(arrays).permute(0, 3, 1, 2) - 1.0


def encode_images(
    vae: AutoencoderKLQwenImage21, images: list[Image.Image]
) -> tuple[torch.Tensor | None, list[tuple[int, int]]]:
    """Condition images, each encoded alone (sizes may differ) and packed one after another.

    Returns (1, sum of h·w, z_dim) tokens, or None for no images, and each image's (h, w) grid.
    """
    channels = vae.config.in_channels
    encoded = [
        encode_latents(vae, to_pixels([image], channels).to(vae.device, vae.dtype)) for image in images
    ]
    if not encoded:
        return None, []
    return torch.cat([pack(latent) for latent in encoded], dim=1), [tuple(e.shape[-2:]) for e in encoded]
