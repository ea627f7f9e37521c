"""Schemathesis against the live server's own /openapi.json: well over a thousand generated requests (schema-
conforming and schema-violating bodies, queries and paths for every operation), none answered with a 5xx,
every 4xx in OpenAI's error envelope, no server error event inside a 200 stream, and the worker still alive
afterwards (/health 200, nothing left running or queued).

The server runs with small limits (128x128 pixels, the demo model's default size; at most 2 images and
2 steps), so a generated request that passes validation costs milliseconds of denoising; `demo` is the
default model (the `tiny` preset's default size, 1024x1024, is over the limit). Random bytes are
never a decodable image and random ids never name a stored one, so every other schema-conforming edit gets
a real PNG in place of its generated `image` (and `mask`), and every other feedback vote or image fetch
names an image the server made: those paths are reached too, not only their refusals.
"""

from __future__ import annotations

import io
import itertools
import time
from collections import Counter

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from PIL import Image
from schemathesis import GenerationMode

from qwen_image2.serving.settings import Limits

# Examples per operation for (schema-conforming, schema-violating) data. Hypothesis stops early where an
# operation has fewer distinct requests than asked (GET /health has one), so the total is counted.
EXAMPLES = {
    "POST /v1/images/generations": (600, 200),
    "POST /v1/images/edits": (300, 150),
    "POST /v1/feedback": (120, 80),
    "GET /v1/history": (80, 40),
    "GET /v1/images/{image_id}/content": (80, 0),  # a free-text path parameter has no violating value
}
DEFAULT_EXAMPLES = (5, 0)  # the operations without parameters
MIN_REQUESTS = 1000
ENVELOPE_KEYS = {"message", "type", "param", "code"}


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 30, 0) if mode == "RGBA" else (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGE, MASK = _png((96, 64)), _png((96, 64), "RGBA")


def test_generated_requests_get_no_server_error(live_server):
    url = live_server(
        steps=2,
        timeout=60,
        limits=Limits(max_body_bytes=2**20, max_pixels=128 * 128, max_steps=2, max_n=2, max_images=2),
    )
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    statuses: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []
    session = requests.Session()
    made: list[str] = []  # ids of images the server made, from its history
    turn, pick = itertools.count(), itertools.count()
    started = time.monotonic()

    def known_image() -> str | None:
        if not made:
            history = session.get(f"{url}/v1/history", params={"limit": 200}, timeout=30).json()
            made.extend(image["id"] for g in history["data"] for image in g["images"])
        return made[next(pick) % len(made)] if made else None

    def check(label: str, mode: GenerationMode, case) -> None:
        if mode.is_positive and next(turn) % 2:
            _make_reachable(label, case, known_image)
        response = case.call(base_url=url, session=session, timeout=60)
        statuses[(label, response.status_code)] += 1
        problem = _problem(response)
        if problem:
            failures.append(f"{label} -> {response.status_code}: {problem}\n  {case.as_curl_command()}")

    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for mode, count in zip(
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
            EXAMPLES.get(label, DEFAULT_EXAMPLES),
            strict=True,
        ):
            if count:
                _fuzz(operation, mode, count, lambda case, label=label, mode=mode: check(label, mode, case))

    elapsed = time.monotonic() - started
    total = sum(statuses.values())
    by_status = Counter()
    for (_, status), n in statuses.items():
        by_status[status] += n
    print(f"\n{total} generated requests in {elapsed:.0f} s; by status {dict(sorted(by_status.items()))}")
    for (label, status), n in sorted(statuses.items()):
        print(f"  {label:36} {status}: {n}")

    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:20])
    assert total >= MIN_REQUESTS
    # A good share passed validation and ran through the engine, the store and the encoders.
    for label, least in [
        ("POST /v1/images/generations", 50),
        ("POST /v1/images/edits", 10),
        ("POST /v1/feedback", 10),
        ("GET /v1/images/{image_id}/content", 10),
    ]:
        assert statuses[(label, 200)] >= least, f"only {statuses[(label, 200)]} of {label} answered 200"
    health = httpx.get(f"{url}/health", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert (health.json()["running"], health.json()["queue"]) == (0, 0)


def _make_reachable(label: str, case, known_image) -> None:
    """Swap generated values that can never be valid (image bytes, image ids) for real ones."""
    body = case.body
    if label == "POST /v1/images/edits" and isinstance(body, dict):
        if "image" in body or "image[]" not in body:
            body["image"] = IMAGE
        if "image[]" in body:
            body["image[]"] = [IMAGE]
        if "mask" in body:
            body["mask"] = MASK
    elif label == "POST /v1/feedback" and isinstance(body, dict) and (image_id := known_image()):
        body["image_id"] = image_id
    elif label == "GET /v1/images/{image_id}/content" and (image_id := known_image()):
        case.path_parameters["image_id"] = image_id


def _fuzz(operation, mode: GenerationMode, count: int, check) -> None:
    """At most `count` generated requests to one operation, each through `check`."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case) -> None:
        check(case)

    send()


def _problem(response: schemathesis.Response) -> str | None:
    """What is wrong with one answer: a 5xx, a 4xx outside the error envelope, an error event in a stream."""
    if response.status_code >= 500:
        return response.text[:500]
    if 400 <= response.status_code < 500:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            return f"not the error envelope: {response.text[:300]}"
        if not isinstance(error, dict) or set(error) != ENVELOPE_KEYS:
            return f"not the error envelope: {response.text[:300]}"
        return None
    stream = any(value.startswith("text/event-stream") for value in response.headers.get("content-type", []))
    if stream and '"type": "server_error"' in response.text:
        return f"a server error event in a {response.status_code} stream: {response.text[:300]}"
    return None
