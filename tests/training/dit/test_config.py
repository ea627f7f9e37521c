from pathlib import Path

import pytest

from qwen_image2.config import Section, dump_config, load_config
from qwen_image2.errors import UserError


class Optim(Section):
    name: str = "adamw"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


class Stage(Section):
    name: str
    lr: float = 1e-4


class Job(Section):
    """A small job config."""

    output_dir: str = "runs/x"
    max_steps: int = 10
    optim: Optim = Optim()
    stages: list[Stage] = []


def test_recipe_then_overrides_win(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_steps: 5\noptim:\n  lr: 0.001\n")
    config = load_config(Job, recipe, ["optim.lr=2e-5", "output_dir=out", "optim.betas=[0.8, 0.95]"])
    assert config.max_steps == 5 and config.optim.lr == 2e-5 and config.output_dir == "out"
    assert config.optim.betas == (0.8, 0.95)
    assert "lr: 2.0e-05" in dump_config(config) or "lr: 2e-05" in dump_config(config)


def test_unknown_override_names_the_closest_key():
    with pytest.raises(UserError, match="did you mean optim.lr"):
        load_config(Job, None, ["optim.lrr=1"])


def test_a_field_set_elsewhere_is_pointed_to_where_it_lives():
    from qwen_image2.training.dit.config import TrainConfig

    recipe = Path(__file__).resolve().parents[3] / "recipes" / "tiny.yaml"
    with pytest.raises(UserError, match=r"'optim.lr'; lr is set at stages\.N\.lr$"):
        load_config(TrainConfig, recipe, ["optim.lr=1e-3"])


def test_unknown_key_in_recipe_names_it(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_stpes: 5\n")
    with pytest.raises(UserError, match="max_stpes.*did you mean max_steps"):
        load_config(Job, recipe)


def test_wrong_type_names_the_field(tmp_path):
    with pytest.raises(UserError, match="max_steps"):
        load_config(Job, None, ["max_steps=many"])


def test_missing_or_broken_recipe_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(Job, tmp_path / "nope.yaml")
    broken = tmp_path / "b.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(Job, broken)
    with pytest.raises(UserError, match="key=value"):
        load_config(Job, None, ["max_steps"])


def test_list_items_are_overridden_by_index(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - {name: a}\n  - {name: b}\n")
    config = load_config(Job, recipe, ["stages.1.lr=0.5"])
    assert [s.lr for s in config.stages] == [1e-4, 0.5]
    with pytest.raises(UserError, match="no item 2"):
        load_config(Job, recipe, ["stages.2.lr=0.5"])
    with pytest.raises(UserError, match="did you mean stages.N.lr"):
        load_config(Job, recipe, ["stages.1.lrr=0.5"])


def test_shipped_recipes_validate_and_match_the_reports_table_2():
    from pathlib import Path

    from qwen_image2.training.dit.config import TrainConfig

    root = Path(__file__).resolve().parents[3] / "recipes"
    report = load_config(TrainConfig, root / "qwen-image-2.0.yaml")
    by_phase = {"pretrain": 0, "continual": 0, "sft": 0}
    for stage in report.stages:
        by_phase[stage.name.split("-")[0]] += stage.steps
        expected = {"pretrain": (1e-4, 0.9), "continual": (2e-5, 0.7), "sft": (1e-5, 0.7)}[
            stage.name.split("-")[0]
        ]
        assert (stage.lr, stage.t2i_ratio) == expected
        batch = {256: 32768, 512: 16384, 1024: 8192, 2048: 4096}
        assert all(b.batch_size == batch[stage.resolution] for b in stage.buckets)
    assert by_phase == {"pretrain": 700_000, "continual": 250_000, "sft": 10_000}
    assert (
        report.optim.weight_decay == 0.001 and report.optim.grad_clip == 1.0 and report.caption_dropout == 0.1
    )
    tiny = load_config(TrainConfig, root / "tiny.yaml")
    assert tiny.model == "tiny" and len(tiny.stages) == 3


def test_dit_recipe_has_no_field_the_trainer_ignores():
    from qwen_image2.training.dit.config import TrainConfig

    assert "log_every" not in TrainConfig.model_fields  # metrics.jsonl has a line per step; nothing reads it


def test_every_recipe_loads_and_names_only_curation_filters_that_exist():
    import re
    from pathlib import Path

    import yaml

    from qwen_image2.data.curation.config import FILTER_ORDER
    from qwen_image2.enhancer.grpo_config import GRPOConfig
    from qwen_image2.enhancer.sft_config import SFTConfig
    from qwen_image2.training.dit.config import TrainConfig
    from qwen_image2.training.vae.config import VAETrainConfig

    recipes = sorted((Path(__file__).resolve().parents[3] / "recipes").glob("*.yaml"))
    assert recipes
    for recipe in recipes:
        text = recipe.read_text()
        if recipe.name.startswith("enhancer-grpo-"):  # the enhancer's recipes name their rows file
            load_config(GRPOConfig, recipe, [])
        elif recipe.name.startswith("enhancer-sft-"):
            load_config(SFTConfig, recipe, [])
        elif "phases" in yaml.safe_load(text):
            load_config(VAETrainConfig, recipe, [])
        else:
            load_config(TrainConfig, recipe, ["data.manifest=m.parquet"])
        for names in re.findall(r"filters?:\s*([a-z_]+(?:,\s*[a-z_]+)*)", text):
            for name in re.split(r",\s*", names):
                assert name in FILTER_ORDER, f"{recipe.name} names curation filter {name!r}"
        assert not re.search(r"\((?:[a-z]+, )*[a-z]+ filters?\)", text), f"{recipe.name}: unnamed filters"
