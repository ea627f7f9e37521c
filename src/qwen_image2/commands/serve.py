"""`qwen-image2 serve`: the OpenAI-compatible image API and its web page."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from qwen_image2.commands.options import DTYPE, check_device, check_model, listen_socket
from qwen_image2.errors import UserError


def parse_models(specs: list[str]) -> dict[str, str]:
    """`NAME=PATH` (or a bare PATH or preset, named by its last part) -> {name: path}, names unique."""
    models: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec.rstrip("/")).name or spec, spec
        if not name or not path:
            raise UserError(f"--model {spec!r}: write NAME=PATH, e.g. --model demo=checkpoints/tiny-demo")
        if name in models:
            raise UserError(f"--model {spec!r}: the name {name!r} is given twice")
        check_model(path)
        models[name] = path
    return models


def read_api_keys(keys: list[str], key_file: Path | None) -> frozenset[str]:
    """Keys from --api-key and from a file of one key a line (blank lines and # comments skipped)."""
    found = [k.strip() for k in keys if k.strip()]
    if key_file is not None:
        if not key_file.is_file():
            raise UserError(f"--api-key-file {key_file}: no such file")
        lines = key_file.read_text(encoding="utf-8").splitlines()
        found += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not found:
            raise UserError(f"--api-key-file {key_file} holds no key")
    return frozenset(found)


def serve(
    model: list[str] = typer.Option(
        ..., "--model", "-m", help="NAME=PATH: a diffusers folder or a preset; repeat to serve several."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    device: list[str] = typer.Option(
        ["auto"], "--device", help="A worker's device; repeat for one worker per GPU ('auto': cuda or cpu)."
    ),
    dtype: str = DTYPE,
    db: str = typer.Option(
        "sqlite:///serve.db",
        "--db",
        help="History and feedback store: sqlite:///FILE or postgresql://USER:PW@HOST/DB.",
    ),
    api_key: list[str] = typer.Option(
        [],
        "--api-key",
        envvar="QWEN_IMAGE2_API_KEY",
        help="Require 'Authorization: Bearer KEY'; repeat for several.",
    ),
    api_key_file: Path | None = typer.Option(None, "--api-key-file", help="A file of API keys, one a line."),
    max_queue: int = typer.Option(64, "--max-queue", min=1, help="Requests waiting at most; more get 429."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Images denoised together at most."),
    timeout: float = typer.Option(
        600.0, "--timeout", min=1, help="Seconds a request may take, queue included."
    ),
    steps: int = typer.Option(
        40, "--steps", min=1, help="Steps of quality 'high' (medium: half, low: a quarter)."
    ),
    text_bucket: int = typer.Option(
        1,
        "--text-bucket",
        min=1,
        help="1: batch only prompts of one encoded length (each image exactly the model's). N: pad prompts to "
        "multiples of N tokens so more batch (the image moves slightly; generate --text-bucket N matches).",
    ),
    max_pixels: int = typer.Option(
        2048 * 2048, "--max-pixels", min=32 * 32, help="Largest output image, in pixels."
    ),
    cors_origin: list[str] = typer.Option(
        [], "--cors-origin", help="Allow browser calls from this origin (off by default)."
    ),
    safety: bool = typer.Option(False, "--safety", help="Refuse output images the NudeNet detector flags."),
    enhancer: str | None = typer.Option(
        None, "--enhancer", help="Rewrite prompts first: a causal-LM folder or an OpenAI-compatible chat URL."
    ),
    enhancer_model: str | None = typer.Option(
        None, "--enhancer-model", help="The model an --enhancer endpoint serves (its chat `model` field)."
    ),
) -> None:
    """Serve models over an OpenAI-compatible Images API (/v1/images/generations, /v1/images/edits) and a web page.

    Examples:

      qwen-image2 serve --model demo=checkpoints/tiny-demo --steps 20

      qwen-image2 serve --model qwen-image-2.1=/models/Qwen-Image-2.1 --device cuda:0 --device cuda:1 --api-key s3cret
    """
    import uvicorn

    from qwen_image2.serving.app import build_app
    from qwen_image2.serving.engine import load_workers
    from qwen_image2.serving.settings import Limits, ServeSettings

    models = parse_models(model)
    for name in device:
        check_device(name, dtype)
    keys = read_api_keys(api_key, api_key_file)
    settings = ServeSettings(
        models=models,
        devices=list(device),
        dtype=dtype,
        db_url=db,
        api_keys=keys,
        max_queue=max_queue,
        max_batch=max_batch,
        timeout=timeout,
        steps=steps,
        text_bucket=text_bucket,
        cors_origins=list(cors_origin),
        safety=safety,
        enhancer=enhancer,
        enhancer_model=enhancer_model,
        limits=Limits(max_pixels=max_pixels),
    )
    prompt_enhancer = None
    if enhancer is not None:  # a bad spec fails before the models load
        from qwen_image2.enhancer.loading import load_enhancer

        prompt_enhancer = load_enhancer(enhancer, model=enhancer_model)
    from qwen_image2.serving.storage import build_engine

    listening = listen_socket(host, port)
    build_engine(db).dispose()  # a bad --db is one error line before minutes of model loading
    print(f"loading {', '.join(models)} on {', '.join(device)} ...", file=sys.stderr)
    workers = load_workers(models, settings.devices, dtype, text_bucket)
    app = build_app(settings, workers, prompt_enhancer)
    print(f"serving on http://{host}:{port}/ (models: {', '.join(models)}; store: {db})", file=sys.stderr)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)).run(
        sockets=[listening]
    )
