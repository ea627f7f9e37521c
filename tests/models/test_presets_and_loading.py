import json
import shutil

import pytest
import torch
from diffusers import AutoencoderKLQwenImage21, QwenImage21Transformer2DModel

from qwen_image2.errors import UserError
from qwen_image2.models.components import Components
from qwen_image2.models.loading import load_components, save_components
from qwen_image2.models.presets import build_components, load_preset, preset_names


def test_presets_are_tiny_and_the_published_2_1_config():
    assert {"tiny", "qwen-image-2.1"} <= set(preset_names())


def test_qwen_image_21_preset_has_the_published_parameter_counts():
    config = load_preset("qwen-image-2.1")
    with torch.device("meta"):
        transformer = QwenImage21Transformer2DModel(**config["transformer"])
        vae = AutoencoderKLQwenImage21(**config["vae"])
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    # reference/architecture.md §2.2: 13·D² + 256 per block, 7.115B in all; §2.6 and the report's Table 1: 79M / 259M.
    assert count(transformer.transformer_blocks[0]) == 218_104_064
    assert round(count(transformer) / 1e9, 3) == 7.115
    assert round(count(vae.encoder) / 1e6) == 79 and round(count(vae.decoder) / 1e6) == 259
    assert vae.config.latents_mean[:4] == [0.5126, 0.7721, -0.0631, 1.3506]


def test_tiny_preset_is_small_and_deterministic():
    a, b = build_components("tiny", seed=5), build_components("tiny", seed=5)
    total = sum(p.numel() for m in (a.transformer, a.vae, a.text_encoder) for p in m.parameters())
    assert total < 5_000_000
    assert all(
        torch.equal(p, q) for p, q in zip(a.transformer.parameters(), b.transformer.parameters(), strict=True)
    )
    assert a.text_encoder.config.vision_config.depth > 0  # both towers exist


def test_unknown_model_and_missing_folder_parts_are_clear_errors(tiny, tmp_path):
    with pytest.raises(UserError, match="neither a folder nor a preset"):
        load_components("no-such-model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no model_index.json"):
        load_components(empty)
    folder = save_components(tiny, tmp_path / "model")
    shutil.rmtree(folder / "vae")
    with pytest.raises(UserError, match="lacks the component folder"):
        load_components(folder)


def test_wrong_component_class_in_model_index_is_a_clear_error(tiny, tmp_path):
    folder = save_components(tiny, tmp_path / "model")
    index = json.loads((folder / "model_index.json").read_text())
    index["transformer"] = ["diffusers", "QwenImageTransformer2DModel"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="component transformer"):
        load_components(folder)


def test_mismatched_dims_are_named(tiny):
    config = load_preset("tiny")
    wide = QwenImage21Transformer2DModel(**{**config["transformer"], "context_in_dim": 96})
    with pytest.raises(UserError, match="context_in_dim is 96"):
        Components(wide, tiny.vae, tiny.text_encoder, tiny.processor, tiny.scheduler)
    narrow = QwenImage21Transformer2DModel(**{**config["transformer"], "in_channels": 16, "out_channels": 16})
    with pytest.raises(UserError, match="z_dim is 64"):
        Components(narrow, tiny.vae, tiny.text_encoder, tiny.processor, tiny.scheduler)


def test_saved_folder_has_the_stock_layout(tiny, tmp_path):
    folder = save_components(tiny, tmp_path / "model")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "QwenImage21Pipeline"
    assert index["transformer"] == ["diffusers", "QwenImage21Transformer2DModel"]
    assert index["processor"] == ["transformers", "Qwen3VLProcessor"]
    assert (folder / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    assert (folder / "text_encoder" / "model.safetensors").is_file()


def test_rgb_vae_preset_edits_and_sees_transparent_pixels_as_white():
    from PIL import Image

    from qwen_image2.models.latents import to_pixels
    from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline

    clear = Image.new("RGBA", (32, 32), (200, 10, 10, 0))
    assert torch.equal(to_pixels([clear], 3), torch.ones(1, 3, 32, 32))
    assert torch.equal(
        to_pixels([clear])[0, :3],
        torch.tensor([200, 10, 10]).div(255).mul(2).sub(1)[:, None, None].expand(3, 32, 32).float(),
    )
    components = build_components("tiny-demo", seed=0)
    assert components.vae.config.in_channels == 3
    pipe = QwenImage2Pipeline.from_components(components)
    out = pipe("make it blue", image=[clear], height=64, width=64, num_inference_steps=2, output_type="np")
    assert out.images.shape == (1, 64, 64, 3)
