"""The training loss of a batch of T2I and TI2I samples, from the model's components.

The DiT reads one image layout per forward pass (target size and condition-image sizes), so a batch is
encoded into layout groups, each group is one forward, and the loss is the token-weighted mean.
"""

import random
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from qwen_image2.diffusion.flow import (
    dynamic_shift_mu,
    flow_target,
    noisy_latents,
    sample_training_sigmas,
    shift_sigmas,
)
from qwen_image2.diffusion.sampling import target_velocity
from qwen_image2.errors import UserError
from qwen_image2.models.components import Components
from qwen_image2.models.conditioning import Conditions, encode_conditions, pad_conditions
from qwen_image2.models.latents import encode_latents, pack


@dataclass
class TrainingSample:
    """One example: T2I when `condition_images` is empty, TI2I (editing, 1..10 references) otherwise.
    Images must already have sides that are multiples of 32 (bucketing does that)."""

    prompt: str
    image: Image.Image
    condition_images: list[Image.Image] = field(default_factory=list)


@dataclass
class LatentBatch:
    """A layout group ready for the DiT. Shapes: `target` (B, N, C) packed normalised latents with
    N = h·w; `condition_latents` (B, Nc, C) or None; grids are (h, w) in latent cells."""

    target: torch.Tensor
    target_grid: tuple[int, int]
    conditions: Conditions
    condition_latents: torch.Tensor | None = None
    condition_grids: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class SigmaConfig:
    """Training σ distribution: logit-normal(mean, std), optionally shifted by the resolution's μ."""

    mean: float = 0.0
    std: float = 1.0
    resolution_shift: bool = False


def to_pixels(images: list[Image.Image]) -> torch.Tensor:
    """RGBA images of one size -> (B, 4, H, W) in [-1, 1]."""
    for image in images:
        if image.width % 32 or image.height % 32:
            raise UserError(
                f"training image of {image.width}x{image.height}: both sides must be multiples of 32"
            )
    arrays = np.stack([np.asarray(image.convert("RGBA"), dtype=np.float32) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) / 127.5 - 1


def layout_key(sample: TrainingSample) -> tuple:
    return (sample.image.size, tuple(image.size for image in sample.condition_images))


@torch.no_grad()
def encode_batch(
    components: Components, samples: list[TrainingSample], caption_dropout: float = 0.0, seed: int = 0
) -> list[LatentBatch]:
    """Encode raw samples (frozen encoder and VAE) into layout groups; captions dropped with probability
    `caption_dropout` (text only: an edit keeps its reference images) for unconditional training."""
    rng = random.Random(seed)
    groups: dict[tuple, list[TrainingSample]] = defaultdict(list)
    for sample in samples:
        groups[layout_key(sample)].append(sample)
    device, dtype = components.vae.device, components.vae.dtype
    batches = []
    for group in groups.values():
        prompts = ["" if rng.random() < caption_dropout else s.prompt for s in group]
        references = group[0].condition_images
        # Each sample has its own references, so encode one by one and stack (the layout is shared).
        parts = [
            encode_conditions(
                components.text_encoder, components.processor, [prompt], sample.condition_images
            )
            for prompt, sample in zip(prompts, group, strict=True)
        ]
        conditions = stack_conditions(parts)
        target = encode_latents(components.vae, to_pixels([s.image for s in group]).to(device, dtype))
        condition_latents, grids = None, []
        if references:
            per_image = [
                encode_latents(
                    components.vae, to_pixels([s.condition_images[k] for s in group]).to(device, dtype)
                )
                for k in range(len(references))
            ]
            grids = [tuple(latent.shape[-2:]) for latent in per_image]
            condition_latents = torch.cat([pack(latent) for latent in per_image], dim=1)
        batches.append(
            LatentBatch(pack(target), tuple(target.shape[-2:]), conditions, condition_latents, grids)
        )
    return batches


def stack_conditions(parts: list[Conditions]) -> Conditions:
    """Stack single-sample conditions of one layout, right-padding the text to the longest."""
    states = [p.embeds[0][: int(p.mask[0].sum()) if p.mask is not None else None] for p in parts]
    slots = [p.image_pad_mask[0][: s.shape[0]] for p, s in zip(parts, states, strict=True)]
    return pad_conditions(states, slots)


def draw_sigmas_and_noise(
    batch_size: int,
    num_tokens: int,
    channels: int,
    sigma: SigmaConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """σ (B,) from the logit-normal (shifted by the target's μ if asked) and ε (B, N, C), on the CPU."""
    sigmas = sample_training_sigmas(batch_size, sigma.mean, sigma.std, generator)
    if sigma.resolution_shift:
        sigmas = shift_sigmas(sigmas, dynamic_shift_mu(num_tokens))
    return sigmas, torch.randn((batch_size, num_tokens, channels), generator=generator)


def flow_matching_loss(
    transformer: torch.nn.Module,
    batch: LatentBatch,
    sigma: SigmaConfig | None = None,
    generator: torch.Generator | None = None,
    sigmas: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between the DiT's velocity and ε − x0 at logit-normal σ, over the target tokens only.

    `sigmas` (B,) and `noise` (B, N, C) may be given (a distributed trainer draws them for the global batch);
    otherwise they are drawn from `generator`.
    """
    target = batch.target
    batch_size, num_tokens, channels = target.shape
    if sigmas is None or noise is None:
        sigmas, noise = draw_sigmas_and_noise(
            batch_size, num_tokens, channels, sigma or SigmaConfig(), generator
        )
    sigmas, noise = sigmas.to(target.device), noise.to(target.device, target.dtype)
    hidden = noisy_latents(target, noise, sigmas)
    if batch.condition_latents is not None:
        hidden = torch.cat([batch.condition_latents, hidden], dim=1)
    img_shapes = [[(1, h, w) for h, w in [*batch.condition_grids, batch.target_grid]]] * batch_size
    prediction = target_velocity(transformer, hidden, sigmas.to(target.dtype), batch.conditions, img_shapes)
    return F.mse_loss(prediction.float(), flow_target(target, noise).float())


def training_loss(
    transformer: torch.nn.Module,
    batches: list[LatentBatch],
    sigma: SigmaConfig | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Token-weighted mean of `flow_matching_loss` over layout groups (one backward for the whole batch)."""
    weights = [b.target.shape[0] * b.target.shape[1] for b in batches]
    losses = [flow_matching_loss(transformer, b, sigma, generator) for b in batches]
    return sum(w * loss for w, loss in zip(weights, losses, strict=True)) / sum(weights)
