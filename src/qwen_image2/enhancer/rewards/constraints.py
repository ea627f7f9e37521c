"""Rewards on the answer's text alone: strict JSON, quoted text kept and none invented, length, language.

Each takes the answers' texts and the users' prompts (the rows' `prompt`) and gives one score in [0, 1]
per answer. An answer with no usable rewrite scores 0 on every rule: a rule it "keeps" by saying nothing
must not pay. Only `json_valid_reward` tells strict JSON from JSON that json_repair had to fix: the
enhancer serves repaired answers, but a policy should learn to need no repair.
"""

from qwen_image2.enhancer.answer import parse_answer
from qwen_image2.enhancer.constraints import language_of, missing_quotes, quoted_spans


def rewrite_of(answer: str) -> str | None:
    """The rewritten prompt an answer carries (repaired JSON too), or None."""
    return parse_answer(answer).prompt


def json_valid_reward(answers: list[str]) -> list[float]:
    """1 for strict JSON with a non-empty rewritten_prompt, else 0.

    >>> json_valid_reward(['{"rewritten_prompt": "A fox."}', "{'rewritten_prompt': 'A fox.'}", "a fox"])
    [1.0, 0.0, 0.0]
    """
    scores = []
    for answer in answers:
        parsed = parse_answer(answer)
        scores.append(float(parsed.prompt is not None and not parsed.repaired))
    return scores


def quotes_kept_reward(answers: list[str], user_prompts: list[str]) -> list[float]:
    """The share of the request's quoted spans the rewrite holds verbatim (1 when it quotes nothing).

    >>> quotes_kept_reward(['{"rewritten_prompt": "A sign reading \\\\"OPEN\\\\"."}'] * 2, ['"OPEN" "SHUT"', "a sign"])
    [0.5, 1.0]
    """
    scores = []
    for answer, prompt in zip(answers, user_prompts, strict=True):
        rewrite, spans = rewrite_of(answer), quoted_spans(prompt)
        if rewrite is None:
            scores.append(0.0)
        else:
            scores.append(1.0 - len(missing_quotes(prompt, rewrite)) / len(spans) if spans else 1.0)
    return scores


def no_invented_quotes_reward(
    answers: list[str], user_prompts: list[str], texts: list[list[str]]
) -> list[float]:
    """1 when every quoted span of the rewrite is text the user asked for (quoted in the request, or one of
    the row's `texts`), else 0: the generator paints quoted text, so an invented one is an unasked-for sign.

    >>> no_invented_quotes_reward(['{"rewritten_prompt": "A \\\\"SALE\\\\" sign."}'], ["a sign"], [[]])
    [0.0]
    """
    scores = []
    for answer, prompt, wanted in zip(answers, user_prompts, texts, strict=True):
        rewrite = rewrite_of(answer)
        if rewrite is None:
            scores.append(0.0)
            continue
        allowed = set(quoted_spans(prompt)) | set(wanted or [])
        invented = [span for span in quoted_spans(rewrite) if span not in allowed]
        scores.append(0.0 if invented else 1.0)
    return scores


def length_reward(answers: list[str], min_words: int, max_words: int) -> list[float]:
    """1 inside [min_words, max_words] words (a Chinese character counts as a word), falling linearly to 0
    at half the minimum and at twice the maximum, so that a group's near misses still rank.

    >>> length_reward(['{"rewritten_prompt": "a b c d"}', '{"rewritten_prompt": "a b"}', "x"], 4, 10)
    [1.0, 0.0, 0.0]
    """
    scores = []
    for answer in answers:
        rewrite = rewrite_of(answer)
        if rewrite is None:
            scores.append(0.0)
            continue
        words = len(rewrite.split()) + sum("\u4e00" <= char <= "\u9fff" for char in rewrite)
        if words < min_words:
            scores.append(max(0.0, (words - min_words / 2) / (min_words / 2)))
        elif words > max_words:
            scores.append(max(0.0, 1.0 - (words - max_words) / max_words))
        else:
            scores.append(1.0)
    return scores


def language_reward(answers: list[str], user_prompts: list[str]) -> list[float]:
    """1 when the rewrite is in the request's language (or either has none, e.g. digits only), else 0.

    >>> language_reward(['{"rewritten_prompt": "一只红色的狐狸"}', '{"rewritten_prompt": "a red fox"}'], ["a fox"] * 2)
    [0.0, 1.0]
    """
    scores = []
    for answer, prompt in zip(answers, user_prompts, strict=True):
        rewrite = rewrite_of(answer)
        if rewrite is None:
            scores.append(0.0)
            continue
        before, after = language_of(prompt), language_of(rewrite)
        scores.append(float(before is None or after is None or before == after))
    return scores
