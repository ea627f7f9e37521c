"""Options shared by several commands, defined once, and the parsing of their values."""

import socket
from pathlib import Path

import typer

from qwen_image2.errors import UserError


def choice(*values: str):
    """An option callback: the value must be one of `values` (checked at parse time, one `error:` line)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in values:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    return check


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
STEPS = typer.Option(40, "--steps", min=1, help="Denoising steps.")
GUIDANCE = typer.Option(
    1.0,
    "--guidance",
    min=0.0,
    help="True CFG scale; > 1 runs CFG against --negative-prompt (default: the empty prompt).",
)
NEGATIVE_PROMPT = typer.Option(
    None, "--negative-prompt", help="The CFG branch when --guidance > 1 (default: the empty prompt)."
)
NUM_IMAGES = typer.Option(1, "--num-images", min=1, help="Images to generate.")
# Formats that hold the alpha channel of the RGBA images the pipeline makes (JPEG and BMP cannot).
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")
# The largest --size: 4096x4096 pixels (beyond it the latents alone outgrow any single GPU).
MAX_PIXELS = 4096 * 4096
TEXT_BUCKET = typer.Option(
    1,
    "--text-bucket",
    min=1,
    help="Pad prompts to multiples of this many tokens (as a server run with the same value does); 1: exact.",
)
ENHANCE = typer.Option(
    None,
    "--enhance",
    help="Rewrite the prompt first: an enhancer folder (causal LM) or an OpenAI-compatible chat URL.",
)
ENHANCER_MODEL = typer.Option(
    None, "--enhancer-model", help="The model an enhancer endpoint serves (its chat `model` field)."
)
NO_KV_CACHE = typer.Option(False, "--no-kv-cache", help="Recompute the prompt's tokens every step.")


def cfg_negative(guidance: float, negative_prompt: str | None) -> str | None:
    """The negative prompt CFG runs against: with `--guidance` > 1 and none given, the empty prompt (the
    unconditional a caption-dropout model learned), so that guidance is never silently off."""
    if guidance > 1 and negative_prompt is None:
        return ""
    return negative_prompt


def check_model(model: str) -> None:
    """A path-like `model` (with a suffix or a slash) must be a folder: otherwise it is a preset name."""
    path = Path(model)
    if path.exists() and not path.is_dir():
        raise UserError(f"--model {model} is not a folder (a diffusers model folder or a preset name)")
    if not path.is_dir() and (path.suffix or "/" in model):
        raise UserError(f"model folder {model} does not exist")
    if (path / "model_index.json").is_file():
        from qwen_image2.models.loading import read_model_index

        read_model_index(path / "model_index.json")


def check_device(device: str, dtype: str = "auto"):
    """(device, torch dtype) as resolved for this machine: a UserError naming --device or --dtype, before
    anything loads."""
    from qwen_image2.models.device import resolve_device, resolve_dtype

    device = resolve_device(device)
    return device, resolve_dtype(dtype, device)


def load_pipeline(model: str, device: str, dtype: str):
    """`QwenImage2Pipeline` of a model folder or preset, on the resolved device and dtype."""
    from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline

    check_model(model)
    device, torch_dtype = check_device(device, dtype)
    return QwenImage2Pipeline.from_model(model, dtype=torch_dtype, device=device)


def check_out_parent(path: Path, flag: str = "--out") -> None:
    """The nearest existing folder above `path` must be a folder, not a file (so that mkdir can work)."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is not a folder")
            return


def check_out_file(path: Path, flag: str = "--out") -> None:
    """`path` is a file to write: not an existing folder, and its folders can be made."""
    if Path(path).is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    check_out_parent(path, flag)


def check_out_folder(path: Path, flag: str = "--out") -> None:
    """`path` is a folder to write into: an existing one, or one that can be made."""
    if Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"{flag} {path} is not a folder")
    check_out_parent(path, flag)


def check_image_out(path: Path, flag: str = "--out") -> None:
    """An image file to write RGBA into: a suffix whose format holds alpha (its folder is made on writing)."""
    path = Path(path)
    check_out_file(path, flag)
    suffix = path.suffix.lower()
    if not suffix:
        raise UserError(
            f"{flag} {path}: give a file name ending in .png (or {', '.join(ALPHA_SUFFIXES[1:])})"
        )
    if suffix not in ALPHA_SUFFIXES:
        raise UserError(
            f"{flag} {path}: {suffix} cannot hold the alpha channel of these RGBA images; use .png"
            f" (or {', '.join(ALPHA_SUFFIXES[1:])})"
        )


def parse_size(size: str) -> tuple[int, int]:
    """'WxH' -> (width, height), both positive multiples of 32."""
    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {size!r}: write it as WIDTHxHEIGHT, e.g. 1024x768") from None
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise UserError(f"--size {size}: width and height must be positive multiples of 32")
    if width * height > MAX_PIXELS:
        raise UserError(f"--size {size}: at most {MAX_PIXELS:,} pixels (4096x4096), got {width * height:,}")
    return width, height


def picture_beside(out: Path, kind: str) -> Path:
    """Where a job's picture goes beside its JSON `out`: its own name (`text.sheet.png` beside `text.json`),
    so that an `--out` ending in .png never has the JSON overwritten by the picture."""
    return out.with_name(f"{out.stem}.{kind}.png")


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; handed to uvicorn, so nothing can take the port in between."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        raise UserError(f"--host {host}: cannot listen there ({err})") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(2048)
    except OSError as err:
        listening.close()
        raise UserError(f"--host {host} --port {port}: cannot listen there ({err.strerror})") from None
    return listening
