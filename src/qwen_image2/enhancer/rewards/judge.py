"""The MLLM judge: asked whether the image fulfils the user's ORIGINAL request (not the rewrite, which is
what is being judged), its answer read as a score in [0, 1].

Two judges share `verdict(image, request) -> str` (raising on failure): `EndpointJudge` (any
OpenAI-compatible VLM server, through the `openai` client, bounded like enhancer/endpoint.py) and
`LocalJudge` (a Qwen3-VL folder through transformers). `judge_reward` turns answers into scores; an
answer that cannot be read, or a judge that fails, scores 0 and is counted in `failures`.
"""

import re
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from qwen_image2.enhancer.messages import data_url

QUESTION = (
    "Here is a request a user gave an image generator, and the image it made.\n"
    "Request: {request}\n"
    "Does the image fulfil the request (every stated text, colour and subject)? "
    "Answer with one word, yes or no, or with a score from 0 to 10."
)


def parse_verdict(text: str) -> float | None:
    """yes -> 1, no -> 0, "7/10" or "7" -> 0.7, "0.7" -> 0.7; None when the answer says none of these.

    >>> [parse_verdict(t) for t in ("Yes.", "no, the text is wrong", "Score: 7/10", "0.25", "maybe", "42")]
    [1.0, 0.0, 0.7, 0.25, None, None]
    """
    words = re.findall(r"[a-z]+", text.lower())
    if words and words[0] in ("yes", "no"):
        return 1.0 if words[0] == "yes" else 0.0
    match = re.search(r"(\d+(?:\.\d+)?)\s*(?:/\s*10)?", text)
    if match is None:
        return None
    value = float(match[1])
    if "/" in match[0] or 1.0 < value <= 10.0:
        return value / 10.0 if value <= 10.0 else None
    return value if 0.0 <= value <= 1.0 else None


class Judge(Protocol):
    def verdict(self, image: Image.Image, request: str) -> str: ...


class EndpointJudge:
    """A VLM behind an OpenAI-compatible chat endpoint; greedy, a few tokens, `timeout_s` per call, no
    retries (a judge that is down scores 0 for this step; the run goes on)."""

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY", timeout_s: float = 30.0):
        import openai

        self.model = model
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)

    def verdict(self, image: Image.Image, request: str) -> str:
        content = [
            {"type": "image_url", "image_url": {"url": data_url(image)}},
            {"type": "text", "text": QUESTION.format(request=request)},
        ]
        response = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": content}], temperature=0.0, max_tokens=8
        )
        return response.choices[0].message.content or ""


class LocalJudge:
    """A Qwen3-VL model and processor (transformers), answering greedily in a few tokens."""

    def __init__(self, model, processor, max_new_tokens: int = 8):
        self.model, self.processor, self.max_new_tokens = model.eval(), processor, max_new_tokens

    def verdict(self, image: Image.Image, request: str) -> str:
        import torch

        messages = [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": QUESTION.format(request=request)}],
            }
        ]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], images=[image.convert("RGB")], return_tensors="pt")
        inputs = inputs.to(self.model.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new[None], skip_special_tokens=True)[0]


def load_local_judge(folder) -> LocalJudge:
    """A LocalJudge from a Qwen3-VL transformers folder (e.g. Qwen/Qwen3-VL-8B-Instruct)."""
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    return LocalJudge(
        Qwen3VLForConditionalGeneration.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    )


@dataclass
class JudgeScores:
    scores: list[float | None]
    failures: int  # judged images whose verdict failed or could not be read (scored 0)


def judge_reward(images: list[Image.Image | None], requests: list[str], judge: Judge) -> JudgeScores:
    """One score per image: the parsed verdict; 0 for a missing image, a failed call or an unreadable
    answer (each of the last two counted)."""
    scores: list[float | None] = []
    failures = 0
    for image, request in zip(images, requests, strict=True):
        if image is None:
            scores.append(0.0)
            continue
        try:
            score = parse_verdict(judge.verdict(image, request))
        except Exception:  # any transport or model error: this image's judgement is lost, not the run
            score = None
        failures += score is None
        scores.append(0.0 if score is None else score)
    return JudgeScores(scores, failures)
