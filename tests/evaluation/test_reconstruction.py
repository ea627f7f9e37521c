"""`qwen-image2 eval vae` and `eval pairs`: outputs, the protocol's numbers, and bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageFont

from qwen_image2.evaluation.reconstruction import read_uint8, reconstruct
from qwen_image2.metrics.fidelity import psnr, ssim
from qwen_image2.metrics.grid import GAP
from qwen_image2.models.loading import load_vae


def noise_image(path, size=(32, 32), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def test_eval_vae_writes_json_worst_png_and_anchor_table_and_counts_a_bad_file(tmp_path, cli):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        noise_image(data / f"{i}.png", size=(48, 40), seed=i)
    (data / "broken.png").write_text("not an image")
    out = tmp_path / "eval" / "tiny.json"
    code, captured = cli(
        [
            "eval",
            "vae",
            "--model",
            "tiny",
            "--data",
            str(data),
            "--size",
            "32",
            "--out",
            str(out),
            "--worst",
            "2",
        ],
    )
    assert code == 0, captured.err
    result = json.loads(out.read_text())
    assert result["images"] == 3 and result["skipped"] == 1
    assert result["skipped_images"][0]["name"] == "broken.png"
    references = torch.stack([read_uint8(data / f"{i}.png", 32) for i in range(3)])
    reconstructions = reconstruct(load_vae("tiny"), references)
    assert result["psnr"] == pytest.approx(psnr(references, reconstructions).mean().item(), abs=1e-6)
    assert result["ssim"] == pytest.approx(ssim(references, reconstructions).mean().item(), abs=1e-6)
    # Two rows (the two worst of three): a 32-px image and its name under it, each.
    label = ImageFont.load_default().size + 4
    assert Image.open(out.with_suffix(".worst.png")).height == 2 * (32 + label + 2 * GAP)
    table = out.with_suffix(".md").read_text()
    assert "| Qwen-Image-2.0 | f16c64 | 33.42 |" in table and "| **tiny** | f16c64 |" in table
    assert json.loads(captured.out)["images"] == 3


def test_eval_pairs_scores_matched_names_and_skips_what_cannot_be_compared(tmp_path, cli):
    reference, prediction = tmp_path / "ref", tmp_path / "pred"
    reference.mkdir()
    prediction.mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        noise_image(reference / f"{name}.png", seed=seed)
        noise_image(prediction / f"{name}.png", seed=seed + 10)
    noise_image(reference / "only_here.png")
    noise_image(reference / "small.png", size=(32, 32))
    noise_image(prediction / "small.png", size=(16, 32))
    noise_image(reference / "broken.png")
    (prediction / "broken.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "pairs.json"
    code, captured = cli(["eval", "pairs", str(reference), str(prediction), "--out", str(out)])
    assert code == 0, captured.err
    result = json.loads(out.read_text())
    refs = torch.stack([read_uint8(reference / f"{n}.png") for n in "ab"])
    preds = torch.stack([read_uint8(prediction / f"{n}.png") for n in "ab"])
    assert result["images"] == 2 and result["skipped"] == 3
    assert result["psnr"] == pytest.approx(psnr(refs, preds).mean().item(), abs=1e-9)
    assert result["ssim"] == pytest.approx(ssim(refs, preds).mean().item(), abs=1e-9)
    reasons = {row["name"]: row["reason"] for row in result["skipped_images"]}
    assert "no counterpart" in reasons["only_here"] and "size 32x32 vs 16x32" in reasons["small"]
    assert "unreadable" in reasons["broken.png"]


@pytest.mark.parametrize("case", ["empty", "all_skipped", "no_folder"])
def test_eval_pairs_without_a_scorable_pair_is_a_clear_error(tmp_path, cli, case):
    reference, prediction = tmp_path / "ref", tmp_path / "pred"
    reference.mkdir()
    prediction.mkdir()
    if case == "all_skipped":
        noise_image(reference / "a.png", size=(32, 32))
        noise_image(prediction / "a.png", size=(16, 16))
    elif case == "empty":
        noise_image(reference / "a.png")
    else:
        prediction = tmp_path / "missing"
    code, captured = cli(["eval", "pairs", str(reference), str(prediction)])
    assert code == 2 and captured.err.startswith("error: ")
    assert len(captured.err.strip().splitlines()) == 1
