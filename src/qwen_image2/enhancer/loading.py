"""`load_enhancer(spec)`: a folder is a local causal LM, an http(s) URL an OpenAI-compatible endpoint."""

import os
from pathlib import Path
from urllib.parse import urlsplit

from qwen_image2.enhancer.backend import Sampling, Task
from qwen_image2.enhancer.canvas import TABLE_SIDE
from qwen_image2.enhancer.endpoint import EndpointBackend
from qwen_image2.enhancer.local import LocalBackend, load_causal_lm
from qwen_image2.enhancer.rewrite import PromptEnhancer
from qwen_image2.errors import UserError
from qwen_image2.models.device import resolve_device, resolve_dtype


def check_url(spec: str) -> str:
    """`spec` when it is a usable http(s) base URL; a UserError naming what is wrong otherwise."""
    parts = urlsplit(spec)
    if parts.scheme not in ("http", "https"):
        raise UserError(f"enhancer {spec!r}: an endpoint URL starts with http:// or https://")
    try:
        port = parts.port  # raises for a port that is not a number in 0-65535
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or " " in spec:
        raise UserError(f"enhancer {spec!r}: not a valid URL; write e.g. http://127.0.0.1:8000/v1")
    return spec


def load_enhancer(
    spec: str,
    *,
    model: str | None = None,
    api_key: str | None = None,
    vision: bool = True,
    timeout_s: float = 30.0,
    max_retries: int = 1,
    device: str = "cpu",
    dtype: str = "auto",
    sampling: dict[Task, Sampling] | None = None,
    canvas_side: int = TABLE_SIDE,
) -> PromptEnhancer:
    """A PromptEnhancer for `spec`: a causal-LM folder, or an endpoint's base URL (then `model` names the
    served model; `api_key` defaults to $OPENAI_API_KEY; `vision` False sends OCR'd text, not images).

    `timeout_s` bounds one generation (local) or one attempt (endpoint, with `max_retries` retries);
    `device`/`dtype` are for a local model. A text-only server given images answers an HTTP error,
    which falls back with that reason: pass vision=False for it.
    """
    if timeout_s <= 0 or max_retries < 0:
        raise UserError(f"timeout_s {timeout_s} must be > 0 and max_retries {max_retries} >= 0")
    if canvas_side <= 0 or canvas_side % 32:
        raise UserError(f"canvas_side {canvas_side}: must be a positive multiple of 32")
    if "://" in spec:
        if not model:
            raise UserError(f"enhancer {spec}: give the name of the model the endpoint serves (model=...)")
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        backend = EndpointBackend(check_url(spec), model, key, vision, timeout_s, max_retries)
    else:
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise UserError(f"enhancer {spec}: no such folder (give a causal-LM folder or an http(s) URL)")
        resolved = resolve_device(device)
        lm, tokenizer = load_causal_lm(folder, resolved, resolve_dtype(dtype, resolved))
        backend = LocalBackend(lm, tokenizer, timeout_s)
    return PromptEnhancer(backend, dict(sampling or {}), canvas_side)
