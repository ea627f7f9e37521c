"""PromptEnhancer.rewrite: the fallback on every failure, the rules it enforces, the canvas it picks, the
local backend on the tiny random model, and load_enhancer's errors."""

import json
import time

import pytest
from PIL import Image, ImageDraw

from qwen_image2.data.synthetic.fonts import available_fonts, load_font
from qwen_image2.enhancer.backend import BackendFailure, Completion, Sampling
from qwen_image2.enhancer.loading import load_enhancer
from qwen_image2.enhancer.rewrite import PromptEnhancer
from qwen_image2.errors import UserError


class CannedBackend:
    """Answers `text` (or raises `error`) and keeps the messages it was sent."""

    def __init__(self, text: str = "", error: Exception | None = None, vision: bool = False):
        self.text, self.error, self.vision, self.sent = text, error, vision, []

    def complete(self, messages, sampling):
        self.sent.append(messages)
        if self.error is not None:
            raise self.error
        return Completion(self.text, "stop")


def answer(prompt: str, ratio: str = "16:9") -> str:
    return json.dumps({"rewritten_prompt": prompt, "aspect_ratio": ratio}, ensure_ascii=False)


def poster(word: str, size=(480, 160)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((30, 40), word, fill="black", font=load_font(available_fonts("en")[0], 64))
    return image


def test_a_good_answer_gives_the_rewrite_and_its_canvas():
    enhancer = PromptEnhancer(CannedBackend(answer('A poster that reads "HELLO", red on white.')))
    result = enhancer.rewrite('poster "HELLO"')
    assert result.parse_ok and result.reason is None
    assert result.rewritten_prompt == 'A poster that reads "HELLO", red on white.'
    assert (result.aspect_ratio, result.size) == ("16:9", (2752, 1536))
    assert result.raw == answer('A poster that reads "HELLO", red on white.') and result.latency_s >= 0


def test_a_ratio_outside_the_table_keeps_the_rewrite_on_the_default_canvas():
    result = PromptEnhancer(CannedBackend(answer("A fox.", "5:4"))).rewrite("a fox")
    assert result.parse_ok and (result.aspect_ratio, result.size) == ("1:1", (2048, 2048))


def test_canvas_side_scales_the_table():
    result = PromptEnhancer(CannedBackend(answer("A fox.", "16:9")), canvas_side=512).rewrite("a fox")
    assert result.size == (704, 384)


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (CannedBackend("no json here"), "no JSON object in the answer"),
        (CannedBackend('{"rewritten_prompt": "   "}'), "no JSON object with a non-empty rewritten_prompt"),
        (CannedBackend(error=BackendFailure("endpoint timed out after 1 s")), "endpoint timed out after 1 s"),
        (CannedBackend(error=RuntimeError("CUDA out of memory")), "RuntimeError: CUDA out of memory"),
    ],
)
def test_every_failure_returns_the_original_prompt_and_the_reason(backend, reason):
    result = PromptEnhancer(backend).rewrite("a fox in the snow")
    assert (result.rewritten_prompt, result.parse_ok, result.reason) == ("a fox in the snow", False, reason)
    assert (result.aspect_ratio, result.size) == ("1:1", (2048, 2048))


def test_a_rewrite_in_another_language_falls_back():
    result = PromptEnhancer(CannedBackend(answer("A poster with big red letters."))).rewrite(
        "一张红色大字的海报"
    )
    assert not result.parse_ok and result.reason == "language changed (zh -> en)"
    assert result.rewritten_prompt == "一张红色大字的海报"


def test_a_rewrite_that_alters_quoted_text_falls_back_rather_than_reinserting_it():
    prompt = "一张海报，上面写着“你好世界”"
    result = PromptEnhancer(CannedBackend(answer("一张海报，上面写着“你好”，红色大字"))).rewrite(prompt)
    assert not result.parse_ok and result.rewritten_prompt == prompt
    assert result.reason == 'quoted text not kept verbatim: "你好世界"'


def test_a_rewrite_that_keeps_every_quote_in_any_quote_style_passes():
    prompt = 'change "HELLO" to 「WORLD」'
    result = PromptEnhancer(CannedBackend(answer('Replace the word “HELLO” with "WORLD".'))).rewrite(
        prompt, [poster("HELLO")], "edit"
    )
    assert result.parse_ok


def test_an_edit_keeps_the_source_shape_unless_the_answer_names_a_ratio():
    wide = Image.new("RGB", (320, 180))
    assert (
        PromptEnhancer(CannedBackend(answer("Make it blue.", "")))
        .rewrite("make it blue", [wide], "edit")
        .aspect_ratio
        == "16:9"
    )
    followed = json.dumps({"rewritten_prompt": "Blue.", "wh_ratio": "", "ratio_follow": "<image2>"})
    tall = Image.new("RGB", (180, 320))
    assert (
        PromptEnhancer(CannedBackend(followed)).rewrite("blue", [wide, tall], "edit").aspect_ratio == "9:16"
    )


