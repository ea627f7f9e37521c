"""The official `openai` client against a real server on 127.0.0.1: generations, edits, streams, URLs, and
the same bytes as `qwen-image2 generate`, batched or alone."""

from __future__ import annotations

import base64
import io
import re
import threading
import time

import httpx
import numpy as np
import pytest
from openai import OpenAI
from PIL import Image
from serving_helpers import DEMO, DEMO_PROMPT

SAMPLING = {"seed": 0, "num_inference_steps": 20, "guidance_scale": 2, "negative_prompt": ""}


def png_file(color, size=(96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def wait_for(url, condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition(httpx.get(f"{url}/health").json()):
        assert time.monotonic() < deadline, "the server never reached the state the test waits for"
        time.sleep(0.01)


@pytest.fixture
def server(live_server):
    url = live_server()
    return url, OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def test_generate_gives_the_bytes_of_qwen_image2_generate(server, cli, tmp_path):
    _, client = server
    result = client.images.generate(model="demo", prompt=DEMO_PROMPT, size="128x128", extra_body=SAMPLING)
    out = tmp_path / "cli.png"
    code, captured = cli(
        [
            "generate",
            DEMO_PROMPT,
            "--model",
            str(DEMO),
            "--size",
            "128x128",
            "--steps",
            "20",
            "--seed",
            "0",
            "--guidance",
            "2",
            "--negative-prompt",
            "",
            "--out",
            str(out),
        ]
    )
    assert code == 0, captured.err
    assert base64.b64decode(result.data[0].b64_json) == out.read_bytes()
    assert result.size == "128x128" and result.output_format == "png" and result.quality == "high"
    assert result.usage.output_tokens == 64 and result.usage.input_tokens_details.text_tokens > 10


def test_url_responses_serve_the_same_image_from_the_store(server):
    url, client = server
    common = dict(model="demo", prompt="a cat", size="128x128", n=2, extra_body={"seed": 5})
    by_url = client.images.generate(response_format="url", **common)
    inline = client.images.generate(**common)
    assert len(by_url.data) == 2
    for item, b64 in zip(by_url.data, inline.data, strict=True):
        assert item.url.startswith(url) and item.b64_json is None
        fetched = httpx.get(item.url)
        assert fetched.headers["content-type"] == "image/png"
        assert fetched.content == base64.b64decode(b64.b64_json)
    assert by_url.data[0].url != by_url.data[1].url


@pytest.mark.parametrize("count", [1, 3])
def test_edit_with_one_and_three_images(server, count):
    _, client = server
    images = [(f"in{i}.png", png_file((40 * i, 100, 200)), "image/png") for i in range(count)]
    result = client.images.edit(
        model="demo", prompt="make it red", image=images if count > 1 else images[0], extra_body={"seed": 1}
    )
    picture = decode(result.data[0].b64_json)
    # The output takes the last image's aspect (3:2) at the model's side (128²): 160x96.
    assert picture.size == (160, 96) and result.size == "160x96"
    assert result.usage.input_tokens_details.image_tokens == count * 60


def test_a_different_seed_or_image_changes_the_edit(server):
    _, client = server

    def edit(color, seed):
        image = ("in.png", png_file(color), "image/png")
        return (
            client.images.edit(model="demo", prompt="x", image=image, extra_body={"seed": seed})
            .data[0]
            .b64_json
        )

    assert edit((10, 10, 10), 1) == edit((10, 10, 10), 1)
    assert edit((10, 10, 10), 1) != edit((10, 10, 10), 2)
    assert edit((10, 10, 10), 1) != edit((250, 250, 250), 1)


def test_streams_send_partials_from_x0_then_the_completed_image(server):
    _, client = server
    events = list(
        client.images.generate(
            model="demo",
            prompt=DEMO_PROMPT,
            size="128x128",
            stream=True,
            partial_images=2,
            extra_body=SAMPLING,
        )
    )
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    final = client.images.generate(model="demo", prompt=DEMO_PROMPT, size="128x128", extra_body=SAMPLING)
    assert events[-1].b64_json == final.data[0].b64_json and events[-1].usage.output_tokens == 64
    # The previews are images of the prompt's layout, nearer the result the later they come.
    previews = [np.asarray(decode(e.b64_json).convert("L"), dtype=float) for e in events]
    assert np.abs(previews[1] - previews[2]).mean() < np.abs(previews[0] - previews[2]).mean()

    edit_events = list(
        client.images.edit(
            model="demo",
            prompt="make it blue",
            image=("a.png", png_file((200, 0, 0)), "image/png"),
            stream=True,
            partial_images=1,
        )
    )
    assert [e.type for e in edit_events] == ["image_edit.partial_image", "image_edit.completed"]


def test_requests_waiting_together_are_batched_and_get_the_bytes_they_get_alone(live_server):
    url = live_server(max_batch=8)
    client = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    prompts = ["a red cat", "a blue dog", "a green fox"]  # one encoded length: one batch

    def ask(prompt, seed, size="128x128", steps=20):
        extra = {"seed": seed, "num_inference_steps": steps}
        return (
            client.images.generate(model="demo", prompt=prompt, size=size, extra_body=extra).data[0].b64_json
        )

    # A long request holds the worker while the three arrive and wait together.
    blocker = threading.Thread(target=ask, args=("a wide poster", 9, "512x512", 40))
    blocker.start()
    wait_for(url, lambda health: health["running"] == 1)
    together: dict[int, str] = {}
    threads = [
        threading.Thread(target=lambda i=i, p=p: together.__setitem__(i, ask(p, i)))
        for i, p in enumerate(prompts)
    ]
    for thread in threads:
        thread.start()
    wait_for(url, lambda health: health["queue"] == 3 and health["running"] == 1)
    for thread in [blocker, *threads]:
        thread.join()
    metrics = httpx.get(f"{url}/metrics").text
    assert re.search(r'qwen_image2_batch_images_bucket\{le="2.0"\} 1.0', metrics), (
        metrics
    )  # only the blocker alone
    assert "qwen_image2_batch_images_count 2.0" in metrics  # blocker, then the three in one batch
    alone = {i: ask(p, i) for i, p in enumerate(prompts)}
    assert together == alone


def test_mask_keeps_the_source_outside_the_changed_region(server):
    _, client = server
    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    mask = Image.new("RGBA", (128, 128), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (32, 32, 96, 96))  # transparent: change here
    files = []
    for picture in (source, mask):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        files.append(buffer.getvalue())
    result = client.images.edit(
        model="demo", prompt="a cat", image=("s.png", files[0]), mask=("m.png", files[1])
    )
    out = np.asarray(decode(result.data[0].b64_json).convert("RGB"))
    kept = np.asarray(source)
    assert (out[:32] == kept[:32]).all() and (out[:, 100:] == kept[:, 100:]).all()
    assert (out[40:90, 40:90] != kept[40:90, 40:90]).any()


@pytest.mark.parametrize(
    ("output_format", "background", "mode"),
    [("png", "auto", "RGB"), ("png", "opaque", "RGB"), ("jpeg", "auto", "RGB"), ("webp", "auto", "RGB")],
)
def test_output_formats(server, output_format, background, mode):
    _, client = server
    result = client.images.generate(
        model="demo",
        prompt="a cat",
        size="64x64",
        output_format=output_format,
        background=background,
        output_compression=80,
        extra_body={"num_inference_steps": 2},
    )
    picture = decode(result.data[0].b64_json)
    assert picture.format == output_format.upper() and picture.mode == mode and picture.size == (64, 64)
    assert result.output_format == output_format


def test_quality_sets_the_steps_and_the_history_records_them(server):
    url, client = server
    client.images.generate(model="tiny", prompt="a cat", size="32x32", quality="low", user="u1")
    rows = httpx.get(f"{url}/v1/history", params={"user": "u1"}).json()["data"]
    assert rows[0]["settings"]["steps"] == 5 and rows[0]["model"] == "tiny"  # a quarter of 20


def test_models_health_and_metrics(server):
    url, client = server
    assert [m.id for m in client.models.list()] == ["demo", "tiny"]
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["workers"] == 1
    client.images.generate(model="tiny", prompt="a cat", size="32x32", extra_body={"num_inference_steps": 1})
    with pytest.raises(Exception, match="multiples of 32"):
        client.images.generate(model="tiny", prompt="a cat", size="33x32")
    metrics = httpx.get(f"{url}/metrics").text
    for name in ("qwen_image2_queue_depth", "qwen_image2_request_seconds_bucket", "qwen_image2_batch_images"):
        assert name in metrics
    assert 'qwen_image2_images_total{model="tiny"} 1.0' in metrics
    assert 'qwen_image2_errors_total{code="400"} 1.0' in metrics
