import copy

import numpy as np
import pytest
import torch
from diffusers import QwenImage21Pipeline
from PIL import Image

from qwen_image2.models.presets import build_components
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline


def _spread_weights(module: torch.nn.Module, std: float, seed: int) -> None:
    """Random init gives a near-silent tiny model; larger weights make every input visibly matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * std)


@pytest.fixture(scope="session")
def tiny_components_pristine():
    components = build_components("tiny", seed=0)
    _spread_weights(components.transformer, 0.2, seed=1)
    _spread_weights(components.text_encoder, 0.05, seed=2)
    return components


@pytest.fixture
def tiny(tiny_components_pristine):
    """A private copy of the tiny model, safe to train or modify."""
    return copy.deepcopy(tiny_components_pristine)


@pytest.fixture
def pipes(tiny):
    ours = QwenImage2Pipeline.from_components(tiny)
    stock = QwenImage21Pipeline(**tiny.pipeline_parts())
    for pipe in (ours, stock):
        pipe.set_progress_bar_config(disable=True)
    return ours, stock


@pytest.fixture(scope="session")
def condition_images():
    """Three references of different sizes and modes: RGB, RGBA with a transparent half, and a tall RGB."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 255, (64, 64, 4), dtype=np.uint8)
    rgba[:, :32, 3] = 0
    return [
        Image.fromarray(rng.integers(0, 255, (70, 100, 3), dtype=np.uint8)),
        Image.fromarray(rgba, mode="RGBA"),
        Image.fromarray(rng.integers(0, 255, (90, 50, 3), dtype=np.uint8)),
    ]
