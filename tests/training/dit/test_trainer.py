import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import QwenImage21Pipeline
from PIL import Image

from qwen_image2.config import load_config
from qwen_image2.errors import UserError
from qwen_image2.models.loading import load_components, training_resolution_of
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline
from qwen_image2.training.checkpoint import latest_checkpoint
from qwen_image2.training.dit.config import TrainConfig
from qwen_image2.training.dit.train import train
from training_helpers import REPO, run_cli


def losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


def test_tiny_recipe_runs_all_stages_and_exports_a_model_stock_diffusers_loads(tmp_path):
    data = run_cli("synth", "--kind", "shapes", "--out", str(tmp_path / "data"), "--n", "24")
    assert data.returncode == 0, data.stderr
    out = tmp_path / "run"
    result = run_cli(
        "train", "recipes/tiny.yaml", f"output_dir={out}", f"data.manifest={data.stdout.strip()}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {"pretrain-64", "pretrain-128", "edit-128"}
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= set(records[0])
    assert {r["task"] for r in records if r["stage"] == "edit-128"} == {"t2i", "edit"}
    assert np.mean([r["loss"] for r in records[-10:]]) < np.mean([r["loss"] for r in records[:10]])
    assert list((out / "grids").glob("*.png")) and (out / "loss.png").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 70
    assert training_resolution_of(out / "model") == 128  # the last stage's side: sampling's default
    # The exported folder works in our CLI and in stock diffusers.
    generated = run_cli(
        "generate",
        "a red circle",
        "--model",
        str(out / "model"),
        "--size",
        "64x64",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "g.png"),
    )
    assert generated.returncode == 0 and Image.open(tmp_path / "g.png").size == (64, 64)
    stock = QwenImage21Pipeline.from_pretrained(out / "model")
    assert stock.transformer.config.num_layers == 2


