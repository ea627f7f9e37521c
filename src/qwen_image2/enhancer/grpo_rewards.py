"""The reward functions of a GRPO run in TRL's signature, `(prompts, completions, **row columns)`, with their
weights (TRL's `reward_weights`), from the recipe's `rewards` weights.

A reward with weight 0 is left out, so its scorer need not exist; one with a weight and no scorer is a
UserError (grpo_config.check_inputs). The dataset columns are grpo.ROW_COLUMNS: `row_id`, `user_prompt`,
`lang`, `texts`, `requested` (JSON text: a dataset column cannot hold dicts of varying keys).
"""

import json
from collections.abc import Callable

from qwen_image2.enhancer.grpo_config import GRPOConfig
from qwen_image2.enhancer.rewards import aesthetic, colour, constraints, judge, text
from qwen_image2.enhancer.rollout import Rollout

RewardFunc = Callable[..., list[float | None]]


def completion_texts(completions: list) -> list[str]:
    """A completion's text: TRL gives conversational completions as [{"role": "assistant", "content": ...}].

    >>> completion_texts([[{"role": "assistant", "content": "{}"}], "plain"])
    ['{}', 'plain']
    """
    return [c if isinstance(c, str) else "".join(m["content"] for m in c) for c in completions]


def _named(name: str, function: RewardFunc) -> RewardFunc:
    function.__name__ = name  # TRL logs rewards/<name>/mean
    return function


def text_rewards(config: GRPOConfig) -> dict[str, RewardFunc]:
    length = config.length

    def json_valid(prompts, completions, **_):
        return constraints.json_valid_reward(completion_texts(completions))

    def quotes_kept(prompts, completions, user_prompt, **_):
        return constraints.quotes_kept_reward(completion_texts(completions), user_prompt)

    def length_reward(prompts, completions, **_):
        return constraints.length_reward(completion_texts(completions), length.min_words, length.max_words)

    def language(prompts, completions, user_prompt, **_):
        return constraints.language_reward(completion_texts(completions), user_prompt)

    def no_invented_quotes(prompts, completions, user_prompt, texts, **_):
        return constraints.no_invented_quotes_reward(completion_texts(completions), user_prompt, texts)

    return {
        "json_valid": json_valid,
        "quotes_kept": quotes_kept,
        "length": _named("length", length_reward),
        "language": language,
        "no_invented_quotes": no_invented_quotes,
    }


def image_reward(name: str, rollout: Rollout, score: Callable[..., list[float | None]]) -> RewardFunc:
    """A TRL reward that renders the answers (once per step, shared by every image reward) and scores the
    images with `score(images, columns)`."""

    def reward(prompts, completions, row_id, **columns):
        rewrites = [constraints.rewrite_of(answer) for answer in completion_texts(completions)]
        return score(rollout.render(rewrites, list(row_id)), columns)

    return _named(name, reward)


def build_rewards(
    config: GRPOConfig, rollout: Rollout | None, judge_model: judge.Judge | None = None, aesthetic_model=None
) -> tuple[list[RewardFunc], list[float]]:
    """(functions, weights) for every reward with a non-zero weight, in RewardWeights' order."""
    weights = config.rewards.model_dump()
    functions = text_rewards(config)

    def judged(images, columns):
        result = judge.judge_reward(images, columns["user_prompt"], judge_model)
        if result.failures and "log_metric" in columns:
            columns["log_metric"]("judge_failures", float(result.failures))
        return result.scores

    if rollout is not None:
        functions["ocr"] = image_reward(
            "ocr", rollout, lambda im, c: text.ocr_reward(im, c["texts"], c["lang"])
        )
        functions["colour"] = image_reward(
            "colour", rollout, lambda im, c: colour.colour_reward(im, [json.loads(r) for r in c["requested"]])
        )
        if judge_model is not None:
            functions["judge"] = image_reward("judge", rollout, judged)
        if aesthetic_model is not None:
            functions["aesthetic"] = image_reward(
                "aesthetic", rollout, lambda im, c: aesthetic.aesthetic_reward(im, aesthetic_model)
            )
    chosen = [name for name, weight in weights.items() if weight]
    missing = [name for name in chosen if name not in functions]
    if missing:
        raise ValueError(f"rewards {missing} have weights but no scorer was built")
    return [functions[name] for name in chosen], [weights[name] for name in chosen]
