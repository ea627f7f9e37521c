"""Options shared by several commands, defined once, and the parsing of their values."""

from pathlib import Path

import typer

from qwen_image2.errors import UserError

MODEL = typer.Option(
    ..., "--model", "-m", help="A diffusers model folder (e.g. Qwen/Qwen-Image-2.1) or a preset: tiny."
)
DEVICE = typer.Option("auto", "--device", help="cpu, cuda, cuda:1, ... ('auto': cuda when available).")
DTYPE = typer.Option(
    "auto", "--dtype", help="float32, bfloat16 or float16 ('auto': bfloat16 on GPU, float32 on CPU)."
)
SEED = typer.Option(
    0, "--seed", help="Seed of torch.Generator('cpu') for the initial noise, as stock diffusers."
)
STEPS = typer.Option(40, "--steps", help="Denoising steps.")
GUIDANCE = typer.Option(
    1.0,
    "--guidance",
    help="True CFG scale; > 1 runs CFG against --negative-prompt (default: the empty prompt).",
)
NEGATIVE_PROMPT = typer.Option(
    None, "--negative-prompt", help="The CFG branch when --guidance > 1 (default: the empty prompt)."
)
NUM_IMAGES = typer.Option(1, "--num-images", help="Images to generate.")
NO_KV_CACHE = typer.Option(False, "--no-kv-cache", help="Recompute the prompt's tokens every step.")


def cfg_negative(guidance: float, negative_prompt: str | None) -> str | None:
    """The negative prompt CFG runs against: with `--guidance` > 1 and none given, the empty prompt (the
    unconditional a caption-dropout model learned), so that guidance is never silently off."""
    if guidance > 1 and negative_prompt is None:
        return ""
    return negative_prompt


def check_model(model: str) -> None:
    """A path-like `model` (with a suffix or a slash) must be a folder: otherwise it is a preset name."""
    if not Path(model).is_dir() and (Path(model).suffix or "/" in model):
        raise UserError(f"model folder {model} does not exist")


def load_pipeline(model: str, device: str, dtype: str):
    """`QwenImage2Pipeline` of a model folder or preset, on the resolved device and dtype."""
    from qwen_image2.models.device import resolve_device, resolve_dtype
    from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline

    check_model(model)
    device = resolve_device(device)
    return QwenImage2Pipeline.from_model(model, dtype=resolve_dtype(dtype, device), device=device)


def parse_size(size: str) -> tuple[int, int]:
    """'WxH' -> (width, height), both positive multiples of 32."""
    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {size!r}: write it as WIDTHxHEIGHT, e.g. 1024x768") from None
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise UserError(f"--size {size}: width and height must be positive multiples of 32")
    return width, height
