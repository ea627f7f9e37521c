"""What every enhancer backend shares: sampling settings per task, the completion it returns, its failure.

A backend is any object with `vision: bool` (it accepts images in chat messages) and
`complete(messages, sampling) -> Completion`, raising `BackendFailure` when it has no answer.
Two exist: `local.LocalBackend` (transformers) and `endpoint.EndpointBackend` (OpenAI-compatible chat).
"""

from dataclasses import dataclass
from typing import Literal, Protocol

from qwen_image2.errors import UserError

Task = Literal["t2i", "edit"]
TASKS: tuple[Task, ...] = ("t2i", "edit")


@dataclass(frozen=True)
class Sampling:
    """How one task's answer is sampled. Greedy by default, so a rewrite is reproducible.

    2.1's own PE samples (temperature 1.0, top_p 0.95, top_k 20) with 16k-24k-token thinking budgets;
    Hunyuan's PromptEnhancer decodes greedily with thinking off (reference §6.2), which is what a
    JSON answer within a few hundred tokens needs.
    """

    greedy: bool = True
    temperature: float = 1.0  # used only when not greedy, as are top_p and top_k
    top_p: float = 0.95
    top_k: int | None = 20  # endpoints: sent as vLLM's extra `top_k` (OpenAI's API has none)
    repetition_penalty: float = 1.0  # endpoints: vLLM's extra field, sent only when not 1.0
    max_new_tokens: int = 512
    # Qwen3 chat templates think unless told not to; a thinking chain does not fit 512 tokens. None sends
    # nothing (a template or endpoint without the switch).
    thinking: bool | None = False

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens {self.max_new_tokens}: must be at least 1")
        if not self.greedy and self.temperature <= 0:
            raise UserError(f"temperature {self.temperature}: must be > 0 when sampling (or greedy=True)")


# 2.1 gives edits ~1.5x the T2I budget (24000 vs 16256 new tokens): the instruction and the source
# images' content both have to be restated.
DEFAULT_SAMPLING: dict[Task, Sampling] = {
    "t2i": Sampling(max_new_tokens=512),
    "edit": Sampling(max_new_tokens=768),
}


@dataclass(frozen=True)
class Completion:
    """The model's text and why it stopped: "stop" (an end token), "length" (max_new_tokens), "time"."""

    text: str
    finish_reason: str


class BackendFailure(Exception):
    """No answer came back (timeout, connection, HTTP error); the message is the fallback's reason."""


class Backend(Protocol):
    vision: bool

    def complete(self, messages: list[dict], sampling: Sampling) -> Completion: ...
