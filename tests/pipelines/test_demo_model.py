"""The bundled demo model (checkpoints/tiny-demo): small, loadable by stock diffusers, and what `make demo` runs."""

import re
import shlex
from pathlib import Path

import numpy as np
import torch
from diffusers import QwenImage21Pipeline
from PIL import Image

from qwen_image2.metrics.ocr import read_text
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "checkpoints" / "tiny-demo"


def makefile_value(name: str) -> str:
    return re.search(rf"^{name} [:?]?= (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def test_demo_model_fits_the_budget_and_is_all_safetensors():
    files = [f for f in DEMO.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 50 * 2**20
    weights = [f for f in files if f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(f.suffix == ".safetensors" for f in weights)


def test_stock_diffusers_loads_the_demo_model_and_draws_what_ours_draws():
    ours = QwenImage2Pipeline.from_model(DEMO)
    stock = QwenImage21Pipeline.from_pretrained(DEMO)
    prompt = makefile_value("DEMO_PROMPT")
    images = [
        pipe(
            prompt,
            height=128,
            width=128,
            num_inference_steps=4,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        ).images
        for pipe in (ours, stock)
    ]
    assert images[0].shape == (1, 128, 128, 3)
    assert np.abs(images[0] - images[1]).max() <= 1e-5


def test_make_demo_commands_write_a_poster_and_its_edit(tmp_path, cli):
    generated, edited = tmp_path / "generate.png", tmp_path / "edit.png"
    common = ["--model", str(DEMO), *shlex.split(makefile_value("DEMO_SAMPLING"))]
    for args in (
        ["generate", makefile_value("DEMO_PROMPT"), *common, "--out", str(generated)],
        ["edit", makefile_value("DEMO_EDIT"), "--image", str(generated), *common, "--out", str(edited)],
    ):
        code, captured = cli(args)
        assert code == 0, captured.err
    poster, edit = (np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in (generated, edited))
    assert poster.shape == edit.shape == (128, 128, 3)
    assert poster.std() > 10  # a word on a background, not a flat field
    border = np.ones((128, 128), bool)
    border[16:-16, 16:-16] = False
    assert np.abs(poster[border] - edit[border]).mean() < 10  # the edit keeps what is not the word
    # The bundled model spells both words (Tesseract, as `eval text` reads them).
    assert read_text(Image.open(generated), "en", single_line=True) == "HELLO"
    assert read_text(Image.open(edited), "en", single_line=True) == "WORLD"


def test_sampling_defaults_come_from_the_side_the_model_was_trained_at(tmp_path, cli):
    """The demo model's folder says 128: generate and edit without --size or --resolution work at 128, not
    at stock diffusers' 1024 (minutes of noise on this model)."""
    from qwen_image2.models.loading import load_components, training_resolution_of

    assert training_resolution_of(DEMO) == 128 and training_resolution_of("tiny") == 1024
    assert load_components(DEMO).training_resolution == 128
    poster, edited = tmp_path / "poster.png", tmp_path / "edited.png"
    code, captured = cli(["generate", "a poster", "--model", str(DEMO), "--steps", "1", "--out", str(poster)])
    assert code == 0, captured.err
    assert Image.open(poster).size == (128, 128)
    code, captured = cli(
        [
            "edit",
            "change it",
            "--image",
            str(poster),
            "--model",
            str(DEMO),
            "--steps",
            "1",
            "--out",
            str(edited),
        ]
    )
    assert code == 0, captured.err
    assert Image.open(edited).size == (128, 128)


def test_make_demo_enhanced_step_draws_the_word_a_colloquial_request_asks_for(tmp_path, cli):
    """The bundled enhancer turns the demo's colloquial request into the poster description the demo model
    spells; the same request drawn as typed does not come out as the word."""
    enhancer = ROOT / makefile_value("DEMO_ENHANCER")
    assert sum(f.stat().st_size for f in enhancer.rglob("*") if f.is_file()) <= 10 * 2**20
    ask = makefile_value("DEMO_ASK")
    common = ["--model", str(DEMO), *shlex.split(makefile_value("DEMO_SAMPLING"))]
    enhanced, typed = tmp_path / "enhanced.png", tmp_path / "typed.png"
    code, captured = cli(["generate", ask, "--enhance", str(enhancer), *common, "--out", str(enhanced)])
    assert code == 0, captured.err
    assert 'A poster that reads "HELLO"' in captured.err  # the rewrite is logged
    code, captured = cli(["generate", ask, *common, "--out", str(typed)])
    assert code == 0, captured.err
    assert read_text(Image.open(enhanced), "en", single_line=True) == "HELLO"
    assert read_text(Image.open(typed), "en", single_line=True) != "HELLO"
