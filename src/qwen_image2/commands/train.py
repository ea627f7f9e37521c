"""`qwen-image2 train`."""

from pathlib import Path

import typer

from qwen_image2.commands.options import check_model


def train(
    recipe: Path = typer.Argument(..., help="A training recipe (YAML), e.g. recipes/tiny.yaml."),
    overrides: list[str] = typer.Argument(
        None, help="key=value overrides, e.g. output_dir=runs/x max_steps=100."
    ),
) -> None:
    """Train the DiT through the recipe's stages; rerunning the same command resumes.

    Examples:

      qwen-image2 train recipes/tiny.yaml output_dir=runs/tiny

      qwen-image2 train recipes/tiny.yaml max_steps=20 checkpoint_every=5 lora.enabled=true

      torchrun --nproc-per-node 8 -m qwen_image2 train recipes/qwen-image-2.0.yaml model=/models/Qwen-Image-2.1
    """
    from qwen_image2.config import load_config
    from qwen_image2.training.distributed import exit_distributed_worker
    from qwen_image2.training.dit.config import TrainConfig
    from qwen_image2.training.dit.train import train as run_training

    config = load_config(TrainConfig, recipe, overrides or [])
    check_model(config.model)  # a missing folder or a bad model_index.json, before anything starts
    model_dir = run_training(config)
    typer.echo(str(model_dir))
    exit_distributed_worker()
