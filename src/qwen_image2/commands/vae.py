"""`qwen-image2 train-vae`: train the f16c64 residual autoencoder from a recipe."""

import json
from pathlib import Path

import typer

from qwen_image2.commands.options import check_model


def train_vae(
    recipe: Path = typer.Argument(..., help="YAML recipe, e.g. recipes/vae-tiny.yaml."),
    overrides: list[str] = typer.Argument(None, help="Dotted key=value overrides, e.g. max_steps=100."),
) -> None:
    """Train (or resume) a VAE: L1 + LPIPS + DINOv2 alignment in phases, EMA, checkpoints, export.

    Rerunning the same command resumes from the newest checkpoint in output_dir.

    Examples:

      qwen-image2 train-vae recipes/vae-tiny.yaml

      qwen-image2 train-vae recipes/vae-tiny.yaml max_steps=200 output_dir=runs/try

      qwen-image2 train-vae recipes/vae-f16c64.yaml align.model=./dinov2-large loss.lpips_weights=./vgg16.pth
    """
    from qwen_image2.config import load_config
    from qwen_image2.training.vae.config import VAETrainConfig
    from qwen_image2.training.vae.train import train

    config = load_config(VAETrainConfig, recipe, overrides or [])
    check_model(config.model)  # a missing folder or a bad model_index.json, before anything starts
    print(json.dumps(train(config), indent=2))
