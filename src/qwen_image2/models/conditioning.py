"""Condition encoding exactly as the Qwen-Image-2.1 release does it (reference/architecture.md §2.4).

The prompt and any condition images go through Qwen3-VL as one chat turn; the DiT reads the last decoder
layer's output *before* the final RMSNorm, with the system block dropped and `<|image_pad|>` slots marked
so that the transformer can overwrite them with VAE latents of the same images.
"""

import math
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import Qwen3VLForConditionalGeneration, Qwen3VLProcessor

from qwen_image2.errors import UserError

SYSTEM_PROMPT = "Comprehend and analyze the provided prompt."
IMAGE_SLOT = "<|vision_start|><|image_pad|><|vision_end|>"
# The report caps prompts at 1024 tokens; longer ones are refused rather than silently cut.
MAX_PROMPT_TOKENS = 1024
MAX_CONDITION_IMAGES = 10
# The widest condition image: beyond 8:1 (either way) the short side is a sliver of one or two latent
# cells at any resolution, and the long side's tokens explode.
MAX_CONDITION_ASPECT = 8.0


@dataclass
class Conditions:
    """Encoded prompts. Shapes: `embeds` (B, L, D); `mask` (B, L) or None when nothing is padded;
    `image_pad_mask` (B, L) bool, True at condition-image slots (each slot = 2x2 latent tokens)."""

    embeds: torch.Tensor
    mask: torch.Tensor | None
    image_pad_mask: torch.Tensor

    def pad_to(self, length: int) -> "Conditions":
        """Right-pad to `length` tokens with masked zeros (a distributed batch pads to its global longest)."""
        extra = length - self.embeds.shape[1]
        if extra <= 0:
            return self
        batch = self.embeds.shape[0]
        mask = (
            self.mask
            if self.mask is not None
            else self.embeds.new_ones(self.embeds.shape[:2], dtype=torch.long)
        )
        return Conditions(
            torch.cat([self.embeds, self.embeds.new_zeros(batch, extra, self.embeds.shape[2])], dim=1),
            torch.cat([mask, mask.new_zeros(batch, extra)], dim=1),
            torch.cat([self.image_pad_mask, self.image_pad_mask.new_zeros(batch, extra)], dim=1),
        )

    def to(self, device: torch.device | str) -> "Conditions":
        mask = None if self.mask is None else self.mask.to(device)
        return Conditions(self.embeds.to(device), mask, self.image_pad_mask.to(device))

    def repeat(self, n: int) -> "Conditions":
        """Each row `n` times in a row, as `num_images_per_prompt` needs."""
        if n == 1:
            return self
        mask = None if self.mask is None else self.mask.repeat_interleave(n, dim=0)
        return Conditions(
            self.embeds.repeat_interleave(n, dim=0), mask, self.image_pad_mask.repeat_interleave(n, dim=0)
        )


def chat_prompt(prompt: str, num_images: int = 0) -> str:
    """The raw template string of the 2.1 release (not `apply_chat_template`: the two tokenize differently)."""
    prompt = prompt or " "  # Qwen has no BOS token; an empty prompt would leave the encoder nothing to read
    slots = " ".join(f"<image{k}>{IMAGE_SLOT}" for k in range(1, num_images + 1))
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{slots}{prompt}<|im_end|>\n"
        f"<|im_start|>assistant\n"
    )


def condition_image_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) with area about `resolution`², the input's aspect, both multiples of 32.

    A UserError when the image is wider than MAX_CONDITION_ASPECT either way, or a side would round to
    nothing at this resolution."""
    if width <= 0 or height <= 0:
        raise UserError(f"condition image of {width}x{height} pixels is empty")
    ratio = width / height
    if max(ratio, 1 / ratio) > MAX_CONDITION_ASPECT:
        raise UserError(
            f"condition image of {width}x{height} pixels: aspect ratio beyond "
            f"{MAX_CONDITION_ASPECT:g}:1; crop it closer to square"
        )
    new_width = math.sqrt(resolution * resolution * ratio)
    new_height = new_width / ratio
    sides = round(new_width / 32) * 32, round(new_height / 32) * 32
    if min(sides) < 32:
        raise UserError(
            f"condition image of {width}x{height} pixels at --resolution {resolution} would be "
            f"{sides[0]}x{sides[1]}; raise --resolution or use a less elongated image"
        )
    return sides


def prepare_condition_image(image: Image.Image, resolution: int) -> Image.Image:
    """RGBA, resized once by area; the same pixels feed the encoder and the VAE."""
    image = image if image.mode == "RGBA" else image.convert("RGBA")
    width, height = condition_image_size(*image.size, resolution)
    return image.resize((width, height), resample=Image.Resampling.LANCZOS)


def encoder_view(image: Image.Image) -> Image.Image:
    """The copy Qwen3-VL sees: alpha composited over white (the checkpoint was trained so)."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    white = Image.new("RGB", image.size, (255, 255, 255))
    white.paste(image, mask=image.getchannel("A"))
    return white


