"""The README's Training quick-start, word for word, in a fresh folder with the repository's recipes."""

import shlex
import shutil
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Training", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.strip().splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == ".venv/bin/qwen-image2", line
        commands.append(words[1:])
    return commands


def test_the_readme_training_quickstart_runs_as_written(cli, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    commands = quickstart_commands()
    assert [c[0] for c in commands] == ["synth", "train", "generate"]
    for words in commands:
        code, captured = cli(words)
        assert code == 0, f"{shlex.join(words)}: {captured.err}"
    assert (tmp_path / "runs" / "tiny" / "report.json").is_file()
    outputs = list(tmp_path.glob("*.png"))
    assert len(outputs) == 1 and Image.open(outputs[0]).size == (64, 64)
