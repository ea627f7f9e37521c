"""What a sample is on its way into the DiT: the raw record, its encoding by the frozen encoders (what a
cache stores), and a layout group of encodings stacked for one forward pass.

The DiT reads one image layout per forward (target size and condition-image sizes), so samples of one
layout are stacked together; `img_shapes` says that layout to the transformer.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from qwen_image2.models.components import Components
from qwen_image2.models.conditioning import Conditions, encode_conditions, encode_empty_prompt, pad_conditions
from qwen_image2.models.latents import encode_image_batches, encode_images


def img_shapes(target_grid: tuple[int, int], condition_grids, batch_size: int) -> list[list[tuple]]:
    """The transformer's `img_shapes`: per sample, (frames, h, w) of each condition image, target last."""
    return [[(1, h, w) for h, w in [*condition_grids, target_grid]]] * batch_size


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
class SampleEncoding:
    """One sample through the frozen encoders (what a cache stores). Shapes: `target` (N, C) packed latents,
    `embeds` (L, D) condition states, `image_pad_mask` (L,) bool image-slot mask, `condition_latents` (Nc, C) or None;
    grids are (h, w) in latent cells."""

    target: torch.Tensor
    target_grid: tuple[int, int]
    embeds: torch.Tensor
    image_pad_mask: torch.Tensor
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
        image_pad_mask=conditions.image_pad_mask[0],
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
        conditions=pad_conditions([e.embeds for e in encodings], [e.image_pad_mask for e in encodings]),
        condition_latents=condition_latents,
        condition_grids=first.condition_grids,
    )


def encode_batch(components: Components, samples: list[TrainingSample]) -> list[LatentBatch]:
    """Encode raw samples into layout groups, one `LatentBatch` per layout."""
    groups: dict[tuple, list[SampleEncoding]] = defaultdict(list)
    for sample in samples:
        encoding = encode_sample(components, sample)
        groups[encoding.layout].append(encoding)
    return [stack_encodings(group) for group in groups.values()]


def encode_for_cache_batch(
    components: Components, loaded: list[TrainingSample], batch_size: int
) -> list[tuple[SampleEncoding, SampleEncoding | None]]:
    """The encodings of samples, as `encode_sample` gives them one by one, with the VAE run on batches of
    same-size images; each edit also gets its empty-instruction states (caption dropout keeps an edit's
    images, so those depend on the sample; the latents do not change, so only the text side is encoded)."""
    vae, text_encoder, processor = components.vae, components.text_encoder, components.processor
    targets = encode_image_batches(vae, [sample.image for sample in loaded], batch_size)
    references = [image for sample in loaded for image in sample.condition_images]
    reference_latents = iter(encode_image_batches(vae, references, batch_size))
    results = []
    for sample, (target, target_grid) in zip(loaded, targets, strict=True):
        conditions = encode_conditions(text_encoder, processor, [sample.prompt], sample.condition_images)
        mine = [next(reference_latents) for _ in sample.condition_images]
        encoding = SampleEncoding(
            target=target,
            target_grid=target_grid,
            embeds=conditions.embeds[0],
            image_pad_mask=conditions.image_pad_mask[0],
            condition_latents=torch.cat([tokens for tokens, _ in mine]) if mine else None,
            condition_grids=[grid for _, grid in mine],
        )
        unconditional = None
        if sample.condition_images:
            empty = encode_empty_prompt(text_encoder, processor, sample.condition_images)
            unconditional = replace(encoding, embeds=empty.embeds[0], image_pad_mask=empty.image_pad_mask[0])
        results.append((encoding, unconditional))
    return results
