"""GRPO rewards on answers and images whose right scores are known: word posters drawn in known colours
(OCR reads the right word as 1, a wrong one lower; the colour reward names text and background),
hand-written answers for the text rules, a fake VLM endpoint for the judge, a tiny random CLIP for the
aesthetic head's plumbing."""

import json

import pytest
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from qwen_image2.data.synthetic.backgrounds import Background
from qwen_image2.data.synthetic.fonts import WORD_POSTER_FONTS
from qwen_image2.data.synthetic.layouts import grid_word
from qwen_image2.data.synthetic.scene import Scene, render_scene
from qwen_image2.enhancer.rewards import constraints
from qwen_image2.enhancer.rewards.aesthetic import AestheticHead, LaionAesthetic, aesthetic_reward
from qwen_image2.enhancer.rewards.colour import colour_reward, measure_colours, nearest_colour
from qwen_image2.enhancer.rewards.judge import EndpointJudge, judge_reward
from qwen_image2.enhancer.rewards.text import ocr_reward
from web_helpers import served


def poster(word: str, text: str, background: str, size: int = 128):
    scene = Scene(
        (size, size),
        Background("flat", (background,)),
        (grid_word(word, WORD_POSTER_FONTS[0], text, (size, size), 8),),
    )
    return render_scene(scene).convert("RGB")


def answer(rewrite: str) -> str:
    return json.dumps({"rewritten_prompt": rewrite, "aspect_ratio": "1:1"})


# ------------------------------------------------------------------------------------------------ OCR


def test_ocr_reward_is_one_for_the_right_word_and_lower_for_a_wrong_one():
    image = poster("CAT", "black", "white")
    right, near, wrong, no_text, undrawn = ocr_reward(
        [image, image, image, image, None], [["CAT"], ["CAB"], ["FROG"], [], ["CAT"]], ["en"] * 5
    )
    assert right == 1.0
    assert 0.0 < near < 1.0 and wrong < near
    assert no_text is None and undrawn == 0.0


# --------------------------------------------------------------------------------------------- colour


@pytest.mark.parametrize("text, background", [("yellow", "navy"), ("red", "white"), ("white", "black")])
def test_colour_measure_names_the_text_and_background_colours(text, background):
    measured = measure_colours(poster("DOG", text, background))
    assert nearest_colour(measured["text"]) == text
    assert nearest_colour(measured["background"]) == background


def test_colour_reward_counts_only_stated_colours_and_ranks_right_over_wrong():
    image = poster("SUN", "red", "navy")
    right, swapped, text_only, nothing_stated, undrawn = colour_reward(
        [image, image, image, image, None],
        [
            {"text_colour": "red", "background": "navy"},
            {"text_colour": "navy", "background": "red"},
            {"text_colour": "red", "font": "serif"},
            {"font": "serif"},
            {"background": "navy"},
        ],
    )
    assert right > 0.85 and swapped < 0.2 and text_only > 0.85
    assert nothing_stated is None and undrawn == 0.0


# ---------------------------------------------------------------------------------------- text rules


def test_json_validity_is_strict_repaired_json_scores_zero():
    answers = [
        answer("A red fox."),
        "{'rewritten_prompt': 'A red fox.'}",
        "prose with no JSON",
        '{"rewritten_prompt": "A red fox."',
        '{"aspect_ratio": "1:1"}',
    ]
    assert constraints.json_valid_reward(answers) == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_a_dropped_quote_an_invented_quote_and_a_changed_language_each_cost_their_rule():
    prompt = 'a poster that says "OPEN"'
    kept = answer('A bold poster that reads "OPEN" in red letters on navy.')
    dropped = answer("A bold poster that reads OPN in red letters on navy.")
    invented = answer('A bold poster that reads "OPEN" above a "SALE" banner.')
    chinese = answer("一张红色的海报，上面写着“OPEN”")
    answers = [kept, dropped, invented, chinese]
    assert constraints.quotes_kept_reward(answers, [prompt] * 4) == [1.0, 0.0, 1.0, 1.0]
    assert constraints.no_invented_quotes_reward(answers, [prompt] * 4, [["OPEN"]] * 4) == [
        1.0,
        1.0,
        0.0,
        1.0,
    ]
    assert constraints.language_reward(answers, [prompt] * 4) == [1.0, 1.0, 1.0, 0.0]
    # a text the row asks for (its `texts`) may be quoted although the user did not quote it
    assert constraints.no_invented_quotes_reward([answer('A sign "SALE".')], ["a sale sign"], [["SALE"]]) == [
        1.0
    ]


