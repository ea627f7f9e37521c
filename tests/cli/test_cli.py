import subprocess
import sys

import pytest
from PIL import Image


@pytest.fixture
def bad_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), "red").save(good)
    return {"text": text, "good": good, "missing": tmp_path / "missing.png", "dir": tmp_path}


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "x", "--model", "tiny", "--size", "100x64"],
        ["generate", "x", "--model", "tiny", "--size", "big"],
        ["generate", "x", "--model", "tiny", "--steps", "0"],
        ["generate", "x", "--model", "./no/such/folder"],
        ["generate", "x", "--model", "no-such-preset", "--steps", "1", "--size", "32x32"],
        ["edit", "x", "--model", "tiny", "--image", "{text}"],
        ["edit", "x", "--model", "tiny", "--image", "{missing}"],
        ["edit", "x", "--model", "tiny"] + ["--image", "{good}"] * 11,
        ["generate", "x", "--model", "tiny", "--steps", "abc"],
    ],
)
def test_each_bad_input_gives_one_error_line_and_exit_2(args, bad_files, cli):
    args = [a.format(**bad_files) for a in args]
    code, output = cli(args)
    assert code == 2
    lines = [line for line in output.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in output.err


def test_generate_then_edit_write_rgba_pngs(tmp_path, cli):
    out = tmp_path / "gen.png"
    code, output = cli(
        ["generate", "a poster", "-m", "tiny", "--size", "64x32", "--steps", "2", "-o", str(out)]
    )
    assert code == 0 and output.out.strip() == str(out)
    image = Image.open(out)
    assert image.mode == "RGBA" and image.size == (64, 32)
    edited = tmp_path / "edit.png"
    code, _ = cli(
        [
            "edit",
            "change it",
            "-i",
            str(out),
            "-m",
            "tiny",
            "--resolution",
            "64",
            "--steps",
            "2",
            "-o",
            str(edited),
        ],
    )
    assert code == 0
    assert Image.open(edited).size == (96, 32)  # default: the reference's 2:1 aspect at about 64² area


def test_same_seed_same_image_different_seed_different_image(tmp_path, cli):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path, seed in zip(paths, [1, 1, 2], strict=True):
        cli(
            [
                "generate",
                "x",
                "-m",
                "tiny",
                "--size",
                "32x32",
                "--steps",
                "2",
                "--seed",
                str(seed),
                "-o",
                str(path),
            ],
        )
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()


def test_console_script_reports_errors_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "qwen_image2", "generate", "x", "-m", "tiny", "--size", "33x32"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --size 33x32: width and height must be positive multiples of 32"


def test_guidance_without_a_negative_prompt_runs_cfg_against_the_empty_prompt(cli, tmp_path):
    import numpy as np
    from PIL import Image

    def generate(name, *extra):
        args = ["generate", "a red circle", "-m", "tiny", "--size", "64x64", "--steps", "2"]
        code, captured = cli([*args, *extra, "--out", str(tmp_path / name)])
        assert code == 0, captured.err
        return np.asarray(Image.open(tmp_path / name))

    implicit = generate("implicit.png", "--guidance", "4")
    explicit = generate("explicit.png", "--guidance", "4", "--negative-prompt", "")
    plain = generate("plain.png")
    assert np.array_equal(implicit, explicit) and not np.array_equal(implicit, plain)


def test_a_command_is_quiet_but_for_its_own_progress_and_result(tmp_path):
    import os
    from pathlib import Path

    out = tmp_path / "new" / "poster.png"  # a folder that does not exist yet is made
    args = [sys.executable, "-m", "qwen_image2", "generate", "a poster", "--model", "checkpoints/tiny-demo"]
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [*args, "--steps", "2", "--out", str(out)], capture_output=True, text=True, cwd=root, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert "Loading weights" not in result.stderr and "Warning" not in result.stderr
