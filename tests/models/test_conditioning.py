import numpy as np
import pytest
import torch
from diffusers import QwenImage21Pipeline
from PIL import Image

from qwen_image2.errors import UserError
from qwen_image2.models.conditioning import (
    chat_prompt,
    condition_image_size,
    encode_conditions,
    encoder_view,
    prepare_condition_image,
    system_token_count,
)
from qwen_image2.models.tokenizer import QWEN_SPECIAL_TOKENS, build_tiny_tokenizer


def stock_pipeline(components):
    return QwenImage21Pipeline(**components.pipeline_parts())


def assert_same(ours, stock):
    embeds, mask, pad = stock
    assert torch.equal(ours.embeds, embeds)
    assert (ours.mask is None and mask is None) or torch.equal(ours.mask, mask)
    assert torch.equal(ours.image_pad_mask, pad)


def test_condition_states_equal_stock_encode_prompt_text_to_image(tiny):
    prompts = ["a poster that says HELLO", "一张写着“你好”的海报，红色大字，白色背景，还有很多其他的细节"]
    ours = encode_conditions(tiny.text_encoder, tiny.processor, prompts)
    stock = stock_pipeline(tiny).encode_prompt(prompts, device="cpu")
    assert ours.mask is not None  # the two prompts differ in length: padding is masked
    assert_same(ours, stock)


@pytest.mark.parametrize("num_images", [1, 3])
def test_condition_states_equal_stock_encode_prompt_edit(tiny, condition_images, num_images):
    images = [prepare_condition_image(image, 64) for image in condition_images[:num_images]]
    prompts = ["change the word to WORLD", "remove the logo"]
    ours = encode_conditions(tiny.text_encoder, tiny.processor, prompts, images)
    stock = stock_pipeline(tiny).encode_prompt(prompts, image=images, device="cpu")
    assert_same(ours, stock)
    slots = sum((img.width // 32) * (img.height // 32) for img in images)
    assert int(ours.image_pad_mask[0].sum()) == slots  # one slot per 2x2 latent cells of each image


def test_system_block_is_dropped_and_assistant_header_kept(tiny):
    tokenizer = tiny.processor.tokenizer
    drop = system_token_count(tiny.processor)
    ids = tokenizer(chat_prompt("hi")).input_ids
    assert (
        tokenizer.decode(ids[:drop])
        == "<|im_start|>system\nComprehend and analyze the provided prompt.<|im_end|>\n"
    )
    assert tokenizer.decode(ids[drop:]) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_features_are_taken_before_the_final_norm(tiny):
    """The encoder's own last_hidden_state is normed; ours must differ from it and equal the last layer's output."""
    prompts = ["a cat"]
    ours = encode_conditions(tiny.text_encoder, tiny.processor, prompts)
    inputs = tiny.processor(text=[chat_prompt("a cat")], return_tensors="pt")
    captured = {}
    last_layer = tiny.text_encoder.model.language_model.layers[-1]
    handle = last_layer.register_forward_hook(
        lambda m, a, out: captured.setdefault("h", out[0] if isinstance(out, tuple) else out)
    )
    with torch.no_grad():
        normed = tiny.text_encoder(**inputs, output_hidden_states=True).hidden_states[-1]
    handle.remove()
    drop = system_token_count(tiny.processor)
    assert torch.allclose(ours.embeds[0], captured["h"][0, drop:], atol=1e-6)
    assert not torch.allclose(ours.embeds[0], normed[0, drop:], atol=1e-3)


def test_prompt_over_1024_tokens_is_refused(tiny):
    with pytest.raises(UserError, match="limit is 1024"):
        encode_conditions(tiny.text_encoder, tiny.processor, ["word " * 1100])


def test_more_than_ten_condition_images_is_refused(tiny, condition_images):
    with pytest.raises(UserError, match="at most 10"):
        encode_conditions(tiny.text_encoder, tiny.processor, ["x"], [condition_images[0]] * 11)


@pytest.mark.parametrize("size", [(1024, 1024), (1920, 1080), (50, 90), (3000, 500)])
def test_condition_images_resize_by_area_to_multiples_of_32(size):
    width, height = condition_image_size(*size, 1024)
    assert width % 32 == 0 and height % 32 == 0
    assert abs(width * height - 1024 * 1024) / (1024 * 1024) < 0.1
    assert abs(width / height - size[0] / size[1]) / (size[0] / size[1]) < 0.1


def test_rgba_is_composited_over_white_for_the_encoder_and_kept_for_the_vae():
    pixels = np.zeros((32, 32, 4), dtype=np.uint8)
    pixels[..., 0] = 200
    pixels[:, 16:, 3] = 255  # left half transparent
    image = prepare_condition_image(Image.fromarray(pixels, mode="RGBA"), 32)
    assert image.mode == "RGBA"
    seen = np.asarray(encoder_view(image))
    assert seen.shape == (32, 32, 3)
    assert (seen[:, :8] == 255).all()  # transparent -> white
    assert (seen[:, 24:, 0] == 200).all() and (seen[:, 24:, 1] == 0).all()
    assert prepare_condition_image(Image.new("RGB", (32, 32)), 32).mode == "RGBA"


def test_tiny_tokenizer_keeps_special_tokens_atomic_and_round_trips_chinese():
    tokenizer = build_tiny_tokenizer()
    for token in QWEN_SPECIAL_TOKENS:
        assert len(tokenizer(token).input_ids) == 1
    text = "<|im_start|>user\n把文字改成“欢迎” HELLO<|im_end|>"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    assert tokenizer(text).input_ids == build_tiny_tokenizer()(text).input_ids  # deterministic


def test_tiny_tokenizer_gives_each_capital_its_own_token():
    tokenizer = build_tiny_tokenizer()
    for text in ('reads "HELLO" in', 'the word "ORGANIC"', " OPEN WORLD"):
        pieces = [tokenizer.decode([i]) for i in tokenizer(text).input_ids]
        capitals = [p.strip() for p in pieces if any(c.isupper() for c in p)]
        assert capitals == [c for c in text if c.isupper()], pieces
    assert len(tokenizer("the lazy dog").input_ids) < len("the lazy dog")  # lower case still merges
