"""Fixtures every test folder shares: the CLI runner, the tiny model, a small shapes dataset."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import QwenImage21Pipeline
from PIL import Image

from qwen_image2.cli import main
from qwen_image2.data.synthetic.shapes import write_shapes_dataset
from qwen_image2.models.presets import build_components
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline


@pytest.fixture
def cli(capsys):
    """Run the real entry point in this process: `cli(args)` -> (exit code, captured output)."""

    def run(args: list[str]):
        try:
            main(args)
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        return code, capsys.readouterr()

    return run


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


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> Path:
    """A small shapes dataset: 24 T2I samples and 12 recolour edits."""
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), 24, seed=0)


@pytest.fixture
def small_recipe(tmp_path, shapes) -> Path:
    """Two short stages, T2I and edits, batch 4, no validation: seconds on a CPU."""
    recipe = tmp_path / "small.yaml"
    recipe.write_text(
        f"""
model: tiny
output_dir: {tmp_path / "run"}
checkpoint_every: 2
seed: 0
caption_dropout: 0.2
ema: {{decay: 0.9}}
data: {{manifest: {shapes}, num_workers: 1}}
validation: {{every: 0, holdout: 0}}
stages:
  - {{name: a, steps: 3, resolution: 64, t2i_ratio: 1.0, lr: 1.0e-3, buckets: [{{aspect: "1:1", batch_size: 4}}]}}
  - {{name: b, steps: 3, resolution: 96, t2i_ratio: 0.5, lr: 5.0e-4, buckets: [{{aspect: "3:2", batch_size: 4}}]}}
"""
    )
    return recipe


def pytest_terminal_summary(terminalreporter):
    """One line per reason a test was skipped, with the count: what `make test` left out, and how to run it."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped, by reason (README, Tests: how to run them)")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            terminalreporter.line(f"{count:4d}  {reason}")