def test_resume_after_kill_matches_uninterrupted_losses(small_recipe, tmp_path):
    reference = run_cli("train", str(small_recipe), f"output_dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr[-3000:]
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "qwen_image2", "train", str(small_recipe), f"output_dir={run}"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "checkpoints" / "step-0000004").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    last = latest_checkpoint(run / "checkpoints")
    assert last is not None and int(last.name.split("-")[1]) < 6  # killed before the last checkpoint
    # A kill -9 mid-write leaves an unfinished last line: the resumed run drops it.
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 5, "lo')
    resumed = run_cli("train", str(small_recipe), f"output_dir={run}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stdout
    expected, got = losses(tmp_path / "reference"), losses(run)
    assert sorted(got) == list(range(1, 7))
    for step in range(5, 7):
        assert abs(got[step] - expected[step]) <= 1e-6 * abs(expected[step])


def test_two_process_fsdp2_matches_one_process(small_recipe, tmp_path):
    one = run_cli("train", str(small_recipe), f"output_dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2")
    two = run_cli("train", str(small_recipe), f"output_dir={tmp_path / 'two'}", launcher=torchrun)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    assert max(abs(a[s] - b[s]) for s in a) <= 1e-5


def test_lora_trains_only_the_adapter_and_exports_weights_stock_diffusers_loads(small_recipe, tmp_path):
    config = load_config(
        TrainConfig,
        small_recipe,
        [
            f"output_dir={tmp_path / 'lora'}",
            "lora.enabled=true",
            "lora.rank=4",
            "max_steps=2",
            "ema.enabled=false",
        ],
    )
    model_dir = train(config)
    base = load_components("tiny", seed=0).transformer.state_dict()
    merged = load_components(model_dir).transformer.state_dict()
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    assert changed and all(".attn.to_" in k for k in changed)  # only LoRA targets moved when merged
    assert (model_dir / "lora" / "pytorch_lora_weights.safetensors").is_file()
    stock = QwenImage21Pipeline(**load_components("tiny", seed=0).pipeline_parts())
    ours = QwenImage2Pipeline.from_model(model_dir)
    for pipe in (stock, ours):
        pipe.set_progress_bar_config(disable=True)
    kwargs = dict(width=64, height=64, num_inference_steps=2, output_type="latent")
    before = stock("a red circle", generator=torch.Generator().manual_seed(0), **kwargs).images
    stock.load_lora_weights(model_dir / "lora")
    with_lora = stock("a red circle", generator=torch.Generator().manual_seed(0), **kwargs).images
    merged = ours("a red circle", generator=torch.Generator().manual_seed(0), **kwargs).images
    mismatch = (with_lora - merged).abs().max()
    assert mismatch < 1e-5
    assert (with_lora - before).abs().max() > 100 * mismatch  # the adapter matters, and it matches


def test_missing_and_corrupt_images_are_skipped_and_counted(small_recipe, shapes, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(shapes).to_pylist()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for row in rows[:6]:
        row["path"] = str(tmp_path / "gone.png")
    for row in rows[6:12]:
        row["path"] = str(broken)
    manifest = tmp_path / "damaged.parquet"
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    config = load_config(
        TrainConfig,
        small_recipe,
        [
            f"output_dir={tmp_path / 'd'}",
            f"data.manifest={manifest}",
            f"data.root={shapes.parent}",  # the intact rows' paths are relative to the shapes folder
            "stages.0.buckets.0.batch_size=8",
            "max_steps=3",
        ],
    )
    train(config)
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    assert report["steps"] == 3
    assert report["skipped_rows"].get("missing image", 0) > 0
    assert any(reason.startswith("corrupt image") for reason in report["skipped_rows"])


def test_invalid_recipe_field_fails_at_start_naming_it(small_recipe, tmp_path):
    result = run_cli("train", str(small_recipe), "stages.0.t2i_ratio=1.5")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "stages.0.t2i_ratio" in result.stderr
    result = run_cli("train", str(small_recipe), "optim.nme=sgd")
    assert result.returncode == 2 and "did you mean optim.name" in result.stderr


def test_bucket_batch_that_cannot_be_split_names_the_bucket(small_recipe, tmp_path):
    config = load_config(TrainConfig, small_recipe, [f"output_dir={tmp_path / 'x'}", "parallel.grad_accum=3"])
    with pytest.raises(UserError, match="bucket 64x64 has batch size 4"):
        train(config)


def test_activation_checkpointing_matches_and_bf16_trains(small_recipe, tmp_path, monkeypatch):
    import qwen_image2.diffusion.loss as loss_module

    seen = []  # the dtype of every velocity the loss received: what the transformer computed in
    velocity = loss_module.target_velocity

    def recording(*args, **kwargs):
        prediction = velocity(*args, **kwargs)
        seen.append(prediction.dtype)
        return prediction

    monkeypatch.setattr(loss_module, "target_velocity", recording)
    base = ["max_steps=2", "ema.enabled=false"]
    plain = train(load_config(TrainConfig, small_recipe, [*base, f"output_dir={tmp_path / 'plain'}"]))
    checkpointed = train(
        load_config(
            TrainConfig,
            small_recipe,
            [*base, f"output_dir={tmp_path / 'ac'}", "parallel.activation_checkpointing=true"],
        )
    )
    assert losses(plain.parent) == pytest.approx(losses(checkpointed.parent), rel=1e-6)
    assert seen and set(seen) == {torch.float32}
    seen.clear()
    bf16 = train(
        load_config(
            TrainConfig,
            small_recipe,
            [*base, f"output_dir={tmp_path / 'bf16'}", "parallel.mixed_precision=bf16"],
        )
    )
    assert seen and set(seen) == {torch.bfloat16}  # the forward ran under bf16 autocast
    assert losses(bf16.parent) == pytest.approx(losses(plain.parent), rel=0.05)
    assert losses(bf16.parent) != losses(plain.parent)
