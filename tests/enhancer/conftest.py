"""Fixtures for the enhancer tests: the tiny random enhancer folder, and a fake OpenAI-compatible server.

The fake server is a FastAPI app under uvicorn on a loopback port, in a thread of this process. The
`model` field of a request picks its behaviour: "good" (a think block, then a valid answer echoing the
prompt), "garbage" (prose with no JSON), "error" (HTTP 500), "busy" (503 with Retry-After: 120),
"reject" (400), "hang" (never answers in time), "terse" (a short paraphrase: the first quote + "poster"). Every request
body it receives is kept, so tests can assert on what the client sent.
"""

import asyncio
import json
import re

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from qwen_image2.enhancer.tiny import save_tiny_enhancer
from web_helpers import served

HANG_S = 30  # far beyond any client timeout in the tests; the server drops it at shutdown


@pytest.fixture(scope="session")
def tiny_enhancer_dir(tmp_path_factory):
    return save_tiny_enhancer(tmp_path_factory.mktemp("tiny-enhancer"), seed=0)


def _user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        content = [part["text"] for part in content if part["type"] == "text"][-1]
    return content.split("\n")[0]


def _good_answer(prompt: str) -> str:
    detail = (
        "，画面清晰，柔和的光线" if re.search("[\u4e00-\u9fff]", prompt) else ", in sharp focus, soft light"
    )
    answer = {"rewritten_prompt": prompt + detail, "aspect_ratio": "16:9"}
    return f"<think>The user wants {prompt!r}. {{draft}}</think>\n{json.dumps(answer, ensure_ascii=False)}"


def _build_app(received: list[dict]):
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        received.append(dict(body, authorization=request.headers.get("authorization")))
        model = body["model"]
        if model == "error":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
        if model == "busy":  # asks the client to come back in two minutes
            error = {"error": {"message": "overloaded", "type": "server_error"}}
            return JSONResponse(error, status_code=503, headers={"Retry-After": "120"})
        if model == "reject":  # what a text-only server says to image parts
            error = {"error": {"message": "this model takes no images", "type": "invalid_request_error"}}
            return JSONResponse(error, status_code=400)
        if model == "hang":
            await asyncio.sleep(HANG_S)
        if model == "terse":  # a casual paraphrase: the caption's first quote, then "poster"
            quotes = re.findall(r'"[^"]*"', _user_text(body))
            text = f"{quotes[0] if quotes else 'a'} poster"
        elif model == "good":
            text = _good_answer(_user_text(body))
        else:
            text = "Sure! Here is a lovely prompt {oops"
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }

    return app


class FakeEndpoint:
    def __init__(self, url: str, received: list[dict]):
        self.url, self.received = url, received


@pytest.fixture(scope="session")
def fake_server():
    received: list[dict] = []
    with served(_build_app(received), timeout_graceful_shutdown=1) as url:
        yield FakeEndpoint(f"{url}/v1", received)


@pytest.fixture
def endpoint(fake_server):
    """The fake server with an empty request log."""
    fake_server.received.clear()
    return fake_server
