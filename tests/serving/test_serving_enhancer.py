"""A prompt enhancer in front of the server: `revised_prompt` carries its rewrite, `size=auto` takes its
canvas, and a failed rewrite leaves the request as it came (the enhancer's fallback)."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI, Request
from openai import OpenAI

from qwen_image2.enhancer.loading import load_enhancer
from web_helpers import served

DETAIL = ", bold black letters on a flat white background"


def chat_app() -> FastAPI:
    """An OpenAI-compatible chat endpoint: a 16:9 rewrite, or garbage when the prompt asks for it."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        content = body["messages"][-1]["content"]
        text = (
            content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")
        )
        prompt = text.split("\n")[0]
        answer = (
            "no json here {"
            if "garbage" in prompt
            else json.dumps({"rewritten_prompt": prompt + DETAIL, "aspect_ratio": "16:9"})
        )
        message = {"role": "assistant", "content": answer}
        return {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }

    return app


@pytest.fixture(scope="module")
def chat_url():
    with served(chat_app()) as url:
        yield f"{url}/v1"


def test_revised_prompt_and_canvas_come_from_the_enhancer(live_server, chat_url):
    url = live_server(enhancer=chat_url, enhancer_model="pe")
    client = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    result = client.images.generate(model="demo", prompt='a poster that says "HI"', extra_body={"seed": 0})
    assert result.data[0].revised_prompt == 'a poster that says "HI"' + DETAIL
    assert result.size == "160x96"  # 2.1's 16:9 canvas at the demo model's 128 side
    plain = client.images.generate(
        model="demo",
        prompt='a poster that says "HI"' + DETAIL,
        size="160x96",
        extra_body={"seed": 0, "enhance_prompt": False},
    )
    assert plain.data[0].b64_json == result.data[0].b64_json  # the image is the rewrite's
    assert plain.data[0].revised_prompt is None
    row = httpx.get(f"{url}/v1/history").json()["data"][1]
    assert row["prompt"] == 'a poster that says "HI"' and row["revised_prompt"].endswith(DETAIL)


def test_a_failed_rewrite_or_enhance_prompt_false_keeps_the_prompt(live_server, chat_url):
    enhancer = load_enhancer(chat_url, model="pe", timeout_s=5)
    url = live_server(enhancer_model="pe", workers=None)
    live_server.app.state.enhancer = enhancer
    client = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    garbage = client.images.generate(
        model="tiny", prompt="garbage please", size="32x32", extra_body={"num_inference_steps": 1}
    )
    assert garbage.data[0].revised_prompt is None
    off = client.images.generate(
        model="tiny",
        prompt="a cat",
        extra_body={"enhance_prompt": False, "num_inference_steps": 1, "seed": 1},
        size="32x32",
    )
    assert off.data[0].revised_prompt is None


def test_enhance_prompt_without_an_enhancer_is_a_400(live_server):
    url = live_server()
    response = httpx.post(
        f"{url}/v1/images/generations", json={"prompt": "a cat", "model": "tiny", "enhance_prompt": True}
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "enhance_prompt"
