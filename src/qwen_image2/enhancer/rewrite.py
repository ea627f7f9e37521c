"""`PromptEnhancer.rewrite`: one interface over every backend, and the fallback that makes it safe.

A rewrite never raises for what the model does: any failure (an exception, a timeout, an unparsable or
empty answer, a broken rule from constraints.py) returns the original prompt with `parse_ok` False and
the reason (Hunyuan's reprompt falls back the same way, reference §6.2). There is no retry on a bad
answer: greedy decoding would repeat it; transport retries are the endpoint client's, bounded.
Only a caller's mistake (an empty prompt, an unknown mode) raises, as a UserError.
"""

import time
from dataclasses import dataclass, field

from PIL import Image

from qwen_image2.enhancer.answer import parse_answer
from qwen_image2.enhancer.backend import DEFAULT_SAMPLING, TASKS, Backend, BackendFailure, Sampling, Task
from qwen_image2.enhancer.canvas import DEFAULT_RATIO, TABLE_SIDE, nearest_ratio, size_for
from qwen_image2.enhancer.constraints import broken_rule, language_of
from qwen_image2.enhancer.messages import build_messages
from qwen_image2.errors import UserError


@dataclass(frozen=True)
class Rewrite:
    """What the enhancer made of a prompt. On a fallback, `rewritten_prompt` is the original prompt."""

    rewritten_prompt: str
    aspect_ratio: str  # a key of canvas.SIZES (2.1's wh_ratio), e.g. "16:9"
    size: tuple[int, int]  # (width, height) of that ratio, multiples of 32
    parse_ok: bool
    reason: str | None  # None, or why the original prompt came back
    latency_s: float
    raw: str  # the model's text ("" when none came back)


def default_ratio(task: Task, images: list[Image.Image]) -> str:
    """T2I: 2.1's 1:1. Edit: the shape of <image1>, as 2.1's `ratio_follow` and our pipeline do."""
    if task == "edit" and images:
        return nearest_ratio(*images[0].size)
    return DEFAULT_RATIO


def _followed_ratio(follow: str | None, images: list[Image.Image]) -> str | None:
    """The ratio of the image 2.1's `ratio_follow` names ("<image2>"), when there is such an image."""
    if not follow:
        return None
    digits = "".join(char for char in follow if char.isdigit())
    index = int(digits) - 1 if digits else -1
    return nearest_ratio(*images[index].size) if 0 <= index < len(images) else None


@dataclass
class PromptEnhancer:
    """A backend, the sampling per task, and the canvas scale (`canvas_side`: 1:1 is side x side)."""

    backend: Backend
    sampling: dict[Task, Sampling] = field(default_factory=lambda: dict(DEFAULT_SAMPLING))
    canvas_side: int = TABLE_SIDE

    def __post_init__(self):
        self.sampling = {**DEFAULT_SAMPLING, **self.sampling}  # a task left out keeps its default

    def rewrite(self, prompt: str, images: list[Image.Image] = (), mode: Task = "t2i") -> Rewrite:
        """The rewritten prompt and its canvas, or the original prompt and the reason it came back."""
        if mode not in TASKS:
            raise UserError(f"mode {mode!r}: choose one of {', '.join(TASKS)}")
        if not prompt or not prompt.strip():
            raise UserError("the prompt is empty: give the text to rewrite")
        images = list(images)
        if images and mode != "edit":
            raise UserError("source images are read in edit mode only (mode='edit')")
        start = time.perf_counter()
        fallback_ratio = default_ratio(mode, images)

        def result(text: str, ratio: str, ok: bool, reason: str | None, raw: str) -> Rewrite:
            size = size_for(ratio, self.canvas_side)
            return Rewrite(text, ratio, size, ok, reason, time.perf_counter() - start, raw)

        try:
            lang = language_of(prompt) or "en"
            messages = build_messages(prompt, images, mode, self.backend.vision, lang)
            completion = self.backend.complete(messages, self.sampling[mode])
        except BackendFailure as failure:
            return result(prompt, fallback_ratio, False, str(failure), "")
        except Exception as error:  # a rewrite must not take the caller down with it
            return result(prompt, fallback_ratio, False, f"{type(error).__name__}: {error}", "")
        answer = parse_answer(completion.text)
        if answer.prompt is None:
            reason = answer.problem
            if completion.finish_reason == "time":
                reason = f"timed out before a complete answer ({reason})"
            elif completion.finish_reason == "length":
                reason = f"{reason} (the answer was cut at max_new_tokens)"
            return result(prompt, fallback_ratio, False, reason, completion.text)
        broken = broken_rule(prompt, answer.prompt)
        if broken is not None:
            return result(prompt, fallback_ratio, False, broken, completion.text)
        ratio = answer.aspect_ratio or _followed_ratio(answer.ratio_follow, images) or fallback_ratio
        return result(answer.prompt, ratio, True, None, completion.text)
