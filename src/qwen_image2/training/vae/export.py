"""Export a trained VAE (its latent statistics measured on the training data).

The export is a diffusers `vae/` folder that `AutoencoderKLQwenImage21.from_pretrained` reads, and, given
a base model, a full model folder with that VAE swapped in, which `load_components` reads.
"""

from pathlib import Path

import torch
from diffusers import AutoencoderKLQwenImage21


@torch.no_grad()
def latent_statistics(vae: AutoencoderKLQwenImage21, batches) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of posterior-mode latents over `batches` of pixels (B, C, H, W) in [-1, 1].

    These become `latents_mean` / `latents_std`, with which the DiT reads normalised latents (latents.py).
    """
    total, squares, count = 0.0, 0.0, 0
    for pixels in batches:
        latents = vae.encode(pixels.unsqueeze(2)).latent_dist.mode()[:, :, 0].double()
        total = total + latents.sum(dim=(0, 2, 3))
        squares = squares + latents.pow(2).sum(dim=(0, 2, 3))
        count += latents.shape[0] * latents.shape[2] * latents.shape[3]
    if not count:
        raise ValueError("latent statistics need at least one batch")
    mean = total / count
    std = (squares / count - mean.pow(2)).clamp(min=1e-12).sqrt()
    return mean.tolist(), std.tolist()


def export_vae(vae: AutoencoderKLQwenImage21, out: Path, base_model: str | None = None) -> Path:
    """Write `out/vae/`; with `base_model`, also the base model's other components beside it (a full model)."""
    out = Path(out)
    if base_model is not None:
        import dataclasses

        from qwen_image2.models.loading import load_components, save_components

        # replace() re-runs the components' compatibility check against the new VAE.
        save_components(dataclasses.replace(load_components(base_model), vae=vae), out)
    else:
        vae.save_pretrained(out / "vae")
    return out
