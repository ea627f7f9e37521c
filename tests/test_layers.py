"""The layer contract in pyproject.toml holds for the package, and fails on an import that points up."""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(package_parent: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the project's contract over the package found under `package_parent`."""
    config = tmp_path / "contract.toml"
    shutil.copy(ROOT / "pyproject.toml", config)
    env = dict(os.environ, PYTHONPATH=str(package_parent))
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_the_contract_names_every_top_level_part_of_the_package():
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    named = {part.strip(" ()") for layer in contract["layers"] for part in layer.split("|")}
    package = ROOT / "src" / "qwen_image2"
    parts = {p.stem for p in package.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    parts |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert parts <= named, f"not in a layer: {sorted(parts - named)}"


def test_the_package_keeps_its_layers(tmp_path):
    result = lint(ROOT / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("models/device.py", "qwen_image2.training.ema"),
        ("data/loader.py", "qwen_image2.evaluation.reconstruction"),
        ("training/vae/train.py", "qwen_image2.commands.options"),
    ],
)
def test_an_import_that_points_up_breaks_the_contract(tmp_path, module, upward):
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "qwen_image2", copy / "qwen_image2", ignore=shutil.ignore_patterns("*.pyc")
    )
    planted = copy / "qwen_image2" / module
    planted.write_text(planted.read_text() + f"\nimport {upward}  # planted\n")
    result = lint(copy, tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and upward in result.stdout


def test_the_readme_map_names_every_module():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Map of the package", 1)[1].split("```")[1]
    package = ROOT / "src" / "qwen_image2"
    missing = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.stem not in ("__init__", "__main__")
        and path.name not in block
        and path.stem not in block  # a folder's line may list its modules without the suffix
    ]
    assert missing == [], f"README's package map lacks {missing}"
