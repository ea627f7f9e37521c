"""The request bodies, field for field as OpenAI's Images API names them, plus the extensions vLLM-Omni and
SGLang add (`seed`, `num_inference_steps`, `guidance_scale`, `negative_prompt`).

The JSON body of `/v1/images/generations` is `GenerationBody`; the multipart form of `/v1/images/edits`
is read into the same fields by `EditFields`. Both resolve to `Options`: one sampling request and how its
images go back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qwen_image2.serving.errors import ApiError
from qwen_image2.serving.settings import Limits

SIZE_MULTIPLE = 32
QUALITY_FRACTIONS = {"low": 0.25, "medium": 0.5, "high": 1.0, "auto": 1.0}


class CommonFields(BaseModel):
    """The fields generations and edits share."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., description="What to draw, or for an edit the instruction.")
    model: str | None = Field(
        None, description="A model the server serves (GET /v1/models); default its first."
    )
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, description="WIDTHxHEIGHT in pixels, multiples of 32, or `auto`.")
    quality: Literal["low", "medium", "high", "auto", "standard", "hd"] | None = None
    response_format: Literal["b64_json", "url"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(None, ge=0, le=100)
    background: Literal["transparent", "opaque", "auto"] | None = None
    user: str | None = Field(None, max_length=256)
    stream: bool | None = None
    partial_images: int | None = Field(None, ge=0, le=3)
    # Extensions (vLLM-Omni / SGLang names)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    num_inference_steps: int | None = Field(None, ge=1, le=1000)
    guidance_scale: float | None = Field(None, ge=0, le=20)
    negative_prompt: str | None = None
    enhance_prompt: bool | None = Field(
        None, description="Rewrite the prompt first (default: when the server has an enhancer)."
    )


class GenerationBody(CommonFields):
    moderation: Literal["low", "auto"] | None = None
    style: Literal["vivid", "natural"] | None = None


class EditFields(CommonFields):
    input_fidelity: Literal["high", "low"] | None = None


@dataclass
class Options:
    """A validated request: what to sample and how to answer."""

    model: str
    prompt: str
    n: int
    size: tuple[int, int] | None  # None: the model's default (auto)
    steps: int
    seed: int | None
    guidance_scale: float
    negative_prompt: str | None
    quality: str
    response_format: str
    output_format: str
    output_compression: int
    background: str
    stream: bool
    partial_images: int
    user: str | None
    enhance_prompt: bool | None = None
    revised_prompt: str | None = None  # the enhancer's rewrite, when one ran and succeeded

    def settings(self) -> dict:
        """What a history or feedback row records of how the image was made."""
        return {
            "size": None if self.size is None else f"{self.size[0]}x{self.size[1]}",
            "steps": self.steps,
            "seed": self.seed,
            "guidance_scale": self.guidance_scale,
            "negative_prompt": self.negative_prompt,
            "quality": self.quality,
            "n": self.n,
        }


def validation_error(err: ValidationError) -> ApiError:
    """Pydantic's first problem as a 400 naming the parameter, in OpenAI's words where it has them."""
    problem = err.errors()[0]
    param = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or None
    if problem.get("type") == "extra_forbidden":
        return ApiError(400, f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param)
    if problem.get("type") == "missing":
        return ApiError(
            400, f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
        )
    return ApiError(
        400, f"Invalid value for '{param}': {problem.get('msg')}.", code="invalid_value", param=param
    )


def parse_size(size: str | None, limits: Limits) -> tuple[int, int] | None:
    if size is None or size == "auto":
        return None
    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError:
        raise ApiError(
            400,
            f"Invalid size {size!r}: write WIDTHxHEIGHT, e.g. 1024x768, or auto.",
            param="size",
            code="invalid_size",
        ) from None
    if width <= 0 or height <= 0 or width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise ApiError(
            400,
            f"Invalid size {size}: width and height must be positive multiples of {SIZE_MULTIPLE}.",
            param="size",
            code="invalid_size",
        )
    check_pixels(width, height, limits)
    return width, height


def check_pixels(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise ApiError(
            400,
            f"Invalid size {width}x{height}: this server makes at most {limits.max_pixels:,} pixels per image.",
            param="size",
            code="invalid_size",
        )


def resolve(fields: CommonFields, models: list[str], default_steps: int, limits: Limits) -> Options:
    """The request's fields checked against the server (models, limits) and defaults filled in."""
    model = fields.model or models[0]
    if model not in models:
        raise ApiError(
            404,
            f"The model '{model}' does not exist; this server serves {', '.join(models)}.",
            param="model",
            code="model_not_found",
        )
    if fields.n > limits.max_n:
        raise ApiError(
            400, f"Invalid value for 'n': at most {limits.max_n}.", param="n", code="invalid_value"
        )
    quality = fields.quality or "auto"
    steps = fields.num_inference_steps or max(1, round(default_steps * QUALITY_FRACTIONS.get(quality, 1.0)))
    if steps > limits.max_steps:
        raise ApiError(
            400,
            f"Invalid value for 'num_inference_steps': at most {limits.max_steps} on this server.",
            param="num_inference_steps",
            code="invalid_value",
        )
    output_format = fields.output_format or "png"
    background = fields.background or "auto"
    if background == "transparent" and output_format == "jpeg":
        raise ApiError(
            400,
            "background 'transparent' needs output_format png or webp; JPEG has no alpha.",
            param="background",
            code="invalid_value",
        )
    partial = fields.partial_images or 0
    if partial > limits.max_partial_images:
        raise ApiError(
            400,
            f"Invalid value for 'partial_images': at most {limits.max_partial_images}.",
            param="partial_images",
            code="invalid_value",
        )
    guidance = 1.0 if fields.guidance_scale is None else fields.guidance_scale
    negative = fields.negative_prompt
    if guidance > 1 and negative is None:
        negative = ""  # guidance against the empty prompt, as `qwen-image2 generate --guidance` does
    return Options(
        model=model,
        prompt=fields.prompt,
        n=fields.n,
        size=parse_size(fields.size, limits),
        steps=steps,
        seed=fields.seed,
        guidance_scale=guidance,
        negative_prompt=negative,
        quality=quality,
        response_format=fields.response_format or "b64_json",
        output_format=output_format,
        output_compression=100 if fields.output_compression is None else fields.output_compression,
        background=background,
        stream=bool(fields.stream),
        partial_images=partial,
        user=fields.user,
        enhance_prompt=fields.enhance_prompt,
    )
