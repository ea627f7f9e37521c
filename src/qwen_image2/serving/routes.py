"""`POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart), as OpenAI's Images API.

A request is checked in full (fields, model, size, prompt tokens, images) before it is queued; then it
waits for its images, or streams `image_generation.*` / `image_edit.*` server-sent events. A client that
goes away cancels its request; the engine lets go of it between denoising steps.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from qwen_image2.enhancer.canvas import size_for
from qwen_image2.errors import UserError
from qwen_image2.models.conditioning import MAX_PROMPT_TOKENS, condition_image_size
from qwen_image2.pipelines.qwen_image2 import VAE_SCALE
from qwen_image2.pipelines.requests import ImageRequest
from qwen_image2.serving.engine import Done, Failed, Job, Partial, QueueFull, preview_steps
from qwen_image2.serving.errors import ApiError
from qwen_image2.serving.images import MIME, encode_image, keep_outside_mask, read_upload
from qwen_image2.serving.protocol import (
    EditFields,
    GenerationBody,
    Options,
    check_pixels,
    resolve,
    validation_error,
)
from qwen_image2.serving.storage import Generation, StoredImage

router = APIRouter()
POLL_SECONDS = 0.05  # how often a waiting request looks for its client having gone
SAFETY_THRESHOLD = 0.5
FORM_FIELDS = set(EditFields.model_fields)


def _generation_schema() -> dict:
    return {"required": True, "content": {"application/json": {"schema": GenerationBody.model_json_schema()}}}


def _edit_schema() -> dict:
    schema = EditFields.model_json_schema()
    binary = {"type": "string", "format": "binary"}
    schema["properties"] = {
        **schema["properties"],
        "image": binary,
        "image[]": {"type": "array", "items": binary, "maxItems": 10},
        "mask": binary,
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


@router.post("/v1/images/generations", openapi_extra={"requestBody": _generation_schema()})
async def generations(request: Request):
    if not _is_type(request, "application/json"):
        raise ApiError(415, "Send the request body as application/json.", code="unsupported_media_type")
    try:
        payload = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, f"The body is not valid JSON ({err}).", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "The body must be a JSON object.", code="invalid_json")
    try:
        fields = GenerationBody.model_validate(payload)
    except ValidationError as err:
        raise validation_error(err) from None
    return await _answer(request, "generate", _options(request, fields), [], None)


@router.post("/v1/images/edits", openapi_extra={"requestBody": _edit_schema()})
async def edits(request: Request):
    if not _is_type(request, "multipart/form-data"):
        raise ApiError(
            415,
            "Send the edit as multipart/form-data (image files and fields).",
            code="unsupported_media_type",
        )
    limits = request.app.state.settings.limits
    try:
        form = await request.form(max_files=limits.max_images + 1, max_fields=len(FORM_FIELDS) + 4)
    except Exception as err:  # Starlette raises its own (MultiPartException) and HTTP errors for a bad body
        raise ApiError(
            400,
            f"The multipart body cannot be read ({getattr(err, 'detail', err)}).",
            code="invalid_multipart",
        ) from None
    files, mask, values = _split_form(form)
    if not files:
        raise ApiError(
            400, "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
        )
    if len(files) > limits.max_images:
        raise ApiError(
            400,
            f"{len(files)} images given; at most {limits.max_images}.",
            param="image",
            code="too_many_images",
        )
    try:
        fields = EditFields.model_validate(values)
    except ValidationError as err:
        raise validation_error(err) from None
    options = _options(request, fields)
    images = [read_upload(await f.read(), "image", limits.max_input_pixels) for f in files]
    mask_image = None
    if mask is not None:
        mask_image = read_upload(await mask.read(), "mask", limits.max_input_pixels)
        if mask_image.size != images[0].size:
            raise ApiError(
                400,
                f"The mask is {mask_image.size[0]}x{mask_image.size[1]}; it must match the first image, {images[0].size[0]}x{images[0].size[1]}.",
                param="mask",
                code="invalid_mask",
            )
    return await _answer(request, "edit", options, images, mask_image)


def _split_form(form) -> tuple[list[UploadFile], UploadFile | None, dict[str, str]]:
    """The edit form's image files (`image` or `image[]`, in order), its mask, and its text fields."""
    files, mask, values = [], None, {}
    for name, value in form.multi_items():
        is_file = isinstance(value, UploadFile)
        if name in ("image", "image[]", "mask") and not is_file:
            raise ApiError(400, f"'{name}' must be a file.", param=name, code="invalid_image")
        if name in ("image", "image[]"):
            files.append(value)
        elif name == "mask":
            mask = value
        elif is_file:
            raise ApiError(
                400, f"'{name}' must be a text field, not a file.", param=name, code="invalid_value"
            )
        elif name in values:
            raise ApiError(400, f"'{name}' is given twice.", param=name, code="invalid_value")
        else:
            values[name] = value
    return files, mask, values


def _is_type(request: Request, media_type: str) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == media_type


