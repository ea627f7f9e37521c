"""Independent image requests denoised as one batch, each giving the bits it gives alone.

`RequestSampler.prepare` encodes one request by itself (its prompt, negative prompt and condition images;
its own seeded noise); requests whose `Prepared.key` match (size, steps, guidance on/off, condition sizes,
encoded prompt length) are denoised together by `sample`, each with its own guidance scale. With
`models.batch_invariance` installed the batch changes no request's bits: `qwen-image2 generate`, the
server alone and the server batched agree byte for byte. `text_bucket` > 1 pads every prompt to a multiple
of that many tokens, so that more requests share a key (see `pad_to_bucket` for what that costs).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from qwen_image2.diffusion.sampling import denoise, euler_step, set_schedule
from qwen_image2.models.batch_invariance import make_batch_invariant, pad_to_bucket
from qwen_image2.models.conditioning import Conditions, prepare_condition_image
from qwen_image2.models.encoding import img_shapes
from qwen_image2.models.latents import decode_latents, encode_images, pack, unpack
from qwen_image2.pipelines.qwen_image2 import DEFAULT_RESOLUTION, VAE_SCALE, QwenImage2Pipeline


@dataclass
class ImageRequest:
    """One generation (no `images`) or edit; `num_images` share the prompt and draw from one `seed`, as
    `qwen-image2 generate --num-images` does. CFG runs when `guidance_scale` > 1 and a negative is given."""

    prompt: str
    images: list[Image.Image] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    steps: int = 40
    num_images: int = 1
    seed: int = 0
    guidance_scale: float = 1.0
    negative_prompt: str | None = None
    resolution: int | None = None

    @property
    def uses_cfg(self) -> bool:
        return self.guidance_scale > 1 and self.negative_prompt is not None


@dataclass
class Prepared:
    """A request encoded on its own. Shapes: conditions (n, L, D), noise (n, N, C), condition latents
    (n, Nc, C) or None; `key`: what requests must share to be denoised together."""

    request: ImageRequest
    conditions: Conditions
    negative: Conditions | None
    noise: torch.Tensor
    condition_latents: torch.Tensor | None
    condition_grids: list[tuple[int, int]]
    grid: tuple[int, int]
    key: tuple

    @property
    def size(self) -> int:
        return self.noise.shape[0]


# Called before each step's solver update with the step index and a function that returns x̂₀ for the
# whole batch, (B, N, C); it may raise to stop the batch.
StepHook = Callable[[int, Callable[[], torch.Tensor]], None]


def _concat(parts: list[Conditions]) -> Conditions:
    """Conditions of one length stacked (masks: all None when nothing was padded, as alone)."""
    masks = [c.mask for c in parts]
    if any(m is None for m in masks) and not all(m is None for m in masks):
        raise ValueError("cannot stack padded and unpadded conditions")
    return Conditions(
        torch.cat([c.embeds for c in parts]),
        None if masks[0] is None else torch.cat(masks),
        torch.cat([c.image_pad_mask for c in parts]),
    )


class RequestSampler:
    """Batches of requests through one pipeline's weights (the transformer is made batch invariant)."""

    def __init__(self, pipe: QwenImage2Pipeline, text_bucket: int = 1):
        if text_bucket < 1:
            raise ValueError(f"text_bucket must be at least 1, got {text_bucket}")
        self.pipe, self.text_bucket = pipe, text_bucket
        make_batch_invariant(pipe.transformer)

    def _encode(self, prompt: str, images: list[Image.Image]) -> Conditions:
        conditions = self.pipe.encode_prompt([prompt], images or None)
        return pad_to_bucket(conditions, self.text_bucket) if self.text_bucket > 1 else conditions

    @property
    def resolution(self) -> int:
        return self.pipe.training_resolution or DEFAULT_RESOLUTION

    @torch.no_grad()
    def prepare(self, request: ImageRequest) -> Prepared:
        pipe = self.pipe
        resolution = request.resolution or self.resolution
        _, images, width, height = pipe.check_inputs(
            request.prompt, request.images or None, request.width, request.height, request.steps, resolution
        )
        images = [prepare_condition_image(image, resolution) for image in images]
        n = request.num_images
        conditions = self._encode(request.prompt, images).repeat(n)
        negative = self._encode(request.negative_prompt, images).repeat(n) if request.uses_cfg else None
        grid = (height // VAE_SCALE, width // VAE_SCALE)
        device, dtype = pipe._execution_device, conditions.embeds.dtype
        generator = torch.Generator("cpu").manual_seed(request.seed)
        noise = pack(
            randn_tensor((n, pipe.vae.config.z_dim, *grid), generator=generator, device=device, dtype=dtype)
        )
        condition_latents, condition_grids = encode_images(pipe.vae, images)
        if condition_latents is not None:
            condition_latents = condition_latents.to(dtype).expand(n, -1, -1)
        key = (
            grid,
            request.steps,
            conditions.embeds.shape[1],
            None if negative is None else negative.embeds.shape[1],
            tuple(condition_grids),
        )
        return Prepared(request, conditions, negative, noise, condition_latents, condition_grids, grid, key)

    @torch.no_grad()
    def sample(
        self, batch: list[Prepared], on_step: StepHook | None = None, use_kv_cache: bool = True
    ) -> torch.Tensor:
        """Denoise requests of one key together; returns the clean packed latents (Σn, N, C) in order."""
        if len({p.key for p in batch}) != 1:
            raise ValueError("requests of different keys cannot share a batch")
        first, pipe = batch[0], self.pipe
        latents = torch.cat([p.noise for p in batch])
        conditions = _concat([p.conditions for p in batch])
        negative = _concat([p.negative for p in batch]) if first.negative is not None else None
        condition_latents = (
            torch.cat([p.condition_latents for p in batch]) if first.condition_latents is not None else None
        )
        # Each row its own scale, as a (B, 1, 1) tensor: the same float32 arithmetic as a Python float.
        scales = torch.tensor(
            [p.request.guidance_scale for p in batch for _ in range(p.size)], dtype=latents.dtype
        ).to(latents.device)[:, None, None]
        # A scheduler of its own per batch: its step state must not be shared by two threads sampling at once.
        scheduler = set_schedule(
            type(pipe.scheduler).from_config(pipe.scheduler.config),
            first.request.steps,
            latents.shape[1],
            pipe.config.sample_sigmas,
            latents.device,
        )

        def step(scheduler, index, velocity, latents):
            if on_step is not None:
                sigma = scheduler.sigmas[index]
                on_step(index, lambda: latents - sigma * velocity)
            return euler_step(scheduler, index, velocity, latents)

        return denoise(
            pipe.transformer,
            scheduler,
            latents,
            conditions=conditions,
            img_shapes=img_shapes(first.grid, first.condition_grids, latents.shape[0]),
            condition_latents=condition_latents,
            negative=negative,
            guidance_scale=scales if negative is not None else 1.0,
            use_kv_cache=use_kv_cache,
            step=step,
        ).latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, grid: tuple[int, int]) -> list[Image.Image]:
        """Packed latents (n, N, C) -> RGBA images, one VAE call per image (batch invariant too)."""
        vae = self.pipe.vae
        images = []
        for row in latents:
            pixels = decode_latents(vae, unpack(row[None], *grid).to(vae.dtype))
            images.extend(self.pipe.image_processor.postprocess(pixels, output_type="pil"))
        return images

    def run(self, request: ImageRequest, use_kv_cache: bool = True) -> list[Image.Image]:
        """One request alone (what `qwen-image2 generate` and `edit` do)."""
        prepared = self.prepare(request)
        return self.decode(self.sample([prepared], use_kv_cache=use_kv_cache), prepared.grid)