def test_a_text_only_backend_gets_the_text_read_from_the_source_image():
    backend = CannedBackend(answer('Replace "HELLO" with "WORLD".'), vision=False)
    PromptEnhancer(backend).rewrite('change "HELLO" to "WORLD"', [poster("HELLO")], "edit")
    user = backend.sent[0][-1]["content"]
    assert isinstance(user, str) and 'Text read from <image1>: "HELLO"' in user
    assert "image_url" not in json.dumps(backend.sent)


@pytest.mark.parametrize(
    ("prompt", "images", "mode", "match"),
    [
        ("  ", (), "t2i", "the prompt is empty"),
        ("a fox", (), "inpaint", "mode 'inpaint'"),
        ("a fox", (Image.new("RGB", (8, 8)),), "t2i", "edit mode only"),
    ],
)
def test_a_callers_mistake_is_a_user_error(prompt, images, mode, match):
    with pytest.raises(UserError, match=match):
        PromptEnhancer(CannedBackend()).rewrite(prompt, images, mode)


def test_sampling_given_for_one_task_keeps_the_others_default():
    enhancer = PromptEnhancer(CannedBackend(), {"t2i": Sampling(max_new_tokens=8)})
    assert enhancer.sampling["t2i"].max_new_tokens == 8 and enhancer.sampling["edit"].max_new_tokens == 768


def test_sampling_settings_are_checked_where_they_are_defined():
    with pytest.raises(UserError, match="max_new_tokens 0"):
        Sampling(max_new_tokens=0)
    with pytest.raises(UserError, match="temperature 0"):
        Sampling(greedy=False, temperature=0)


# ------------------------------------------------------------------------ the local backend, tiny model


def test_the_tiny_random_model_answers_garbage_and_falls_back_deterministically(tiny_enhancer_dir):
    enhancer = load_enhancer(str(tiny_enhancer_dir), sampling={"t2i": Sampling(max_new_tokens=24)})
    first, second = (enhancer.rewrite('a poster that reads "HELLO"') for _ in range(2))
    assert first.rewritten_prompt == 'a poster that reads "HELLO"' and not first.parse_ok
    assert first.reason == "no JSON object in the answer (the answer was cut at max_new_tokens)"
    assert first.raw == second.raw  # greedy decoding by default


def test_local_generation_stops_at_the_wall_clock_limit(tiny_enhancer_dir):
    timeout_s = 0.5
    enhancer = load_enhancer(
        str(tiny_enhancer_dir), timeout_s=timeout_s, sampling={"t2i": Sampling(max_new_tokens=100_000)}
    )
    start = time.perf_counter()
    result = enhancer.rewrite("a fox in the snow")
    # One decoding step past the limit, plus the prompt's forward pass, on a busy CPU.
    assert time.perf_counter() - start < timeout_s + 1.5
    assert not result.parse_ok and result.reason.startswith("timed out before a complete answer")


def test_the_tiny_enhancer_folder_loads_as_a_causal_lm_with_a_chat_template(tiny_enhancer_dir):
    backend = load_enhancer(str(tiny_enhancer_dir)).backend
    assert not backend.vision and backend.tokenizer.chat_template
    assert backend.tokenizer.convert_tokens_to_ids("<|im_end|>") in backend.end_ids


# ------------------------------------------------------------------------------------ load_enhancer


def test_a_missing_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_enhancer(str(tmp_path / "nowhere"))


def test_a_folder_without_a_config_is_not_a_causal_lm(tmp_path):
    (tmp_path / "model_index.json").write_text("{}")  # a diffusers folder, say
    with pytest.raises(UserError, match="not a causal LM folder"):
        load_enhancer(str(tmp_path))


def test_a_model_folder_of_another_kind_is_not_a_causal_lm(tmp_path):
    from transformers import ViTConfig

    ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    ).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="not a causal LM folder"):
        load_enhancer(str(tmp_path))


def test_a_folder_whose_tokenizer_has_no_chat_template_is_refused(tiny_enhancer_dir, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_enhancer_dir, tmp_path / "copy")
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="no chat template"):
        load_enhancer(str(folder))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("ftp://example.com/v1", "starts with http"),
        ("http://", "not a valid URL"),
        ("http://127.0.0.1:99999/v1", "not a valid URL"),
        ("http://host:port/v1", "not a valid URL"),
    ],
)
def test_a_malformed_url_is_a_user_error(spec, match):
    with pytest.raises(UserError, match=match):
        load_enhancer(spec, model="m")


def test_an_endpoint_needs_a_model_name():
    with pytest.raises(UserError, match="model=..."):
        load_enhancer("http://127.0.0.1:8000/v1")
