"""Requests denoised together give the bits each gives alone, and alone is the pipeline's image."""

import io

import numpy as np
import pytest
import torch

from qwen_image2.diffusion.guidance import true_cfg
from qwen_image2.models.batch_invariance import make_batch_invariant, pad_to_bucket
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline
from qwen_image2.pipelines.requests import ImageRequest, RequestSampler


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def sampler(tiny):
    """Prompts padded to 64-token buckets: prompts of different lengths share a batch."""
    return RequestSampler(QwenImage2Pipeline.from_components(tiny), text_bucket=64)


@pytest.fixture
def exact(tiny):
    """No padding: only prompts of one encoded length share a batch, each the model's own image."""
    return RequestSampler(QwenImage2Pipeline.from_components(tiny))


def batched(sampler, requests):
    prepared = [sampler.prepare(r) for r in requests]
    assert len({p.key for p in prepared}) == 1
    latents = sampler.sample(prepared)
    return [png(image) for image in sampler.decode(latents, prepared[0].grid)]


def alone(sampler, requests):
    return [png(image) for request in requests for image in sampler.run(request)]


def test_prompts_of_different_lengths_seeds_and_counts_batch_bit_equal_to_alone(sampler):
    requests = [
        ImageRequest('a poster that reads "HELLO" in bold letters', width=64, height=64, steps=4, seed=1),
        ImageRequest("a cat", width=64, height=64, steps=4, seed=2, num_images=2),
        ImageRequest("a red square on a blue field, flat", width=64, height=64, steps=4, seed=3),
    ]
    assert batched(sampler, requests) == alone(sampler, requests)


def test_guidance_scales_and_negatives_differ_per_request_in_one_batch(sampler):
    requests = [
        ImageRequest("a dog", width=64, height=32, steps=3, seed=4, guidance_scale=2.0, negative_prompt=""),
        ImageRequest(
            "a fox", width=64, height=32, steps=3, seed=5, guidance_scale=3.7, negative_prompt="blur"
        ),
    ]
    assert batched(sampler, requests) == alone(sampler, requests)


def test_edits_with_their_own_condition_images_batch_bit_equal(sampler, condition_images):
    first, second = condition_images[0], condition_images[0].transpose(0)  # same size, other pixels
    requests = [
        ImageRequest("make it blue", images=[first], steps=3, seed=6, resolution=64),
        ImageRequest("make it much redder than before", images=[second], steps=3, seed=7, resolution=64),
    ]
    assert batched(sampler, requests) == alone(sampler, requests)


def test_requests_of_other_shapes_get_other_keys(sampler):
    base = dict(prompt="a cat", width=64, height=64, steps=3)
    keys = {
        sampler.prepare(ImageRequest(**{**base, **change})).key
        for change in ({}, {"width": 32}, {"steps": 4}, {"guidance_scale": 2.0, "negative_prompt": ""})
    }
    assert len(keys) == 4
    with pytest.raises(ValueError, match="different keys"):
        sampler.sample(
            [sampler.prepare(ImageRequest(**base)), sampler.prepare(ImageRequest(**{**base, "steps": 4}))]
        )


def test_exact_mode_batches_prompts_of_one_length_bit_equal_to_alone(exact):
    requests = [
        ImageRequest("a cat", width=64, height=64, steps=4, seed=1),
        ImageRequest("a dog", width=64, height=64, steps=4, seed=2, num_images=2),
        ImageRequest("a fox", width=64, height=64, steps=4, seed=3, guidance_scale=1.0),
    ]
    assert batched(exact, requests) == alone(exact, requests)
    longer = exact.prepare(ImageRequest("a cat on a sofa", width=64, height=64, steps=4))
    assert longer.key != exact.prepare(requests[0]).key


def test_exact_mode_alone_is_the_pipelines_image_bit_for_bit(tiny, condition_images):
    pipe = QwenImage2Pipeline.from_components(tiny)
    pipe.set_progress_bar_config(disable=True)
    sampler = RequestSampler(pipe)  # installs the row-wise embeddings: a batch of one is untouched
    for images in ([], condition_images[:2]):
        reference = pipe(
            "a cat",
            image=images or None,
            width=64,
            height=64,
            num_inference_steps=4,
            resolution=64,
            generator=torch.Generator().manual_seed(3),
        )
        request = ImageRequest(
            "a cat", images=list(images), width=64, height=64, steps=4, seed=3, resolution=64
        )
        assert png(sampler.run(request)[0]) == png(reference.images[0])


def test_a_text_bucket_moves_the_image_because_rope_counts_padding(tiny):
    """Why exact mode is the default: padding shifts the target's rotary frame index (direct check)."""
    pipe = QwenImage2Pipeline.from_components(tiny)
    request = ImageRequest("a cat", width=64, height=64, steps=4, seed=3)
    exact = np.asarray(RequestSampler(pipe).run(request)[0], dtype=int)
    padded = np.asarray(RequestSampler(pipe, text_bucket=64).run(request)[0], dtype=int)
    assert np.abs(exact - padded).max() > 0


def test_per_sample_gemms_are_what_makes_a_batch_invariant(tiny):
    """Without them GEMMs change with the batch size (a direct check of the cause): embedding rows go
    alone (with the shared t = 0 row), token GEMMs one sample at a time."""
    transformer = tiny.transformer
    modulation = transformer.modulation[1]
    rows = torch.randn(4, modulation.in_features)
    pair = modulation(torch.cat([rows[1:2], rows[-1:]]))
    mlp = transformer.transformer_blocks[0].img_mlp.out
    tokens = torch.randn(3, 8, mlp.in_features)
    sample = mlp(tokens[1:2])
    make_batch_invariant(transformer)
    make_batch_invariant(transformer)  # idempotent
    together = modulation(rows)
    assert torch.equal(together[1], pair[0]) and torch.equal(together[-1], pair[1])
    assert torch.equal(mlp(tokens)[1:2], sample)


def test_pad_to_bucket_always_masks_and_rounds_up(sampler):
    conditions = sampler.pipe.encode_prompt(["a cat"])
    padded = pad_to_bucket(conditions, 64)
    assert padded.embeds.shape[1] == 64 and padded.mask is not None
    assert int(padded.mask.sum()) == conditions.embeds.shape[1]
    assert torch.equal(padded.embeds[:, : conditions.embeds.shape[1]], conditions.embeds)


def test_a_per_row_scale_tensor_is_the_same_arithmetic_as_a_float():
    positive, negative = torch.randn(2, 16, 8), torch.randn(2, 16, 8)
    scales = torch.tensor([2.3, 4.1])[:, None, None]
    rows = true_cfg(positive, negative, scales)
    assert torch.equal(rows[0], true_cfg(positive[:1], negative[:1], 2.3)[0])
    assert torch.equal(rows[1], true_cfg(positive[1:], negative[1:], 4.1)[0])
