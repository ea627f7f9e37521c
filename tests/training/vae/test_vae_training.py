"""The VAE trainer end to end: exact resume after kill -9, export, data mixture, config."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from qwen_image2.cli import main
from qwen_image2.config import load_config
from qwen_image2.errors import UserError
from qwen_image2.models.loading import load_components, load_vae
from qwen_image2.training.checkpoint import latest_checkpoint
from qwen_image2.training.schedule import stage_at
from qwen_image2.training.vae.config import VAETrainConfig
from qwen_image2.training.vae.data import VAEData
from qwen_image2.training.vae.train import build_vae_to_train, validate


def records(path):
    """metrics.jsonl without wall-clock fields."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def run_cli(args):
    threads = torch.get_num_threads()
    try:
        main(args)
    except SystemExit as exit_:
        assert exit_.code in (0, None), exit_.code
    finally:
        torch.set_num_threads(threads)


def test_resume_after_kill_matches_uninterrupted_losses(tiny_recipe, tmp_path):
    recipe = tiny_recipe()
    run_cli(["train-vae", str(recipe), f"output_dir={tmp_path / 'reference'}"])
    reference = records(tmp_path / "reference" / "metrics.jsonl")
    assert [r["step"] for r in reference if "total" in r] == list(range(1, 13))

    killed_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "qwen_image2", "train-vae", str(recipe), f"output_dir={killed_dir}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed_dir / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and any(r.get("step", 0) >= 4 for r in records(metrics)):
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    last = latest_checkpoint(killed_dir / "checkpoints")
    assert last is not None and int(last.name.split("-")[1]) < 12

    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert records(metrics) == reference  # every loss, lr, grad norm and validation figure, bit for bit


def test_train_vae_exports_a_vae_folder_and_a_full_model_that_load(tiny_recipe, tmp_path):
    recipe = tiny_recipe(max_steps=4, base_model="tiny")
    run_cli(["train-vae", str(recipe)])
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 4 and np.isfinite(report["holdout_psnr"])
    assert report["skipped_images"] == {}  # text sources only: nothing to skip
    exported = load_vae(run / "export")
    components = load_components(run / "export")
    assert torch.equal(components.vae.decoder.conv_out.weight, exported.decoder.conv_out.weight)
    assert exported.config.latents_std != [1.0] * 64  # measured statistics, not the preset's identity
    assert (run / "grids" / "step-0000004.png").is_file()
    assert list((run / "tensorboard").iterdir())
    initial = build_vae_to_train(load_config(VAETrainConfig, recipe))
    for name, parameter in initial.named_parameters():
        if ".time_conv." not in name:  # frozen: images never reach them
            assert not torch.equal(parameter, exported.state_dict()[name]), f"{name} did not change"