def _options(request: Request, fields) -> Options:
    state = request.app.state
    return resolve(fields, list(state.samplers), state.settings.steps, state.settings.limits)


@dataclass
class Usage:
    text_tokens: int
    image_tokens: int
    output_tokens: int

    def body(self) -> dict:
        return {
            "input_tokens": self.text_tokens + self.image_tokens,
            "input_tokens_details": {"text_tokens": self.text_tokens, "image_tokens": self.image_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"image_tokens": self.output_tokens, "text_tokens": 0},
            "total_tokens": self.text_tokens + self.image_tokens + self.output_tokens,
        }


def _tokens(sampler, text: str, param: str) -> int:
    count = len(sampler.pipe.processor.tokenizer(text or " ").input_ids)
    if count > MAX_PROMPT_TOKENS:
        raise ApiError(
            400,
            f"'{param}' has {count} tokens; the limit is {MAX_PROMPT_TOKENS}.",
            param=param,
            code="prompt_too_long",
        )
    return count


def _image_request(request: Request, options: Options, images) -> tuple[ImageRequest, Usage]:
    sampler = request.app.state.samplers[options.model]
    resolution = sampler.resolution
    cells = []
    try:
        for image in images:
            width, height = condition_image_size(*image.size, resolution)
            cells.append(width * height // VAE_SCALE**2)
        if options.size is not None:
            width, height = options.size
        elif images:
            width, height = condition_image_size(*images[-1].size, resolution)
        else:
            width = height = resolution
    except UserError as err:
        raise ApiError(400, str(err), param="image", code="invalid_image") from None
    check_pixels(width, height, request.app.state.settings.limits)
    text = _tokens(sampler, options.prompt, "prompt")
    if options.negative_prompt:
        _tokens(sampler, options.negative_prompt, "negative_prompt")
    seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
    image_request = ImageRequest(
        prompt=options.prompt,
        images=list(images),
        width=width,
        height=height,
        steps=options.steps,
        num_images=options.n,
        seed=seed,
        guidance_scale=options.guidance_scale,
        negative_prompt=options.negative_prompt if options.guidance_scale > 1 else None,
    )
    output = options.n * width * height // VAE_SCALE**2
    return image_request, Usage(text, sum(cells), output)


async def _enhance(request: Request, kind: str, options: Options, images) -> None:
    """The enhancer's rewrite in place of the prompt (and its canvas for a generation of size auto); on
    any failure the enhancer hands back the original prompt and the request goes on with it."""
    enhancer = request.app.state.enhancer
    if enhancer is None or options.enhance_prompt is False:
        return
    rewrite = await asyncio.to_thread(
        enhancer.rewrite, options.prompt, list(images), kind if kind == "edit" else "t2i"
    )
    if not rewrite.parse_ok:
        return
    options.prompt = options.revised_prompt = rewrite.rewritten_prompt
    if options.size is None and not images:
        side = request.app.state.samplers[options.model].resolution
        options.size = size_for(rewrite.aspect_ratio, side)


async def _answer(request: Request, kind: str, options: Options, images, mask):
    state = request.app.state
    started = time.monotonic()
    if options.enhance_prompt and state.enhancer is None:
        raise ApiError(
            400,
            "This server has no prompt enhancer (start it with --enhancer).",
            param="enhance_prompt",
            code="invalid_value",
        )
    _tokens(state.samplers[options.model], options.prompt, "prompt")  # refuse a long prompt before rewriting
    original_prompt = options.prompt
    await _enhance(request, kind, options, images)
    image_request, usage = _image_request(request, options, images)
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    job = Job(
        model=options.model,
        request=image_request,
        emit=lambda event: loop.call_soon_threadsafe(events.put_nowait, event),
        deadline=started + state.settings.timeout,
        partial_steps=preview_steps(options.steps, options.partial_images) if options.stream else frozenset(),
    )
    try:
        state.engine.submit(job)
    except QueueFull:
        raise ApiError(
            429, "The server is busy: its queue is full. Retry shortly.", code="queue_full", retry_after=1
        ) from None
    finish = _Finisher(request, kind, options, image_request, usage, images, mask, original_prompt)
    endpoint = "edits" if kind == "edit" else "generations"
    if options.stream:
        return StreamingResponse(
            _stream(request, job, events, finish, started, endpoint), media_type="text/event-stream"
        )
    try:
        while True:
            event = await _next_event(request, job, events)
            if event is None:  # the client went away
                return JSONResponse({}, status_code=499)
            if isinstance(event, Failed):
                raise event.error
            if isinstance(event, Done):
                body = await asyncio.to_thread(finish.response, event.images)
                state.metrics.latency.labels(endpoint).observe(time.monotonic() - started)
                return JSONResponse(body)
    finally:
        state.engine.cancel(job)  # a no-op once done; frees the worker when the wait ended early


async def _next_event(request: Request, job: Job, events: asyncio.Queue):
    """The job's next event; None once the client has disconnected; a 503 past the deadline."""
    while True:
        try:
            return await asyncio.wait_for(events.get(), POLL_SECONDS)
        except TimeoutError:
            if await request.is_disconnected():
                return None
            if time.monotonic() > job.deadline:
                raise ApiError(503, "The request timed out.", code="timeout", retry_after=5) from None


async def _stream(
    request: Request, job: Job, events: asyncio.Queue, finish: _Finisher, started: float, endpoint: str
):
    prefix = "image_edit" if finish.kind == "edit" else "image_generation"
    state = request.app.state
    try:
        while True:
            event = await _next_event(request, job, events)
            if event is None:
                return
            if isinstance(event, Failed):
                state.metrics.errors.labels(str(event.error.status)).inc()
                yield _sse("error", event.error.body())
                return
            if isinstance(event, Partial):
                for image in event.images:
                    payload = await asyncio.to_thread(finish.event_fields, image)
                    yield _sse(
                        f"{prefix}.partial_image",
                        {"type": f"{prefix}.partial_image", **payload, "partial_image_index": event.index},
                    )
            if isinstance(event, Done):
                try:
                    body = await asyncio.to_thread(finish.response, event.images, "b64_json")
                except ApiError as err:
                    state.metrics.errors.labels(str(err.status)).inc()
                    yield _sse("error", err.body())
                    return
                for item in body["data"]:
                    completed = {
                        "type": f"{prefix}.completed",
                        "b64_json": item["b64_json"],
                        "id": item["id"],
                        **finish.common(),
                        "usage": body["usage"],
                    }
                    yield _sse(f"{prefix}.completed", completed)
                state.metrics.latency.labels(endpoint).observe(time.monotonic() - started)
                return
    except ApiError as err:
        yield _sse("error", err.body())
    finally:
        state.engine.cancel(job)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


class _Finisher:
    """Turns the engine's images into the answer: mask, safety screen, encoding, the stored rows."""

    def __init__(
        self,
        request: Request,
        kind,
        options: Options,
        image_request: ImageRequest,
        usage: Usage,
        images,
        mask,
        original_prompt: str,
    ):
        self.state = request.app.state
        self.base_url = str(request.base_url)
        self.kind, self.options, self.image_request, self.usage = kind, options, image_request, usage
        self.original_prompt = original_prompt
        self.source = images[0] if images else None
        self.mask = mask

    def common(self) -> dict:
        o, r = self.options, self.image_request
        keeps_alpha = o.background != "opaque" and o.output_format != "jpeg"
        return {
            "background": "transparent" if keeps_alpha else "opaque",
            "created_at": int(time.time()),
            "output_format": o.output_format,
            "quality": "high" if o.quality in ("auto", "hd", "standard") else o.quality,
            "size": f"{r.width}x{r.height}",
        }

    def _encode(self, image) -> bytes:
        o = self.options
        return encode_image(image, o.output_format, o.background, o.output_compression)

    def event_fields(self, image) -> dict:
        return {"b64_json": base64.b64encode(self._encode(image)).decode(), **self.common()}

    def response(self, images, response_format: str | None = None) -> dict:
        if self.mask is not None:
            images = [keep_outside_mask(image, self.source, self.mask) for image in images]
        self._screen(images)
        encoded = [self._encode(image) for image in images]
        ids = self._store(encoded)
        self.state.metrics.images.labels(self.options.model).inc(len(images))
        o = self.options
        if (response_format or o.response_format) == "url":
            data = [{"url": f"{self.base_url}v1/images/{i}/content"} for i in ids]
        else:
            data = [{"b64_json": base64.b64encode(b).decode()} for b in encoded]
        # `id` is ours (the image's id for /v1/feedback); OpenAI's client keeps unknown fields.
        data = [
            {**item, "revised_prompt": o.revised_prompt, "id": i} for item, i in zip(data, ids, strict=True)
        ]
        common = self.common()
        common.pop("created_at")
        return {"created": int(time.time()), "data": data, **common, "usage": self.usage.body()}

    def _screen(self, images) -> None:
        safety = self.state.safety
        if safety is None:
            return
        import numpy as np

        scores = safety.score([np.asarray(image.convert("RGB")) for image in images])
        if (scores > SAFETY_THRESHOLD).any():
            raise ApiError(
                422, "The image was refused by the server's safety screen.", code="content_policy_violation"
            )

    def _store(self, encoded: list[bytes]) -> list[str]:
        o, mime = self.options, MIME[self.options.output_format]
        settings = {
            **o.settings(),
            "seed": self.image_request.seed,
            "size": f"{self.image_request.width}x{self.image_request.height}",
        }
        with self.state.sessionmaker.begin() as session:
            generation = Generation(
                kind=self.kind,
                model=o.model,
                prompt=self.original_prompt,
                revised_prompt=o.revised_prompt,
                settings=settings,
                user=o.user,
            )
            generation.images = [
                StoredImage(position=i, mime=mime, data=data) for i, data in enumerate(encoded)
            ]
            session.add(generation)
            session.flush()
            return [image.id for image in generation.images]
