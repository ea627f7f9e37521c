"""Bad input against a real server on 127.0.0.1: each request gets its 4xx in OpenAI's error envelope, and
changes nothing: every row of every table of the store, and the engine's step count, are the same after it
as before. The official `openai` client raises its typed exceptions for them, and a 429 or 503 says when
to come back (Retry-After).
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import httpx
import openai
import pytest
from PIL import Image
from sqlalchemy import select

from qwen_image2.serving.errors import ERROR_TYPES
from qwen_image2.serving.settings import Limits
from qwen_image2.serving.storage import Base

PROMPT = "a red square on a white background"
BODY = {"prompt": PROMPT, "model": "demo"}
ENVELOPE_KEYS = {"message", "type", "param", "code"}
BODY_LIMIT = 4096
# ~10 s on 2 CPU cores (0.5 s a step): long enough to fill the queue behind it, short enough to wait out.
SLOW = {"model": "demo", "prompt": PROMPT, "size": "256x256", "num_inference_steps": 20}


def image_bytes(kind: str, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 30, 0) if mode == "RGBA" else (200, 30, 30)).save(buffer, format=kind)
    return buffer.getvalue()


def png(size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    return image_bytes("PNG", size, mode)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A well-formed PNG (correct CRCs) whose IHDR declares width x height 8-bit RGB, with one row of data:
    what a decompression bomb looks like before it is inflated."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every table of the server's store, in primary-key order."""
    with app.state.db.connect() as connection:
        return {
            table.name: [
                tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ENVELOPE_KEYS, error
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == ERROR_TYPES[status]
    if code is not None:
        assert error["code"] == code, error
    return error


def seeded(live_server, **settings) -> str:
    """A server (2 steps a request) whose store already holds one generation, its image and a vote."""
    url = live_server(steps=2, **settings)
    headers = {"Authorization": "Bearer k1"} if settings.get("api_keys") else {}
    made = httpx.post(f"{url}/v1/images/generations", json=BODY, headers=headers, timeout=60)
    assert made.status_code == 200, made.text
    vote = {"image_id": made.json()["data"][0]["id"], "vote": "up", "comment": "nice"}
    assert httpx.post(f"{url}/v1/feedback", json=vote, headers=headers, timeout=10).status_code == 200
    return url


def generations(**fields):
    return lambda url: httpx.post(f"{url}/v1/images/generations", json={**BODY, **fields}, timeout=30)


def raw_generations(content, content_type: str = "application/json", **headers):
    """`content`: bytes, or a function making a fresh iterator of chunks (sent without Content-Length)."""
    return lambda url: httpx.post(
        f"{url}/v1/images/generations",
        content=content() if callable(content) else content,
        headers={"Content-Type": content_type, **headers},
        timeout=30,
    )


def edits(files, **fields):
    data = {"prompt": PROMPT, "model": "demo", **fields}
    return lambda url: httpx.post(f"{url}/v1/images/edits", data=data, files=files, timeout=30)


def raw_edits(content, content_type: str):
    return lambda url: httpx.post(
        f"{url}/v1/images/edits",
        content=content() if callable(content) else content,
        headers={"Content-Type": content_type},
        timeout=30,
    )


def chunked(total: int, piece: int = 1024):
    """A JSON-looking body sent chunked (no Content-Length): the limit is enforced as it arrives."""
    return (b" " * piece for _ in range(total // piece))


def chunked_multipart(total: int, piece: int = 1024):
    """A multipart edit whose image part runs past `total` bytes, sent chunked."""
    yield b'--XYZ\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi\r\n'
    yield b'--XYZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    yield from (b"\x00" * piece for _ in range(total // piece))
    yield b"\r\n--XYZ--\r\n"


KEYED = {"api_keys": frozenset({"k1"})}
SMALL_BODY = {"limits": Limits(max_body_bytes=BODY_LIMIT)}
CASES = {
    "size not a multiple of 32": ({}, generations(size="100x100"), 400, "invalid_size"),
    "size not WxH": ({}, generations(size="big"), 400, "invalid_size"),
    "n = 0": ({}, generations(n=0), 400, "invalid_value"),
    "n = 11": ({}, generations(n=11), 400, "invalid_value"),
    "missing prompt": ({}, raw_generations(b'{"model": "demo"}'), 400, "missing_required_parameter"),
    "prompt not a string": ({}, generations(prompt=None), 400, "invalid_value"),
    "11 images to edits": (
        {},
        edits([("image[]", (f"{i}.png", png(), "image/png")) for i in range(11)]),
        400,
        "too_many_images",
    ),
    "edit without image": (
        {},
        edits([("mask", ("m.png", png(), "image/png"))]),
        400,
        "missing_required_parameter",
    ),
    "a text file as the image": (
        {},
        edits([("image", ("notes.txt", b"just some text\n", "text/plain"))]),
        415,
        "unsupported_image_format",
    ),
    "a GIF as the image": (
        {},
        edits([("image", ("a.gif", image_bytes("GIF"), "image/gif"))]),
        415,
        "unsupported_image_format",
    ),
    "PNG header of 100000x100000": (
        {},
        edits([("image", ("bomb.png", huge_png_header(), "image/png"))]),
        413,
        "image_too_large",
    ),
    "truncated PNG": ({}, edits([("image", ("cut.png", png()[:60], "image/png"))]), 400, "invalid_image"),
    "unknown model": ({}, generations(model="no-such-model"), 404, "model_not_found"),
    "unknown model, edit": (
        {},
        edits([("image", ("a.png", png(), "image/png"))], model="no-such-model"),
        404,
        "model_not_found",
    ),
    "missing API key": (KEYED, generations(), 401, "invalid_api_key"),
    "wrong API key": (
        KEYED,
        raw_generations(b'{"prompt": "x"}', Authorization="Bearer k2"),
        401,
        "invalid_api_key",
    ),
    "prompt over 1024 tokens": (
        {},
        generations(prompt=" ".join(["red square"] * 700)),
        400,
        "prompt_too_long",
    ),
    "negative prompt over 1024 tokens": (
        {},
        generations(negative_prompt=" ".join(["blue"] * 1500), guidance_scale=4),
        400,
        "prompt_too_long",
    ),
    "malformed JSON": ({}, raw_generations(b'{"prompt": "a red'), 400, "invalid_json"),
    "not UTF-8": ({}, raw_generations(b'{"prompt": "\xff\xfe"}'), 400, "invalid_json"),
    "a JSON array": ({}, raw_generations(b'[{"prompt": "a red square"}]'), 400, "invalid_json"),
    "a JSON string": ({}, raw_generations(b'"a red square"'), 400, "invalid_json"),
    "wrong content type": (
        {},
        raw_generations(b'{"prompt": "x"}', "text/plain"),
        415,
        "unsupported_media_type",
    ),
    "JSON to edits": ({}, raw_edits(b'{"prompt": "x"}', "application/json"), 415, "unsupported_media_type"),
    "malformed multipart": (
        {},
        raw_edits(b"this is not multipart at all", "multipart/form-data; boundary=XYZ"),
        400,
        "invalid_multipart",
    ),
    "multipart without boundary": (
        {},
        raw_edits(b"--XYZ\r\n", "multipart/form-data"),
        400,
        "invalid_multipart",
    ),
    "unknown field": ({}, generations(colour="red"), 400, "unknown_parameter"),
    "unknown field, edit": (
        {},
        edits([("image", ("a.png", png(), "image/png"))], colour="red"),
        400,
        "unknown_parameter",
    ),
    "body over the limit": (SMALL_BODY, generations(prompt="x" * 2 * BODY_LIMIT), 413, "payload_too_large"),
    "chunked body over the limit": (
        SMALL_BODY,
        raw_generations(lambda: chunked(4 * BODY_LIMIT)),
        413,
        "payload_too_large",
    ),
    "edit over the limit": (
        SMALL_BODY,
        edits([("image", ("a.png", b"\x00" * 2 * BODY_LIMIT, "image/png"))]),
        413,
        "payload_too_large",
    ),
    "chunked edit over the limit": (
        SMALL_BODY,
        raw_edits(lambda: chunked_multipart(4 * BODY_LIMIT), "multipart/form-data; boundary=XYZ"),
        413,
        "payload_too_large",
    ),
    "mask of the wrong size": (
        {},
        edits(
            [
                ("image", ("a.png", png((64, 64)), "image/png")),
                ("mask", ("m.png", png((32, 64), "RGBA"), "image/png")),
            ]
        ),
        400,
        "invalid_mask",
    ),
    "jpeg with a transparent background": (
        {},
        generations(output_format="jpeg", background="transparent"),
        400,
        "invalid_value",
    ),
    "steps over the limit": ({}, generations(num_inference_steps=201), 400, "invalid_value"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_its_4xx_and_changes_nothing(live_server, case):
    settings, send, status, code = CASES[case]
    url = seeded(live_server, **settings)
    app = live_server.app
    before, steps = snapshot(app), httpx.get(f"{url}/health").json()["steps"]
    assert before["serve_generations"] and before["serve_images"] and before["serve_feedback"]

    assert_error(send(url), status, code)

    assert snapshot(app) == before
    health = httpx.get(f"{url}/health").json()
    assert (health["steps"], health["queue"], health["running"]) == (steps, 0, 0)


def _client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def test_openai_client_raises_typed_errors(live_server):
    url = seeded(live_server, **KEYED)
    app = live_server.app
    before = snapshot(app)
    client = _client(url, "k1")

    with pytest.raises(openai.BadRequestError) as bad:
        client.images.generate(model="demo", prompt=PROMPT, size="100x100")
    assert bad.value.status_code == 400 and bad.value.code == "invalid_size" and bad.value.param == "size"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.images.generate(model="demo", prompt=PROMPT, extra_body={"colour": "red"})
    assert unknown.value.code == "unknown_parameter"
    with pytest.raises(openai.AuthenticationError) as auth:
        _client(url, "wrong").images.generate(model="demo", prompt=PROMPT)
    assert auth.value.status_code == 401 and auth.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        client.images.generate(model="no-such-model", prompt=PROMPT)
    assert missing.value.status_code == 404 and missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.images.edit(
            model="demo",
            prompt=PROMPT,
            image=("a.png", png(), "image/png"),
            mask=("m.png", png((32, 32)), "image/png"),
        )
    with pytest.raises(openai.APIStatusError) as media:
        client.images.edit(model="demo", prompt=PROMPT, image=("a.txt", b"text", "text/plain"))
    assert media.value.status_code == 415

    assert snapshot(app) == before


def _in_flight(url: str) -> tuple[list[threading.Thread], list[int]]:
    """Two slow generations sent from threads: one denoising, then one waiting behind it."""
    answers: list[int] = []

    def send() -> None:
        answers.append(httpx.post(f"{url}/v1/images/generations", json=SLOW, timeout=120).status_code)

    threads = [threading.Thread(target=send, daemon=True) for _ in range(2)]
    threads[0].start()
    _wait_health(url, lambda h: h["running"] == 1)  # taken by the worker before the second comes
    threads[1].start()
    return threads, answers


def _wait_health(url: str, until, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", timeout=5).json()
        if until(health):
            return health
        time.sleep(0.02)
    raise AssertionError(f"/health never showed the expected state: {health}")


def test_full_queue_is_a_rate_limit_error_with_retry_after(live_server):
    url = live_server(max_queue=1, steps=2)
    threads, answers = _in_flight(url)
    _wait_health(url, lambda h: h["running"] == 1 and h["queue"] == 1)  # the queue is full

    with pytest.raises(openai.RateLimitError) as limited:
        _client(url).images.generate(model="demo", prompt=PROMPT)
    assert limited.value.status_code == 429 and limited.value.code == "queue_full"
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert limited.value.body["type"] == "rate_limit_error"
    raw = httpx.post(f"{url}/v1/images/generations", json=BODY, timeout=10)
    assert_error(raw, 429, "queue_full")
    assert int(raw.headers["retry-after"]) >= 1

    for thread in threads:
        thread.join(timeout=60)
    assert answers == [200, 200]
    assert httpx.post(f"{url}/v1/images/generations", json=BODY, timeout=60).status_code == 200


def test_timeout_is_a_503_with_retry_after(live_server):
    url = live_server(timeout=1.5, steps=2)  # SLOW takes ~10 s; a 2-step 128 px request well under 1 s
    before = snapshot(live_server.app)

    with pytest.raises(openai.InternalServerError) as timed_out:
        _client(url).images.generate(
            model="demo", prompt=PROMPT, size=SLOW["size"], extra_body={"num_inference_steps": 20}
        )
    assert timed_out.value.status_code == 503 and timed_out.value.code == "timeout"
    assert int(timed_out.value.response.headers["retry-after"]) >= 1
    raw = httpx.post(f"{url}/v1/images/generations", json=SLOW, timeout=30)
    assert_error(raw, 503, "timeout")
    assert int(raw.headers["retry-after"]) >= 1

    # The worker let the timed-out requests go and serves the next one; nothing was stored.
    _wait_health(url, lambda h: h["running"] == 0)
    assert httpx.post(f"{url}/v1/images/generations", json=BODY, timeout=30).status_code == 200
    after = snapshot(live_server.app)
    assert len(after["serve_generations"]) == len(before["serve_generations"]) + 1
