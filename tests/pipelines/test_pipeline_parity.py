import copy

import numpy as np
import pytest
import torch

from qwen_image2.models.loading import load_components, save_components
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline


def run_both(ours, stock, prompt, images=None, **kwargs):
    common = dict(num_inference_steps=3, output_type="np", **kwargs)
    a = ours(prompt, image=images, resolution=64, generator=torch.Generator().manual_seed(0), **common).images
    b = stock(
        prompt, image=images, output_resolution=64, generator=torch.Generator().manual_seed(0), **common
    ).images
    return a, b


def test_pipeline_matches_stock_diffusers_fp32_text_to_image(pipes):
    ours, stock = pipes
    a, b = run_both(ours, stock, "a red poster that says HELLO", width=96, height=64)
    assert a.shape == (1, 64, 96, 4)
    assert np.abs(a - b).max() <= 1e-5


@pytest.mark.parametrize("num_images", [1, 3])
def test_pipeline_matches_stock_diffusers_fp32_edit(pipes, condition_images, num_images):
    ours, stock = pipes
    a, b = run_both(
        ours, stock, ["make it blue", "write OPEN on it"], condition_images[:num_images], width=64, height=96
    )
    assert a.shape == (2, 96, 64, 4)
    assert np.abs(a - b).max() <= 1e-5


def test_pipeline_matches_stock_with_guidance_and_several_images_per_prompt(pipes):
    ours, stock = pipes
    kwargs = dict(width=64, height=64, num_inference_steps=3, num_images_per_prompt=2, output_type="np")
    prompts = ["a cat", "a dog on a sofa"]
    a = ours(
        prompts,
        guidance_scale=3.0,
        negative_prompt="blurry",
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    ).images
    # Stock needs one negative per prompt; ours broadcasts a single string.
    b = stock(
        prompts,
        true_cfg_scale=3.0,
        negative_prompt=["blurry"] * 2,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    ).images
    assert a.shape[0] == 4
    assert np.abs(a - b).max() <= 1e-5


def test_kv_cache_on_equals_off(pipes, condition_images):
    ours, _ = pipes
    kwargs = dict(
        image=condition_images[:2],
        width=64,
        height=64,
        num_inference_steps=4,
        resolution=64,
        output_type="latent",
    )
    on = ours("swap the two objects", generator=torch.Generator().manual_seed(3), use_kv_cache=True, **kwargs)
    off = ours(
        "swap the two objects", generator=torch.Generator().manual_seed(3), use_kv_cache=False, **kwargs
    )
    assert torch.allclose(on.images, off.images, atol=1e-5, rtol=0)


def test_prompt_and_condition_image_change_the_output(pipes, condition_images):
    """Guards the parity tests against a model that ignores its inputs."""
    ours, _ = pipes
    kwargs = dict(width=64, height=64, num_inference_steps=2, resolution=64, output_type="latent")
    base = ours("a red poster", generator=torch.Generator().manual_seed(0), **kwargs).images
    other_prompt = ours("a blue tree", generator=torch.Generator().manual_seed(0), **kwargs).images
    edited = ours(
        "a red poster", image=condition_images[0], generator=torch.Generator().manual_seed(0), **kwargs
    ).images
    assert (base - other_prompt).abs().max() > 1e-2
    assert (base - edited).abs().max() > 1e-2


def test_our_save_loads_in_stock_diffusers_with_identical_output(tiny, tmp_path):
    from diffusers import QwenImage21Pipeline

    ours = QwenImage2Pipeline.from_components(tiny)
    ours.save_pretrained(tmp_path / "model")
    stock = QwenImage21Pipeline.from_pretrained(tmp_path / "model")
    for pipe in (ours, stock):
        pipe.set_progress_bar_config(disable=True)
    a, b = run_both(ours, stock, "a sign that says OPEN", width=64, height=96)
    assert np.abs(a - b).max() <= 1e-5


def test_stock_saved_folder_loads_in_ours_with_identical_output(pipes, tmp_path):
    ours, stock = pipes
    stock.save_pretrained(tmp_path / "stock")
    loaded = QwenImage2Pipeline.from_components(load_components(tmp_path / "stock"))
    loaded.set_progress_bar_config(disable=True)
    a, b = run_both(loaded, stock, "a sign that says OPEN", width=64, height=64)
    assert np.abs(a - b).max() <= 1e-5


def test_save_keeps_a_distilled_models_sample_sigmas(tiny, tmp_path):
    tiny.sample_sigmas = [1.0, 0.9, 0.5]
    save_components(tiny, tmp_path / "turbo")
    assert load_components(tmp_path / "turbo").sample_sigmas == [1.0, 0.9, 0.5]


def test_output_keeps_alpha_and_size(pipes):
    ours, _ = pipes
    image = ours(
        "x", width=96, height=32, num_inference_steps=1, generator=torch.Generator().manual_seed(0)
    ).images[0]
    assert image.mode == "RGBA" and image.size == (96, 32)


def test_callback_sees_every_step(pipes):
    ours, _ = pipes
    seen = []
    ours(
        "x",
        width=32,
        height=32,
        num_inference_steps=5,
        output_type="latent",
        callback=lambda step, sigma, latents: seen.append((step, sigma, latents.shape)),
    )
    assert [s[0] for s in seen] == [0, 1, 2, 3, 4]
    assert seen[0][1] == pytest.approx(1.0) and all(s[2] == (1, 4, 64) for s in seen)


def test_denoise_returns_the_trajectory_and_runs_a_plugged_in_step(tiny):
    """The trajectory holds every state (noise first, result last) with its σ; a step function replaces
    Euler: here Euler written out, which must equal the scheduler's own step."""
    from qwen_image2.diffusion.sampling import denoise, euler_step, set_schedule
    from qwen_image2.models.conditioning import encode_conditions
    from qwen_image2.models.encoding import img_shapes

    conditions = encode_conditions(tiny.text_encoder, tiny.processor, ["a red circle"])
    noise = torch.randn((1, 16, tiny.vae.config.z_dim), generator=torch.Generator().manual_seed(0))
    shapes = img_shapes((4, 4), [], 1)

    def run(step):
        scheduler = set_schedule(copy.deepcopy(tiny.scheduler), 4, 16)
        return denoise(
            tiny.transformer, scheduler, noise, conditions=conditions, img_shapes=shapes, step=step
        )

    def written_out(scheduler, index, velocity, latents):
        sigmas = scheduler.sigmas
        return (latents.float() + (sigmas[index + 1] - sigmas[index]) * velocity.float()).to(latents.dtype)

    euler, manual = run(euler_step), run(written_out)
    assert len(euler.states) == 5 and len(euler.velocities) == 4 and torch.equal(euler.states[0], noise)
    assert euler.sigmas[0] == 1.0 and euler.sigmas[-1] == 0.0
    assert torch.allclose(euler.latents, manual.latents, atol=1e-6)
    # The last state is x̂0 of the last step: x_σ − σ·v at the last σ.
    last = euler.states[-2] - euler.sigmas[-2] * euler.velocities[-1]
    assert torch.allclose(euler.latents, last, atol=1e-5)


def test_save_pretrained_refuses_options_it_does_not_honour(tiny, tmp_path):
    ours = QwenImage2Pipeline.from_components(tiny)
    with pytest.raises(TypeError, match="does not support push_to_hub, variant"):
        ours.save_pretrained(tmp_path / "model", variant="fp16", push_to_hub=True)
    assert not (tmp_path / "model").exists()
