import pytest
import yaml

# A few seconds per run on 2 CPU cores: the tiny preset (RGBA) at 32x32, LPIPS with a random backbone,
# a random toy DINOv2, two phases.
TINY_RECIPE = {
    "model": "tiny",
    "seed": 3,
    "checkpoint_every": 3,
    "validate_every": 4,
    "validation_size": 32,
    "log_every": 1,
    "device": "cpu",
    "threads": 1,
    "data": {
        "sources": [{"name": "text", "kind": "text", "weight": 1.0}],
        "buckets": [
            {"width": 32, "height": 32, "batch_size": 2, "probability": 1.0},
            {"width": 48, "height": 32, "batch_size": 1, "probability": 1.0},
        ],
        "holdout": 2,
        "num_workers": 0,
    },
    "loss": {
        "l1": 1.0,
        "l2": 0.1,
        "lpips": 0.5,
        "lpips_net": "alex",
        "lpips_weights": "random",
        # the adversarial term from the third step: the resume test restores a trained discriminator
        "gan": 0.5,
        "gan_start": 2,
        "gan_channels": 8,
        "gan_layers": 2,
    },
    "align": {"enabled": True, "model": "random-tiny"},
    "phases": [
        {"name": "align", "steps": 4, "lr": 1e-3, "align_weight": 0.5},
        {
            "name": "loosen",
            "steps": 8,
            "lr": 5e-4,
            "align_weight": 0.1,
            "margin_cos": 0.5,
            "margin_dist": 0.25,
        },
    ],
    "ema": {"enabled": True, "decay": 0.9},
}


@pytest.fixture
def tiny_recipe(tmp_path):
    """Write the tiny recipe with `changes` merged in; returns its path."""

    def write(name="recipe.yaml", **changes):
        recipe = {**TINY_RECIPE, "output_dir": str(tmp_path / "run"), **changes}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(recipe))
        return path

    return write