def test_length_reward_is_one_inside_the_bounds_and_falls_off_outside():
    words = lambda n: answer(" ".join(["word"] * n))  # noqa: E731
    inside, short, shorter, long, unusable = constraints.length_reward(
        [words(10), words(6), words(3), words(30), "nothing"], 8, 20
    )
    assert inside == 1.0 and 0.0 < short < 1.0 and shorter == 0.0 and 0.0 < long < 1.0 and unusable == 0.0


def test_an_unusable_answer_scores_zero_on_every_text_rule():
    bad, prompt = ["no JSON here"], ['"OPEN"']
    assert constraints.quotes_kept_reward(bad, prompt) == [0.0]
    assert constraints.no_invented_quotes_reward(bad, prompt, [[]]) == [0.0]
    assert constraints.language_reward(bad, prompt) == [0.0]


# --------------------------------------------------------------------------------------------- judge


@pytest.fixture(scope="module")
def vlm_endpoint():
    """An OpenAI-compatible chat server whose `model` picks its verdict: yes, no, garbage, error (500)."""
    app, received = FastAPI(), []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        received.append(body)
        if body["model"] == "error":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
        text = {"yes": "Yes.", "no": "No, the word is wrong.", "score": "8/10"}.get(
            body["model"], "I like turtles"
        )
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
        }

    with served(app) as url:
        yield f"{url}/v1", received


@pytest.mark.parametrize(
    "model, score, failures",
    [("yes", 1.0, 0), ("no", 0.0, 0), ("score", 0.8, 0), ("garbage", 0.0, 2), ("error", 0.0, 2)],
)
def test_the_judge_reads_yes_no_and_scores_and_counts_garbage_and_errors_as_failures(
    vlm_endpoint, model, score, failures
):
    url, received = vlm_endpoint
    received.clear()
    judge = EndpointJudge(url, model, timeout_s=5.0)
    image = poster("CAT", "black", "white")
    result = judge_reward([image, image, None], ['a poster "CAT"', 'a poster "CAT"', "x"], judge)
    assert result.scores == [score, score, 0.0] and result.failures == failures
    assert len(received) == 2  # an undrawn image is not sent
    content = received[0]["messages"][0]["content"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert 'Request: a poster "CAT"' in content[1]["text"]  # the user's original request


# ----------------------------------------------------------------------------------------- aesthetic


def test_the_laion_head_over_a_tiny_random_clip_scores_each_image_once(tmp_path):
    import open_clip

    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "tiny-aesthetic-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "tiny-aesthetic-clip.json")
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-aesthetic-clip")
    head = AestheticHead(model.visual.output_dim)
    # the released file's keys (sac+logos+ava1-l14-linearMSE.pth), so its weights load into this head
    assert [k for k in head.state_dict() if k.endswith("weight")] == [
        f"layers.{i}.weight" for i in (0, 2, 4, 6, 7)
    ]
    scorer = LaionAesthetic(model, preprocess, head)
    images = [poster("CAT", "black", "white"), poster("DOG", "red", "navy")]
    raw = scorer(images)
    assert len(raw) == 2 and all(isinstance(v, float) for v in raw) and raw[0] != raw[1]
    rewards = aesthetic_reward([images[0], None, images[1]], scorer)
    assert rewards[1] == 0.0 and all(0.0 <= r <= 1.0 for r in rewards)
