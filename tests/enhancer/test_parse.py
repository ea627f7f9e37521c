"""The 2.1 answer contract (last balanced JSON object, thinking ignored, repair), the size table, and
the rules a rewrite keeps (language, quoted text)."""

import pytest

from qwen_image2.enhancer.answer import balanced_objects, parse_answer
from qwen_image2.enhancer.canvas import SIZES, nearest_ratio, normalise_ratio, size_for
from qwen_image2.enhancer.constraints import broken_rule, language_of, missing_quotes, quoted_spans


def test_clean_json_is_read_strictly():
    answer = parse_answer('{"rewritten_prompt": "A red fox in snow.", "aspect_ratio": "3:2"}')
    assert (answer.prompt, answer.aspect_ratio, answer.repaired, answer.problem) == (
        "A red fox in snow.",
        "3:2",
        False,
        None,
    )


def test_json_after_a_think_block_ignores_the_objects_inside_the_thinking():
    text = '<think>Maybe {"rewritten_prompt": "draft"}? No.</think>\n{"rewritten_prompt": "final", "aspect_ratio": "1:1"}'
    assert parse_answer(text).prompt == "final"


def test_only_a_closing_think_tag_counts_as_thinking_done():
    # Qwen3 templates put the opening <think> in the prompt, so the answer holds only the closing tag.
    assert (
        parse_answer('plan {"rewritten_prompt": "draft"}</think>{"rewritten_prompt": "final"}').prompt
        == "final"
    )


def test_an_unterminated_think_block_leaves_no_answer():
    answer = parse_answer('<think>{"rewritten_prompt": "draft"} still thinking')
    assert answer.prompt is None and "thinking did not finish" in answer.problem


def test_of_two_objects_the_last_wins():
    text = '{"rewritten_prompt": "first", "aspect_ratio": "4:3"} then {"rewritten_prompt": "second", "aspect_ratio": "9:16"}'
    answer = parse_answer(text)
    assert (answer.prompt, answer.aspect_ratio) == ("second", "9:16")


def test_a_trailing_object_without_a_prompt_is_skipped_for_the_one_before():
    assert parse_answer('{"rewritten_prompt": "kept"} {"note": "done"}').prompt == "kept"


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ("{'rewritten_prompt': 'a cat', 'aspect_ratio': '4:3',}", "a cat"),  # single quotes, trailing comma
        ('{"rewritten_prompt": "a poster that reads "HELLO" in red"}', 'a poster that reads "HELLO" in red'),
        ('{"rewritten_prompt": "a dog" "aspect_ratio": "1:1"}', "a dog"),  # missing comma
    ],
)
def test_broken_json_is_repaired_and_flagged(text, prompt):
    answer = parse_answer(text)
    assert answer.prompt == prompt and answer.repaired and answer.problem is None


@pytest.mark.parametrize("text", ["Sure, here you go: a lovely cat.", "", '{"rewritten_prompt": "cut off'])
def test_no_json_object_is_a_problem(text):
    answer = parse_answer(text)
    assert answer.prompt is None and answer.problem == "no JSON object in the answer"


@pytest.mark.parametrize("text", ['{"rewritten_prompt": ""}', '{"rewritten_prompt": 42}', '{"prompt": "x"}'])
def test_an_object_without_usable_prompt_text_is_a_problem(text):
    assert parse_answer(text).prompt is None


def test_2_1_key_names_are_accepted():
    answer = parse_answer('{"rewrited_prompt": "typo key", "wh_ratio": "16:9", "ratio_follow": ""}')
    assert (answer.prompt, answer.aspect_ratio) == ("typo key", "16:9")


@pytest.mark.parametrize("ratio", ["5:4", "21:9", "square", 1.5, None])
def test_an_aspect_ratio_outside_the_table_is_dropped(ratio):
    import json

    answer = parse_answer(json.dumps({"rewritten_prompt": "x", "aspect_ratio": ratio}))
    assert answer.prompt == "x" and answer.aspect_ratio is None


def test_braces_inside_strings_do_not_count():
    assert balanced_objects('{"a": "} {"} x') == ['{"a": "} {"}']


def test_a_brace_or_stray_quote_in_the_prose_cannot_swallow_the_answer():
    text = 'It\'s an "odd {" case: {"rewritten_prompt": "A sign with braces } {", "aspect_ratio": "4:3"}'
    assert parse_answer(text).prompt == "A sign with braces } {"


def test_a_brace_filled_garbage_answer_is_parsed_quickly():
    import time

    start = time.perf_counter()
    assert parse_answer("{" * 20_000 + "x").prompt is None
    assert time.perf_counter() - start < 2


def test_every_table_size_is_a_multiple_of_32_at_any_scale():
    for side in (2048, 1024, 512, 256):
        for ratio in SIZES:
            width, height = size_for(ratio, side)
            assert width % 32 == 0 and height % 32 == 0
            assert abs((width / height) / (SIZES[ratio][0] / SIZES[ratio][1]) - 1) < 0.1
    assert size_for("16:9") == (2752, 1536)  # 2.1's table, unrounded at its own scale


def test_ratio_spellings_and_nearest_ratio():
    assert normalise_ratio("16x9") == normalise_ratio("16：9") == "16:9"
    assert nearest_ratio(1080, 1920) == "9:16" and nearest_ratio(64, 64) == "1:1"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("a poster that says hello", "en"),
        ("一张海报，上面写着你好", "zh"),
        ('a poster that reads "你好世界" in red', "en"),  # quoted text is content, not language
        ("一张写着“HELLO WORLD AGAIN”的海报", "zh"),
        ("一个带有logo的iPhone海报", "zh"),  # a character weighs like a word, not like a letter
        ("1234 !!", None),
    ],
)
def test_language_is_detected_from_the_text_outside_quotes(text, lang):
    assert language_of(text) == lang


def test_quoted_spans_of_every_quote_style_are_found():
    assert quoted_spans('"OPEN" “你好” 「欢迎」 『书名』 don\'t') == ["OPEN", "你好", "欢迎", "书名"]


def test_quoted_text_must_appear_verbatim():
    prompt = 'change "HELLO" to "WORLD"'
    assert missing_quotes(prompt, 'Replace the word "HELLO" with the word "WORLD".') == []
    assert missing_quotes(prompt, 'Replace "HELLO" with "World".') == ["WORLD"]


def test_broken_rules_name_what_broke():
    assert broken_rule("一张海报", "A poster.") == "language changed (zh -> en)"
    assert broken_rule('a sign "OPEN"', "A neon sign that reads OPEN.") is None
    assert '"OPEN"' in broken_rule('a sign "OPEN"', "A neon sign that reads CLOSED.")


@pytest.mark.parametrize("module", ["answer", "canvas", "constraints"])
def test_the_docstring_examples_hold(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"qwen_image2.enhancer.{module}"))
    assert result.attempted > 0 and result.failed == 0
