"""`qwen-image2 generate` and `qwen-image2 edit`."""

from pathlib import Path

import typer

from qwen_image2.commands.options import (
    DEVICE,
    DTYPE,
    ENHANCE,
    ENHANCER_MODEL,
    GUIDANCE,
    MODEL,
    NEGATIVE_PROMPT,
    NO_KV_CACHE,
    NUM_IMAGES,
    SEED,
    STEPS,
    TEXT_BUCKET,
    cfg_negative,
    check_device,
    check_image_out,
    check_model,
    load_pipeline,
    parse_size,
)
from qwen_image2.data.images import read_image
from qwen_image2.errors import UserError


def generate(
    prompt: str = typer.Argument(..., help="What to draw; put text to render in quotes."),
    model: str = MODEL,
    size: str = typer.Option(
        None, "--size", help="WIDTHxHEIGHT, multiples of 32; default: the model's training side, squared."
    ),
    steps: int = STEPS,
    seed: int = SEED,
    guidance: float = GUIDANCE,
    negative_prompt: str = NEGATIVE_PROMPT,
    num_images: int = NUM_IMAGES,
    out: Path = typer.Option(Path("output.png"), "--out", "-o", help="PNG to write (alpha kept)."),
    no_kv_cache: bool = NO_KV_CACHE,
    text_bucket: int = TEXT_BUCKET,
    enhance: str | None = ENHANCE,
    enhancer_model: str | None = ENHANCER_MODEL,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Generate an image from a prompt.

    Examples:

      qwen-image2 generate "a poster that says \\"OPEN\\"" --model tiny --size 256x192 --steps 8

      qwen-image2 generate "a cat" --model ./Qwen-Image-2.1 --size 2048x2048 --seed 7 --out cat.png

      qwen-image2 generate "a cat" -m ./Qwen-Image-2.1 --guidance 4 --negative-prompt "blurry" --num-images 4

      qwen-image2 generate 'poster saying otter' --model checkpoints/tiny-demo --enhance checkpoints/tiny-enhancer
    """
    from qwen_image2.models.loading import training_resolution_of

    _check(model, out, device, dtype)
    side = training_resolution_of(model)
    width, height = parse_size(size) if size else (side, side)
    if enhance is not None:
        prompt, canvas = _enhanced(prompt, [], enhance, enhancer_model, side)
        width, height = (width, height) if size else canvas
    settings = dict(
        steps=steps,
        seed=seed,
        guidance=guidance,
        negative_prompt=negative_prompt,
        num_images=num_images,
        no_kv_cache=no_kv_cache,
        text_bucket=text_bucket,
        device=device,
        dtype=dtype,
    )
    run(prompt, [], model, width, height, out, **settings)


def edit(
    instruction: str = typer.Argument(..., help="What to change, e.g. 'change the word to WORLD'."),
    image: list[Path] = typer.Option(..., "--image", "-i", help="Condition image; repeat for up to 10."),
    model: str = MODEL,
    size: str = typer.Option(
        None, "--size", help="WIDTHxHEIGHT; default: the last image's aspect at --resolution²."
    ),
    resolution: int = typer.Option(
        None,
        "--resolution",
        min=32,
        help="Condition images are resized to this area²; default: the model's training side (else 1024).",
    ),
    steps: int = STEPS,
    seed: int = SEED,
    guidance: float = GUIDANCE,
    negative_prompt: str = NEGATIVE_PROMPT,
    num_images: int = NUM_IMAGES,
    out: Path = typer.Option(Path("edited.png"), "--out", "-o", help="PNG to write (alpha kept)."),
    no_kv_cache: bool = NO_KV_CACHE,
    text_bucket: int = TEXT_BUCKET,
    enhance: str | None = ENHANCE,
    enhancer_model: str | None = ENHANCER_MODEL,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Edit one or more images by instruction.

    Examples:

      qwen-image2 edit "change the word to WORLD" --image poster.png --model tiny --size 256x192

      qwen-image2 edit "put the cat from picture 2 on the sofa in picture 1" -i sofa.png -i cat.png -m ./Qwen-Image-2.1
    """
    if len(image) > 10:
        raise UserError(f"{len(image)} images given; at most 10 condition images are supported")
    from qwen_image2.models.conditioning import condition_image_size
    from qwen_image2.models.loading import training_resolution_of

    width, height = parse_size(size) if size else (None, None)
    _check(model, out, device, dtype)
    resolution = resolution or training_resolution_of(model)
    images = [read_image(path) for path in image]
    for path, picture in zip(image, images, strict=True):
        try:
            condition_image_size(*picture.size, resolution)
        except UserError as err:
            raise UserError(f"--image {path}: {err}") from None
    if enhance is not None:
        instruction, canvas = _enhanced(instruction, images, enhance, enhancer_model, resolution)
        width, height = (width, height) if size else canvas
    settings = dict(
        steps=steps,
        seed=seed,
        guidance=guidance,
        negative_prompt=negative_prompt,
        num_images=num_images,
        no_kv_cache=no_kv_cache,
        text_bucket=text_bucket,
        device=device,
        dtype=dtype,
    )
    run(instruction, images, model, width, height, out, resolution=resolution, **settings)


def _enhanced(prompt: str, images: list, spec: str, enhancer_model: str | None, side: int):
    """The enhancer's rewrite of `prompt` and its canvas at the model's `side` (the prompt as given, and
    the canvas of its fallback ratio, when the rewrite fails)."""
    from qwen_image2.commands.enhancer import load_command_enhancer, rewrite_for_command

    rewrite = rewrite_for_command(load_command_enhancer(spec, enhancer_model, side), prompt, images)
    return rewrite.rewritten_prompt, rewrite.size


def _check(model: str, out: Path, device: str, dtype: str) -> None:
    """Everything a run needs that can be wrong, before a model loads."""
    check_image_out(out)
    check_model(model)
    check_device(device, dtype)


def run(
    prompt,
    images,
    model,
    width,
    height,
    out: Path,
    *,
    steps,
    seed,
    guidance,
    negative_prompt,
    num_images,
    no_kv_cache,
    text_bucket,
    device,
    dtype,
    resolution=None,
) -> None:
    """Validate, load, generate, write PNGs; prints where they are."""
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    if num_images < 1:
        raise UserError(f"--num-images must be at least 1, got {num_images}")
    from qwen_image2.pipelines.requests import ImageRequest, RequestSampler

    pipe = load_pipeline(model, device, dtype)
    if not Path(model).is_dir():
        typer.echo(
            f"note: preset {model!r} has random weights; its images are noise-like by design", err=True
        )
    # The server's path (pipelines/requests.py): the same seed and settings give the same bytes here as
    # from `qwen-image2 serve`, batched or alone.
    request = ImageRequest(
        prompt,
        images=list(images),
        width=width,
        height=height,
        steps=steps,
        num_images=num_images,
        seed=seed,
        guidance_scale=guidance,
        negative_prompt=cfg_negative(guidance, negative_prompt),
        resolution=resolution,
    )
    pictures = RequestSampler(pipe, text_bucket).run(request, use_kv_cache=not no_kv_cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    for index, picture in enumerate(pictures):
        path = out if len(pictures) == 1 else out.with_name(f"{out.stem}-{index}{out.suffix}")
        picture.save(path)
        typer.echo(str(path))
