"""`QwenImage2Pipeline`: text-to-image and instruction editing (0..10 condition images) in one entry point.

Same weights, inputs and seed give the same image as stock `diffusers.QwenImage21Pipeline`; the condition
encoding, latent packing and schedule come from this package's `models/` and `diffusion/` so that the
trainer uses the very same code.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from qwen_image2.diffusion.sampling import denoise, set_schedule
from qwen_image2.errors import UserError
from qwen_image2.models.components import Components
from qwen_image2.models.conditioning import (
    MAX_CONDITION_IMAGES,
    Conditions,
    condition_image_size,
    encode_conditions,
    prepare_condition_image,
)
from qwen_image2.models.encoding import img_shapes
from qwen_image2.models.latents import decode_latents, encode_images, pack, unpack
from qwen_image2.models.loading import load_components, save_components

VAE_SCALE = 16  # one latent cell = 16x16 pixels
DEFAULT_RESOLUTION = 1024  # what stock diffusers conditions and generates at
SIZE_MULTIPLE = 32  # one encoder image slot = 2x2 latent cells


@dataclass
class PipelineOutput:
    """`images`: PIL images (RGBA), an array (B, H, W, 4) in [0, 1], or packed latents (B, N, 64)."""

    images: list[Image.Image] | np.ndarray | torch.Tensor


def check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0 or width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise UserError(
            f"size {width}x{height}: width and height must be positive multiples of {SIZE_MULTIPLE}"
        )


class QwenImage2Pipeline(DiffusionPipeline):
    """Generation and editing with a Qwen-Image-2.x model (components: see `models.components.Components`)."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"

    def __init__(
        self,
        scheduler,
        vae,
        text_encoder,
        processor,
        transformer,
        sample_sigmas=None,
        training_resolution=None,
    ):
        super().__init__()
        self.register_modules(
            scheduler=scheduler,
            vae=vae,
            text_encoder=text_encoder,
            processor=processor,
            transformer=transformer,
        )
        self.register_to_config(sample_sigmas=sample_sigmas)
        self.training_resolution = training_resolution  # not in the config: stock pipelines take no such key
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=VAE_SCALE, vae_latent_channels=vae.config.z_dim
        )

    @classmethod
    def from_components(cls, components: Components) -> "QwenImage2Pipeline":
        return cls(
            scheduler=components.scheduler,
            vae=components.vae,
            text_encoder=components.text_encoder,
            processor=components.processor,
            transformer=components.transformer,
            sample_sigmas=components.sample_sigmas,
            training_resolution=components.training_resolution,
        )

    @classmethod
    def from_model(
        cls, model: str | Path, dtype=torch.float32, device="cpu", seed: int = 0
    ) -> "QwenImage2Pipeline":
        """A diffusers folder (e.g. a copy of Qwen/Qwen-Image-2.1) or a preset name with random weights."""
        return cls.from_components(load_components(model, dtype=dtype, device=device, seed=seed))

    def as_components(self) -> Components:
        """The pipeline's parts as `Components` (for saving, training or evaluation)."""
        return Components(
            self.transformer,
            self.vae,
            self.text_encoder,
            self.processor,
            self.scheduler,
            self.config.sample_sigmas,
            self.training_resolution,
        )

    def save_pretrained(self, folder: str | Path, **options) -> Path:
        """A diffusers folder (safetensors) that stock `QwenImage21Pipeline.from_pretrained` loads. Takes none
        of diffusers' options (variant, sharding, push_to_hub, ...): a TypeError names any given."""
        ignored = sorted(k for k, v in options.items() if not (k == "safe_serialization" and v))
        if ignored:
            raise TypeError(f"QwenImage2Pipeline.save_pretrained does not support {', '.join(ignored)}")
        return save_components(self.as_components(), folder)

    def encode_prompt(self, prompts: list[str], images: list[Image.Image] | None = None) -> Conditions:
        """Prompts with already prepared condition images -> `Conditions` (see models/conditioning.py)."""
        return encode_conditions(self.text_encoder, self.processor, prompts, images)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        image: Image.Image | list[Image.Image] | None = None,
        width: int | None = None,
        height: int | None = None,
        num_inference_steps: int = 40,
        guidance_scale: float = 1.0,
        negative_prompt: str | list[str] | None = None,
        cfg_rescale: bool = False,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        sigmas: list[float] | None = None,
        resolution: int | None = None,
        use_kv_cache: bool = True,
        output_type: str = "pil",
        callback: Callable[[int, float, torch.Tensor], None] | None = None,
    ) -> PipelineOutput:
        """Generate (no `image`) or edit (`image`: 1..10 condition images shared by every prompt).

        Args:
            prompt: one prompt or a batch of B prompts (edits: the instruction).
            image: condition images; each is resized by area to `resolution`² at multiples of 32.
            resolution: default the side the model was trained at (`training_resolution`), else 1024.
            width, height: output size in pixels, multiples of 32; default `resolution`², or for an edit the
                last condition image's aspect at that area.
            num_inference_steps: Euler steps on the published dynamic-shift schedule (ignored with `sigmas`
                or a distilled model's `sample_sigmas`).
            guidance_scale, negative_prompt: true CFG, on only when the scale > 1 and a negative prompt is
                given (2.1 samples without guidance); `cfg_rescale` keeps v1's per-token norm rescale.
            generator: seeds the initial noise (B·num_images_per_prompt, 64, height/16, width/16).
            use_kv_cache: compute text and condition tokens once (they are step-independent at t = 0).
            output_type: "pil", "np", "pt" or "latent" (packed latents (B, N, 64)).
            callback: called after each step as `callback(step_index, sigma, latents)`.
        """
        # 1. Check inputs
        resolution = resolution or self.training_resolution or DEFAULT_RESOLUTION
        prompts, images, width, height = self.check_inputs(
            prompt, image, width, height, num_inference_steps, resolution
        )
        batch_size = len(prompts) * num_images_per_prompt
        device = self._execution_device

        # 2. Encode conditions: one resize feeds both the encoder and the VAE
        images = [prepare_condition_image(img, resolution) for img in images]
        conditions = self.encode_prompt(prompts, images or None).repeat(num_images_per_prompt)
        do_cfg = guidance_scale > 1 and negative_prompt is not None
        if do_cfg:
            negatives = (
                [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
            )
            negative = self.encode_prompt(list(negatives), images or None).repeat(num_images_per_prompt)

        # 3. Prepare latents: noise for the target, VAE posterior modes for the condition images
        dtype = conditions.embeds.dtype
        grid = (height // VAE_SCALE, width // VAE_SCALE)
        if latents is None:
            noise = randn_tensor(
                (batch_size, self.vae.config.z_dim, *grid), generator=generator, device=device, dtype=dtype
            )
            latents = pack(noise)
        condition_latents, condition_grids = encode_images(self.vae, images)
        if condition_latents is not None:
            condition_latents = condition_latents.to(dtype).expand(batch_size, -1, -1)

        # 4. Timesteps: the published exponential dynamic shift, μ from the number of target tokens
        sigmas = sigmas if sigmas is not None else self.config.sample_sigmas
        scheduler = set_schedule(self.scheduler, num_inference_steps, latents.shape[1], sigmas, device)

        # 5. Denoise
        latents = denoise(
            self.transformer,
            scheduler,
            latents,
            conditions=conditions,
            img_shapes=img_shapes(grid, condition_grids, batch_size),
            condition_latents=condition_latents,
            negative=negative if do_cfg else None,
            guidance_scale=guidance_scale,
            cfg_rescale=cfg_rescale,
            use_kv_cache=use_kv_cache,
            callback=callback,
            progress=self.progress_bar,
        ).latents

        # 6. Decode
        self.maybe_free_model_hooks()
        if output_type == "latent":
            return PipelineOutput(latents)
        pixels = decode_latents(self.vae, unpack(latents, *grid).to(self.vae.dtype))
        return PipelineOutput(self.image_processor.postprocess(pixels, output_type=output_type))

    @staticmethod
    def check_inputs(prompt, image, width, height, num_inference_steps, resolution):
        """Prompts as a list, images as a list, and the output size (default: see `__call__`)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        images = [] if image is None else [image] if isinstance(image, Image.Image) else list(image)
        if not prompts:
            raise UserError("no prompt given")
        if len(images) > MAX_CONDITION_IMAGES:
            raise UserError(
                f"{len(images)} condition images given; at most {MAX_CONDITION_IMAGES} are supported"
            )
        if num_inference_steps < 1:
            raise UserError(f"steps must be at least 1, got {num_inference_steps}")
        if images and (width is None or height is None):
            width, height = condition_image_size(*images[-1].size, resolution)
        width, height = width or resolution, height or resolution
        check_size(width, height)
        return prompts, images, width, height
