import json
from pathlib import Path

import pytest
import yaml
from curation_corpus import TINY_CLIP_CONFIG, build_tokenizer, hostile_corpus

from qwen_image2.data.curation.config import RunSettings, default_stages_file


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for every test that runs the pipeline on Ray (start-up is slow)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_clip_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    return path


@pytest.fixture(scope="session")
def hostile(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    folder = tmp_path_factory.mktemp("hostile") / "corpus"
    return folder, hostile_corpus(folder)


@pytest.fixture(scope="session")
def random_clip_stages(tmp_path_factory) -> Path:
    """The built-in stages with the CLIP threshold off: an untrained CLIP's scores mean nothing."""
    raw = yaml.safe_load(default_stages_file().read_text())
    raw["defaults"]["clip"] = {"min_score": -1.0}
    for overrides in raw["stages"].values():
        if overrides:
            overrides.pop("clip", None)
    path = tmp_path_factory.mktemp("stages") / "stages.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="session")
def all_filters(tokenizer_dir, tiny_clip_config) -> RunSettings:
    """The default filter set, with a small tokenizer and an untrained tiny CLIP."""
    return RunSettings(tokenizer=str(tokenizer_dir), clip_model=str(tiny_clip_config), clip_weights="random")
