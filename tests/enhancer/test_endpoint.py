"""The endpoint backend through the real `openai` client against a fake server on 127.0.0.1 (conftest.py):
it answers well, answers garbage, fails with 500, hangs, or is not there; every case returns within its
time bound, with the original prompt where it failed. Edit requests carry images or their OCR'd text."""

import base64
import io
import socket
import time

from PIL import Image, ImageDraw

from qwen_image2.data.synthetic.fonts import available_fonts, load_font
from qwen_image2.enhancer.backend import Sampling
from qwen_image2.enhancer.loading import load_enhancer

TIMEOUT_S = 1.0
RETRIES = 1
# endpoint.RETRY_DELAYS_S[0] (0.25 s) and what the rest of the call may add on a busy CPU.
SLACK_S = 2.0
BOUND_S = (1 + RETRIES) * TIMEOUT_S + SLACK_S
PROMPT = 'a poster that reads "HELLO"'


def enhancer_for(url: str, model: str, **options):
    return load_enhancer(url, model=model, timeout_s=TIMEOUT_S, max_retries=RETRIES, **options)


def timed(enhancer, *args):
    start = time.perf_counter()
    result = enhancer.rewrite(*args)
    return result, time.perf_counter() - start


def test_a_good_answer_is_parsed_and_the_request_is_greedy_with_thinking_off(endpoint):
    result, wall = timed(enhancer_for(endpoint.url, "good"), PROMPT)
    assert result.parse_ok and result.reason is None and wall < BOUND_S
    assert result.rewritten_prompt == PROMPT + ", in sharp focus, soft light"
    assert (result.aspect_ratio, result.size) == ("16:9", (2752, 1536))
    assert result.raw.startswith("<think>")
    [body] = endpoint.received
    assert body["model"] == "good" and body["temperature"] == 0.0 and body["max_tokens"] == 512
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and "top_k" not in body
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == PROMPT


def test_a_chinese_prompt_comes_back_in_chinese(endpoint):
    result, _ = timed(enhancer_for(endpoint.url, "good"), "一张海报，上面写着“你好”")
    assert result.parse_ok and result.rewritten_prompt.startswith("一张海报，上面写着“你好”")


def test_a_garbage_answer_falls_back(endpoint):
    result, wall = timed(enhancer_for(endpoint.url, "garbage"), PROMPT)
    assert wall < BOUND_S
    assert (result.rewritten_prompt, result.parse_ok) == (PROMPT, False)
    assert result.reason == "no JSON object in the answer" and "lovely prompt" in result.raw


def test_a_server_error_is_retried_a_bounded_number_of_times_then_falls_back(endpoint):
    result, wall = timed(enhancer_for(endpoint.url, "error"), PROMPT)
    assert wall < BOUND_S
    assert (result.rewritten_prompt, result.parse_ok) == (PROMPT, False)
    assert result.reason.startswith("endpoint answered HTTP 500 (2 attempt(s))")
    assert len(endpoint.received) == 1 + RETRIES


def test_a_server_asking_to_retry_in_two_minutes_is_not_waited_for(endpoint):
    # The openai client would sleep for the Retry-After (up to 120 s); our retry loop does not.
    result, wall = timed(enhancer_for(endpoint.url, "busy"), PROMPT)
    assert wall < BOUND_S
    assert not result.parse_ok and result.reason.startswith("endpoint answered HTTP 503 (2 attempt(s))")


def test_a_client_error_is_not_retried(endpoint):
    result, _ = timed(
        enhancer_for(endpoint.url, "reject"), "make it blue", [Image.new("RGB", (32, 32))], "edit"
    )
    assert not result.parse_ok and result.reason.startswith("endpoint answered HTTP 400 (1 attempt(s))")
    assert "this model takes no images" in result.reason and len(endpoint.received) == 1


def test_a_hanging_server_times_out_and_falls_back(endpoint):
    result, wall = timed(enhancer_for(endpoint.url, "hang"), PROMPT)
    assert wall < BOUND_S
    assert (result.rewritten_prompt, result.parse_ok) == (PROMPT, False)
    assert result.reason == "endpoint timed out after 1 s (2 attempt(s))"


def test_an_unreachable_endpoint_falls_back():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    result, wall = timed(enhancer_for(f"http://127.0.0.1:{port}/v1", "good"), PROMPT)
    assert wall < BOUND_S
    assert not result.parse_ok and result.reason.startswith("endpoint unreachable")


def test_sampling_settings_are_sent_as_openai_and_vllm_fields(endpoint):
    sampling = {"t2i": Sampling(greedy=False, temperature=0.7, top_p=0.9, top_k=20, thinking=None)}
    timed(enhancer_for(endpoint.url, "good", sampling=sampling), PROMPT)
    [body] = endpoint.received
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.7, 0.9, 20)
    assert "chat_template_kwargs" not in body and "repetition_penalty" not in body


def poster(word: str, size=(480, 160)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((30, 40), word, fill="black", font=load_font(available_fonts("en")[0], 64))
    return image


def test_a_vision_endpoint_gets_the_source_images_as_data_urls_in_order(endpoint):
    images = [poster("HELLO"), Image.new("RGBA", (64, 96), (255, 0, 0, 128))]
    result, _ = timed(enhancer_for(endpoint.url, "good"), 'change "HELLO" to "WORLD"', images, "edit")
    assert result.parse_ok
    [body] = endpoint.received
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert [parts[0]["text"], parts[2]["text"], parts[4]["text"]] == [
        "<image1>:",
        "<image2>:",
        'change "HELLO" to "WORLD"',
    ]
    assert body["max_tokens"] == 768  # the edit task's own sampling
    for part, image in zip((parts[1], parts[3]), images, strict=True):
        header, data = part["image_url"]["url"].split(",", 1)
        assert header == "data:image/png;base64"
        decoded = Image.open(io.BytesIO(base64.b64decode(data)))
        assert decoded.size == image.size and decoded.mode == image.mode


def test_a_text_only_endpoint_gets_the_ocr_text_instead_of_images(endpoint):
    timed(
        enhancer_for(endpoint.url, "good", vision=False),
        'change "HELLO" to "WORLD"',
        [poster("HELLO")],
        "edit",
    )
    [body] = endpoint.received
    content = body["messages"][1]["content"]
    assert isinstance(content, str) and "image_url" not in str(body)
    assert content == 'change "HELLO" to "WORLD"\n\nText read from <image1>: "HELLO"'


def test_large_source_images_are_shrunk_to_2_1s_pixel_cap(endpoint):
    timed(enhancer_for(endpoint.url, "good"), "make it blue", [Image.new("RGB", (2048, 1024))], "edit")
    url = endpoint.received[0]["messages"][1]["content"][1]["image_url"]["url"]
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.width * decoded.height <= 1024 * 1024 and decoded.width == 2 * decoded.height


def test_the_api_key_is_sent_and_defaults_to_the_environment_then_a_placeholder(endpoint, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    timed(enhancer_for(endpoint.url, "good"), PROMPT)  # vLLM without --api-key takes any key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    timed(enhancer_for(endpoint.url, "good"), PROMPT)
    timed(enhancer_for(endpoint.url, "good", api_key="sk-given"), PROMPT)
    sent = [body["authorization"] for body in endpoint.received]
    assert sent == ["Bearer EMPTY", "Bearer sk-env", "Bearer sk-given"]
