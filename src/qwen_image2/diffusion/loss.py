"""The training loss of a batch of T2I and TI2I samples, from the model's components.

The DiT reads one image layout per forward pass (target size and condition-image sizes), so a batch is
encoded into layout groups, each group is one forward, and the loss is the token-weighted mean.
"""

import random
from collections import defaultdict
from dataclasses import dataclass, field, replace

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
from qwen_image2.models.components import Components
from qwen_image2.models.conditioning import Conditions, encode_conditions, pad_conditions
from qwen_image2.models.latents import encode_images


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

    def to(self, device: torch.device | str) -> "LatentBatch":
        """The batch on `device` (a cache is read on the CPU; the DiT may train on a GPU)."""
        condition_latents = None if self.condition_latents is None else self.condition_latents.to(device)
        return replace(
            self,
            target=self.target.to(device),
            conditions=self.conditions.to(device),
            condition_latents=condition_latents,
        )


@dataclass
class SigmaConfig:
    """Training σ distribution: logit-normal(mean, std), optionally shifted by the resolution's μ."""

    mean: float = 0.0
    std: float = 1.0
    resolution_shift: bool = False


@dataclass
class SampleEncoding:
    """One sample through the frozen encoders (what a cache stores). Shapes: `target` (N, C) packed latents,
    `embeds` (L, D) condition states, `slots` (L,) bool image-slot mask, `condition_latents` (Nc, C) or None;
    grids are (h, w) in latent cells."""

    target: torch.Tensor
    target_grid: tuple[int, int]
    embeds: torch.Tensor
    slots: torch.Tensor
    condition_latents: torch.Tensor | None = None
    condition_grids: list[tuple[int, int]] = field(default_factory=list)

    @property
    def layout(self) -> tuple:
        return (self.target_grid, tuple(self.condition_grids))


@torch.no_grad()
def encode_sample(components: Components, sample: TrainingSample) -> SampleEncoding:
    """Encode one raw sample with the frozen Qwen3-VL and VAE (posterior mode, normalised)."""
    conditions = encode_conditions(
        components.text_encoder, components.processor, [sample.prompt], sample.condition_images
    )
    target, (target_grid,) = encode_images(components.vae, [sample.image])
    condition_latents, condition_grids = encode_images(components.vae, sample.condition_images)
    return SampleEncoding(
        target=target[0],
        target_grid=target_grid,
        embeds=conditions.embeds[0],
        slots=conditions.image_pad_mask[0],
        condition_latents=None if condition_latents is None else condition_latents[0],
        condition_grids=condition_grids,
    )


def stack_encodings(encodings: list[SampleEncoding]) -> LatentBatch:
    """Samples of one layout -> a `LatentBatch`, text right-padded to the longest prompt."""
    if len({e.layout for e in encodings}) != 1:
        raise ValueError("stack_encodings needs samples of one layout (target and condition sizes)")
    first = encodings[0]
    condition_latents = None
    if first.condition_latents is not None:
        condition_latents = torch.stack([e.condition_latents for e in encodings])
    return LatentBatch(
        target=torch.stack([e.target for e in encodings]),
        target_grid=first.target_grid,
        conditions=pad_conditions([e.embeds for e in encodings], [e.slots for e in encodings]),
        condition_latents=condition_latents,
        condition_grids=first.condition_grids,
    )


def encode_batch(
    components: Components, samples: list[TrainingSample], caption_dropout: float = 0.0, seed: int = 0
) -> list[LatentBatch]:
    """Encode raw samples into layout groups; captions dropped with probability `caption_dropout` (text only:
    an edit keeps its reference images) for unconditional training."""
    rng = random.Random(seed)
    groups: dict[tuple, list[SampleEncoding]] = defaultdict(list)
    for sample in samples:
        if rng.random() < caption_dropout:
            sample = TrainingSample("", sample.image, sample.condition_images)
        encoding = encode_sample(components, sample)
        groups[encoding.layout].append(encoding)
    return [stack_encodings(group) for group in groups.values()]


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