def system_token_count(processor: Qwen3VLProcessor) -> int:
    """How many leading tokens the system block takes, read from the processor's own chat template."""
    message = [{"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}]
    return len(processor.apply_chat_template(message, tokenize=True, return_dict=False)[0])


def check_prompt_lengths(processor: Qwen3VLProcessor, prompts: list[str]) -> None:
    for index, prompt in enumerate(prompts):
        count = len(processor.tokenizer(prompt or " ").input_ids)
        if count > MAX_PROMPT_TOKENS:
            raise UserError(
                f"prompt {index} has {count} tokens; the limit is {MAX_PROMPT_TOKENS}: shorten it"
            )


@torch.no_grad()
def encode_conditions(
    text_encoder: Qwen3VLForConditionalGeneration,
    processor: Qwen3VLProcessor,
    prompts: list[str],
    images: list[Image.Image] | None = None,
) -> Conditions:
    """Encode each prompt with the same condition images (already prepared; RGBA or RGB).

    Returns states padded on the right to the longest prompt, like the stock pipeline's `encode_prompt`.
    """
    images = images or []
    if len(images) > MAX_CONDITION_IMAGES:
        raise UserError(f"{len(images)} condition images given; at most {MAX_CONDITION_IMAGES} are supported")
    check_prompt_lengths(processor, prompts)
    kwargs = {"text": [chat_prompt(p, len(images)) for p in prompts], "padding": True, "padding_side": "left"}
    if images:
        kwargs["images"] = [encoder_view(image) for _ in prompts for image in images]
    inputs = processor(**kwargs, return_tensors="pt").to(text_encoder.device)

    forward = {
        "input_ids": inputs.input_ids,
        "attention_mask": inputs.attention_mask,
        "output_hidden_states": True,
    }
    for key in ("pixel_values", "image_grid_thw", "mm_token_type_ids"):
        if key in inputs:
            forward[key] = inputs[key]
    # transformers >= 5 returns the *normed* state as hidden_states[-1]; the DiT was trained on the state before
    # the final RMSNorm, so the norm is made an identity for this call.
    language_model = getattr(text_encoder.model, "language_model", text_encoder.model)
    handle = language_model.norm.register_forward_hook(lambda module, args, output: args[0])
    try:
        hidden = text_encoder(**forward).hidden_states[-1]
    finally:
        handle.remove()

    drop = system_token_count(processor)
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    valid = inputs.attention_mask.bool()
    states = [h[m][drop:] for h, m in zip(hidden, valid, strict=True)]
    slots = [(ids[m] == image_token_id)[drop:] for ids, m in zip(inputs.input_ids, valid, strict=True)]
    return pad_conditions(states, slots)


def encode_empty_prompt(
    text_encoder: Qwen3VLForConditionalGeneration,
    processor: Qwen3VLProcessor,
    images: list[Image.Image] | None = None,
) -> Conditions:
    """The unconditional branch: the empty prompt (with an edit's condition images, which caption dropout
    keeps), as caption-dropout training and true CFG against "" both see it."""
    return encode_conditions(text_encoder, processor, [""], images)


def pad_conditions(states: list[torch.Tensor], slots: list[torch.Tensor]) -> Conditions:
    """Right-pad per-sample states (L_i, D) and slot masks (L_i,) into a `Conditions` batch."""
    length = max(s.shape[0] for s in states)
    embeds = torch.stack([torch.cat([s, s.new_zeros(length - s.shape[0], s.shape[1])]) for s in states])
    mask = torch.stack(
        [
            torch.cat(
                [s.new_ones(s.shape[0], dtype=torch.long), s.new_zeros(length - s.shape[0], dtype=torch.long)]
            )
            for s in states
        ]
    )
    image_pad_mask = torch.stack([torch.cat([m, m.new_zeros(length - m.shape[0])]) for m in slots])
    return Conditions(embeds, None if bool(mask.all()) else mask, image_pad_mask)