def test_a_batch_is_a_function_of_seed_and_step_and_phases_choose_sources(tiny_recipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.new("RGBA", (40, 36), (i * 60, 20, 200, 128)).save(folder / f"{i}.png")
    sources = [{"name": "text", "kind": "text"}, {"name": "photos", "kind": "folder", "path": str(folder)}]
    config = load_config(VAETrainConfig, tiny_recipe(), [f"data.sources={json.dumps(sources)}"])
    data = VAEData(config.data, channels=4, seed=1)
    assert torch.equal(data.batch(7), VAEData(config.data, channels=4, seed=1).batch(7))
    assert not torch.equal(data.batch(7), data.batch(8))
    photos = data.batch(5, mixture={"text": 0.0, "photos": 1.0})
    assert photos.shape[1] == 4 and torch.allclose(
        photos[:, 3], torch.tensor(128 / 127.5 - 1), atol=1e-6
    )  # alpha kept
    assert data.held_out["photos"] == [str(folder / "0.png"), str(folder / "1.png")]
    assert str(folder / "0.png") not in data.train_images["photos"]
    assert data.holdout(32).shape == (4, 4, 32, 32)  # 2 text + 2 held-out files


def test_text_sources_draw_the_renderers_styles_and_validation_reports_each_source(tiny_recipe):
    sources = [
        {"name": "words", "kind": "text", "style": "words", "tier": 64},
        {"name": "full", "kind": "text", "style": "full", "tier": 64, "zh_share": 1.0},
    ]
    config = load_config(VAETrainConfig, tiny_recipe(), [f"data.sources={json.dumps(sources)}"])
    data = VAEData(config.data, channels=3, seed=0)
    words = data.batch(0, mixture={"words": 1.0, "full": 0.0})
    assert words.shape == (2, 3, 32, 32) or words.shape == (1, 3, 32, 48)
    assert words.flatten(1).std(dim=1).min() > 0  # drawn, not blank
    holdout = data.holdout(32)
    assert holdout.shape == (4, 3, 32, 32) and data.holdout_sources == ["words", "words", "full", "full"]
    vae = build_vae_to_train(
        load_config(VAETrainConfig, tiny_recipe(), ["architecture={in_channels: 3, out_channels: 3}"])
    )
    scores, _, _ = validate(vae, holdout, data.holdout_sources)
    assert set(scores) == {"psnr", "ssim", "psnr/words", "psnr/full"}
    assert scores["psnr"] == pytest.approx((scores["psnr/words"] + scores["psnr/full"]) / 2)


def test_rgb_architecture_trains_on_three_channels(tiny_recipe):
    config = load_config(VAETrainConfig, tiny_recipe(), ["architecture={in_channels: 3, out_channels: 3}"])
    vae = build_vae_to_train(config)
    assert vae.config.in_channels == 3 and VAEData(config.data, 3, 0).batch(0).shape[1] == 3


def test_phase_schedule_and_config_errors(tiny_recipe):
    config = load_config(VAETrainConfig, tiny_recipe())
    names = [config.phases[stage_at(config.phases, s)[0]].name for s in (0, 3, 4, 11)]
    assert names == ["align", "align", "loosen", "loosen"]
    assert stage_at(config.phases, 5) == (1, 4) and config.total_steps == 12
    with pytest.raises(UserError, match="unknown sources"):
        load_config(VAETrainConfig, tiny_recipe(), ["phases=[{name: a, steps: 1, mixture: {nope: 1}}]"])
    with pytest.raises(UserError, match="did you mean"):
        load_config(VAETrainConfig, tiny_recipe(), ["loss.lpip=1"])


def test_adversarial_term_starts_at_gan_start_and_trains_the_discriminator(tiny_recipe, tmp_path):
    from qwen_image2.training.vae.discriminator import PatchDiscriminator, discriminator_hinge_loss

    run_cli(["train-vae", str(tiny_recipe()), f"output_dir={tmp_path / 'gan'}", "max_steps=4"])
    steps = [r for r in records(tmp_path / "gan" / "metrics.jsonl") if "total" in r]
    assert all("gan_d" not in r and "gan_g" not in r for r in steps if r["step"] <= 2)
    assert all(np.isfinite(r["gan_d"]) and r["gan_weight"] > 0 for r in steps if r["step"] > 2)
    # hinge: zero once real patches score >= 1 and fakes <= -1, positive otherwise
    assert discriminator_hinge_loss(torch.full((2, 1, 3, 3), 1.5), torch.full((2, 1, 3, 3), -2.0)) == 0
    assert discriminator_hinge_loss(torch.zeros(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)) == 1
    logits = PatchDiscriminator(3, 8, 3)(torch.zeros(1, 3, 128, 128))
    assert logits.shape == (1, 1, 14, 14)  # one logit per overlapping patch


def test_generator_step_leaves_the_discriminator_without_gradients(tiny_recipe):
    from qwen_image2.training.vae.train import build_training, compute_losses

    config = load_config(VAETrainConfig, tiny_recipe(), [])
    _, model, lpips, _, _, (discriminator, _) = build_training(config, torch.device("cpu"))
    pixels = torch.rand(1, model.vae.config.in_channels, 64, 64) * 2 - 1
    total, terms, _ = compute_losses(
        model, pixels, config.phases[0], config, lpips, config.loss.gan_start, discriminator
    )
    total.backward()
    assert "gan_g" in terms and model.vae.decoder.conv_out.weight.grad is not None
    assert all(p.grad is None and p.requires_grad for p in discriminator.parameters())


def test_gan_off_builds_no_discriminator(tiny_recipe):
    from qwen_image2.training.vae.train import build_training

    config = load_config(VAETrainConfig, tiny_recipe(), ["loss.gan=0"])
    assert build_training(config, torch.device("cpu"))[-1] is None


def test_metrics_resume_drops_an_unfinished_last_line_with_a_warning(tmp_path):
    from qwen_image2.training.vae.train import open_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "total": 1.0}\n{"step": 2, "total": 0.5}\n{"step": 3, "to')
    with pytest.warns(UserWarning, match="unfinished line"):
        open_metrics(path, resume_step=3).close()
    assert records(path) == [{"step": 1, "total": 1.0}, {"step": 2, "total": 0.5}]


def test_a_holdout_overlapping_the_training_images_is_refused(tiny_recipe, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 80, 0, 0)).save(folder / f"{i}.png")
    config = load_config(VAETrainConfig, tiny_recipe())
    few = {"name": "few", "kind": "folder", "path": str(folder)}
    data = config.data.model_copy(update={"sources": [type(config.data.sources[0])(**few)], "holdout": 3})
    with pytest.raises(UserError, match="not more than data.holdout=3"):
        VAEData(data, 3, 0)
    (folder / "list.txt").write_text("1.png\n0.png\n")  # the same files, another order: each holds out one
    again = {"name": "again", "kind": "manifest", "path": str(folder / "list.txt")}  # the other trains on
    sources = [type(config.data.sources[0])(**few), type(config.data.sources[0])(**again)]
    with pytest.raises(UserError, match="2 held-out images are also training images"):
        VAEData(config.data.model_copy(update={"sources": sources, "holdout": 1}), 3, 0)


def test_unreadable_images_are_skipped_and_counted_not_fatal(tiny_recipe, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 36), (i * 60, 20, 200)).save(folder / f"{i}.png")
    (folder / "4-truncated.png").write_bytes((folder / "3.png").read_bytes()[:40])
    (folder / "5-garbage.png").write_bytes(b"not an image at all")
    sources = [{"name": "photos", "kind": "folder", "path": str(folder)}]
    config = load_config(
        VAETrainConfig, tiny_recipe(), [f"data.sources={json.dumps(sources)}", "data.holdout=1"]
    )
    data = VAEData(config.data, channels=3, seed=0)
    batches = [data.batch(step) for step in range(6)]
    assert all(b.shape[1] == 3 and torch.isfinite(b).all() for b in batches)
    assert sum(data.skipped.values()) > 0
    assert all(reason.startswith("corrupt image") for reason in data.skipped)
    (folder / "1.png").unlink()  # a training file removed after the listing: counted as missing
    for step in range(6, 30):
        data.batch(step)
    assert data.skipped["missing image"] > 0
