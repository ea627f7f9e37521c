"""Presets: named model configurations (YAML beside this file), built with random weights from a seed."""

from importlib import resources
from typing import Any

import torch
import yaml
from diffusers import AutoencoderKLQwenImage21, FlowMatchEulerDiscreteScheduler, QwenImage21Transformer2DModel
from transformers import (
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

from qwen_image2.errors import UserError
from qwen_image2.models.components import Components
from qwen_image2.models.tokenizer import CHAT_TEMPLATE, build_tiny_tokenizer

# The published Qwen-Image scheduler config (reference/architecture.md §1.7, identical for 2.1).
PUBLISHED_SCHEDULER = {
    "base_image_seq_len": 256,
    "max_image_seq_len": 8192,
    "base_shift": 0.5,
    "max_shift": 0.9,
    "shift": 1.0,
    "shift_terminal": 0.02,
    "time_shift_type": "exponential",
    "use_dynamic_shifting": True,
    "num_train_timesteps": 1000,
}


def preset_names() -> list[str]:
    folder = resources.files("qwen_image2.models") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The preset's config as plain data: `transformer`, `vae`, `text_encoder`, `processor`, `scheduler`."""
    if name not in preset_names():
        raise UserError(
            f"unknown preset {name!r}; choose one of {', '.join(preset_names())} or give a model folder"
        )
    text = (resources.files("qwen_image2.models") / "presets" / f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def build_processor(config: dict[str, Any]) -> Qwen3VLProcessor:
    if config["tokenizer"] != "tiny":
        raise UserError(f"processor.tokenizer must be 'tiny' for a preset, got {config['tokenizer']!r}")
    size = {"shortest_edge": config["min_pixels"], "longest_edge": config["max_pixels"]}
    common = dict(
        patch_size=config["patch_size"],
        merge_size=config["merge_size"],
        temporal_patch_size=config["temporal_patch_size"],
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        size=size,
    )
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=build_tiny_tokenizer(),
        video_processor=Qwen3VLVideoProcessor(**common),
        chat_template=CHAT_TEMPLATE,
    )


def build_text_encoder(
    config: dict[str, Any], processor: Qwen3VLProcessor
) -> Qwen3VLForConditionalGeneration:
    tokenizer = processor.tokenizer
    token_ids = {
        key: tokenizer.convert_tokens_to_ids(token)
        for key, token in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    text_config = dict(config["text_config"], pad_token_id=tokenizer.pad_token_id)
    qwen_config = Qwen3VLConfig(text_config=text_config, vision_config=config["vision_config"], **token_ids)
    return Qwen3VLForConditionalGeneration(qwen_config).eval()


def build_vae(config: dict[str, Any]) -> AutoencoderKLQwenImage21:
    config = dict(config)
    stats = {"zeros": 0.0, "ones": 1.0}
    for key in ("latents_mean", "latents_std"):
        if isinstance(config.get(key), str):
            config[key] = [stats[config[key]]] * config["z_dim"]
    return AutoencoderKLQwenImage21(**config).eval()


def build_scheduler(config: str | dict[str, Any]) -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(**(PUBLISHED_SCHEDULER if config == "published" else config))


def build_components(preset: str, seed: int = 0) -> Components:
    """All five parts of `preset` with random weights drawn from `seed` (float32)."""
    config = load_preset(preset)
    torch.manual_seed(seed)
    processor = build_processor(config["processor"])
    return Components(
        transformer=QwenImage21Transformer2DModel(**config["transformer"]),
        vae=build_vae(config["vae"]),
        text_encoder=build_text_encoder(config["text_encoder"], processor),
        processor=processor,
        scheduler=build_scheduler(config["scheduler"]),
    )
