from pathlib import Path

import pytest

from qwen_image2.data.synthetic.shapes import write_shapes_dataset


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
