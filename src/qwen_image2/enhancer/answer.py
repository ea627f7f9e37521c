"""Reading a model's answer under the 2.1 contract: the last balanced JSON object after any thinking.

2.1's `pe_core.py` (reference/serving_enhancer_rl_distill.md §6.1) splits off the thinking at `</think>`,
scans for balanced `{...}` (braces inside strings do not count), tries the candidates last-first with strict
`json.loads` and then `json_repair`, and accepts its own key typo `rewrited_prompt`. We do the same and
also accept 2.1's `wh_ratio` for our `aspect_ratio`.
"""

import json
from dataclasses import dataclass

import json_repair

from qwen_image2.enhancer.canvas import normalise_ratio

PROMPT_KEYS = ("rewritten_prompt", "rewrited_prompt")
RATIO_KEYS = ("aspect_ratio", "wh_ratio")
MAX_CANDIDATES = 64


@dataclass(frozen=True)
class Answer:
    """What the answer says. `prompt` is None when nothing usable was found, and `problem` says why."""

    prompt: str | None
    aspect_ratio: str | None  # a table key; None when missing or not in the table
    ratio_follow: str | None  # 2.1 edit: "<imageK>", the source image whose shape the output keeps
    repaired: bool  # json_repair was needed (strict JSON is what a GRPO validity reward wants)
    problem: str | None


def split_thinking(text: str) -> tuple[str, str | None]:
    """(answer, problem): the text after the last `</think>`; an unterminated `<think>` leaves no answer.

    Qwen3 templates open `<think>` in the prompt, so a generated text may hold only the closing tag.

    >>> split_thinking("<think>plan {x}</think> {\\"a\\": 1}")
    (' {"a": 1}', None)
    >>> split_thinking("<think>still planning")
    ('', 'the thinking did not finish (token or time budget hit)')
    """
    answer = text.rsplit("</think>", 1)[-1]
    if "<think>" in answer:
        return "", "the thinking did not finish (token or time budget hit)"
    return answer, None


def _closing(text: str, start: int) -> int | None:
    """The index of the `}` that closes the `{` at `start` (braces inside strings do not count), or None."""
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def balanced_objects(text: str, limit: int = MAX_CANDIDATES) -> list[str]:
    """The balanced `{...}` starting at each of the last `limit` opening braces, last start first.

    Every `{` is a possible start, nested ones too: a brace or a stray quote in the prose before the
    answer then cannot swallow it. The limit keeps a brace-filled garbage answer linear in its length.

    >>> balanced_objects('say {"a": "}"} and {"b": {"c": 1}} {unclosed')
    ['{"c": 1}', '{"b": {"c": 1}}', '{"a": "}"}']
    """
    starts = [index for index, char in enumerate(text) if char == "{"][-limit:]
    found = []
    for start in reversed(starts):
        end = _closing(text, start)
        if end is not None:
            found.append(text[start : end + 1])
    return found


def _load(candidate: str) -> tuple[dict | None, bool]:
    """(object, repaired): strict JSON first, then json_repair; None when neither gives an object."""
    try:
        value = json.loads(candidate)
        return (value, False) if isinstance(value, dict) else (None, False)
    except json.JSONDecodeError:
        pass
    value = json_repair.loads(candidate)
    return (value, True) if isinstance(value, dict) else (None, True)


def _first_text(value: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if isinstance(value.get(key), str) and value[key].strip():
            return value[key].strip()
    return None


def parse_answer(text: str) -> Answer:
    """The last balanced JSON object of the answer that carries a non-empty rewritten prompt.

    >>> parse_answer('<think>...</think>{"rewritten_prompt": "A red fox.", "aspect_ratio": "16:9"}')
    Answer(prompt='A red fox.', aspect_ratio='16:9', ratio_follow=None, repaired=False, problem=None)
    """
    answer, problem = split_thinking(text)
    if problem is not None:
        return Answer(None, None, None, False, problem)
    candidates = balanced_objects(answer)
    if not candidates:
        return Answer(None, None, None, False, "no JSON object in the answer")
    for candidate in candidates:
        value, repaired = _load(candidate)
        if value is None:
            continue
        prompt = _first_text(value, PROMPT_KEYS)
        if prompt is None:
            continue
        ratio = normalise_ratio(_first_text(value, RATIO_KEYS))
        return Answer(prompt, ratio, _first_text(value, ("ratio_follow",)), repaired, None)
    return Answer(None, None, None, False, "no JSON object with a non-empty rewritten_prompt")
