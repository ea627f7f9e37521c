import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch

from qwen_image2.config import load_config
from qwen_image2.data.cache import CacheError, CacheReader, merge_part_indexes
from qwen_image2.data.loader import load_training_sample, read_manifest
from qwen_image2.errors import UserError
from qwen_image2.models.encoding import encode_for_cache_batch, encode_sample
from qwen_image2.models.loading import load_components
from qwen_image2.training.dit.config import TrainConfig
from qwen_image2.training.dit.train import train
from training_helpers import run_cli


@pytest.fixture
def cached(small_recipe, shapes, tmp_path):
    out = tmp_path / "cache"
    result = run_cli(
        "cache",
        str(shapes),
        "--model",
        "tiny",
        "--out",
        str(out),
        "--recipe",
        str(small_recipe),
        "--shard-size",
        "8",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_cache_covers_every_sample_at_its_bucket_sizes_and_resumes(cached, small_recipe, shapes):
    index = json.loads((cached / "index.json").read_text())["entries"]
    # 36 samples, two stages with one bucket each (1:1 and 3:2 at 64p): every sample at both sizes.
    assert len(index) == 72
    assert len({entry["shard"] for entry in index.values()}) == 9
    edits = [k for k, e in index.items() if e["unconditional"]]
    assert len(edits) == 24  # 12 edits x 2 sizes keep their empty-instruction states
    again = run_cli(
        "cache", str(shapes), "--model", "tiny", "--out", str(cached), "--recipe", str(small_recipe)
    )
    assert "already cached=72" in again.stdout and "cached=" not in again.stdout.replace("already cached", "")


def test_training_from_the_cache_equals_training_from_images(cached, small_recipe, tmp_path):
    base = [f"output_dir={tmp_path / 'online'}", "max_steps=4"]
    train(load_config(TrainConfig, small_recipe, base))
    train(
        load_config(
            TrainConfig,
            small_recipe,
            [f"output_dir={tmp_path / 'cached'}", "max_steps=4", f"data.cache_dir={cached}"],
        )
    )
    online = [json.loads(x)["loss"] for x in (tmp_path / "online" / "metrics.jsonl").read_text().splitlines()]
    from_cache = [
        json.loads(x)["loss"] for x in (tmp_path / "cached" / "metrics.jsonl").read_text().splitlines()
    ]
    assert online == pytest.approx(from_cache, rel=1e-5, abs=1e-6)


def test_corrupt_cache_shard_is_skipped_counted_and_images_used(cached, small_recipe, tmp_path):
    for shard in sorted(cached.glob("shard-*.safetensors"))[:3]:
        shard.write_bytes(b"garbage")
    reader = CacheReader(cached)
    broken = next(k for k, e in reader.index.items() if e["shard"] == "shard-000000.safetensors")
    with pytest.raises(CacheError, match="unreadable"):
        reader.get(broken)
    train(
        load_config(
            TrainConfig,
            small_recipe,
            [f"output_dir={tmp_path / 'r'}", "max_steps=4", f"data.cache_dir={cached}"],
        )
    )
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["steps"] == 4 and report["skipped_rows"]["corrupt cache shard"] > 0
    assert torch.isfinite(torch.tensor(report["final_loss"]))


def test_parallel_cache_equals_the_serial_one_and_resumes_after_a_crashed_part(
    cached, small_recipe, shapes, tmp_path
):
    out = tmp_path / "parallel"
    args = ["cache", str(shapes), "--model", "tiny", "--out", str(out), "--recipe", str(small_recipe)]
    result = run_cli(*args, "--shard-size", "8", "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    serial, parallel = CacheReader(cached), CacheReader(out)
    assert set(parallel.index) == set(serial.index) and not list(out.glob("index-*.json"))
    assert {e["shard"].split("-")[1] for e in parallel.index.values()} == {"p0", "p1"}
    for key in list(serial.index)[::7]:
        (a, a_empty), (b, b_empty) = serial.get(key), parallel.get(key)
        assert torch.allclose(a.target, b.target, atol=1e-5) and torch.equal(a.embeds, b.embeds)
        assert (a_empty is None) == (b_empty is None)

    # A part whose index was written but never merged (the run died) counts as cached on the next run.
    written = json.loads((out / "index.json").read_text())
    index = written["entries"]
    crashed = {k: e for k, e in index.items() if e["shard"].startswith("shard-p1-")}
    (out / "index-p1.json").write_text(json.dumps({**written, "entries": crashed}))
    rest = {k: e for k, e in index.items() if k not in crashed}
    (out / "index.json").write_text(json.dumps({**written, "entries": rest}))
    again = run_cli(*args, "--workers", "3")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"already cached={len(index)}" in again.stdout
    assert json.loads((out / "index.json").read_text()) == written


def test_batched_cache_encoding_equals_encoding_each_sample_alone(shapes):
    components = load_components("tiny")
    samples = read_manifest(str(shapes))
    edits = [s for s in samples if s.conditions][:3]
    loaded = [
        load_training_sample(sample, shapes.parent, width, height)
        for sample in [*samples[:4], *edits]
        for width, height in ((64, 64), (96, 64))
    ]
    batched = encode_for_cache_batch(components, loaded, batch_size=3)  # sizes and T2I/edit interleave
    for sample, (encoding, unconditional) in zip(loaded, batched, strict=True):
        alone = encode_sample(components, sample)
        assert encoding.target_grid == alone.target_grid
        assert encoding.condition_grids == alone.condition_grids
        assert torch.allclose(encoding.target, alone.target, atol=1e-5)  # channels-last reorders sums
        assert torch.equal(encoding.embeds, alone.embeds) and torch.equal(
            encoding.image_pad_mask, alone.image_pad_mask
        )
        if sample.condition_images:
            assert torch.allclose(encoding.condition_latents, alone.condition_latents, atol=1e-5)
            assert unconditional is not None and not torch.equal(unconditional.embeds, encoding.embeds)
        else:
            assert encoding.condition_latents is None and unconditional is None


def relative_manifest(shapes, out, task=None):
    """A copy of the shapes manifest at `out` with image paths relative to the shapes folder (and only the
    rows of `task`, if given)."""
    import pyarrow as pa

    table = pq.read_table(shapes)
    if task:
        table = table.take([i for i, t in enumerate(table.column("task").to_pylist()) if t == task])
    prefix = f"{shapes.parent}/"
    for name in ("path", "conditions"):
        column = table.column(name).to_pylist()
        strip = (
            (lambda p: p.removeprefix(prefix))
            if name == "path"
            else (lambda ps: [p.removeprefix(prefix) for p in ps])
        )
        index = table.schema.get_field_index(name)
        table = table.set_column(
            index, name, pa.array([strip(v) for v in column], table.schema.field(name).type)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return out


def test_a_cache_from_another_model_other_buckets_or_before_fingerprints_is_refused(
    cached, small_recipe, tmp_path
):
    reader = CacheReader(cached)
    assert reader.fingerprint["buckets"] == ["128x64", "64x64"]  # the recipe's two stages
    reader.check(load_components("tiny", seed=0), [(64, 64), (128, 64)])  # the model that made it
    with pytest.raises(UserError, match="another vae"):
        reader.check(load_components("tiny", seed=1), [(64, 64)])  # other random weights
    with pytest.raises(UserError, match="not 128x128"):
        reader.check(load_components("tiny", seed=0), [(64, 64), (128, 128)])
    # A cache written before fingerprints (the bare entries): training stops at start, asking for a rebuild.
    old = tmp_path / "old"
    shutil.copytree(cached, old)
    (old / "index.json").write_text(json.dumps(reader.index))
    overrides = [f"output_dir={tmp_path / 'r'}", "max_steps=1", f"data.cache_dir={old}"]
    with pytest.raises(UserError, match="rebuild it"):
        train(load_config(TrainConfig, small_recipe, overrides))
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_samples_missing_from_the_cache_and_a_renormalised_mixture_are_reported(
    cached, small_recipe, shapes, tmp_path
):
    written = json.loads((cached / "index.json").read_text())
    kept = dict(list(written["entries"].items())[::2])  # half the samples lack a cached copy
    (cached / "index.json").write_text(json.dumps({**written, "entries": kept}))
    # Only the T2I rows, in a manifest elsewhere: the images are read under data.root.
    elsewhere = tmp_path / "elsewhere"
    relative_manifest(shapes, elsewhere / "manifest.parquet", task="t2i")
    overrides = [
        f"output_dir={tmp_path / 'r'}",
        "max_steps=4",
        f"data.cache_dir={cached}",
        f"data.manifest={elsewhere / 'manifest.parquet'}",
        f"data.root={shapes.parent}",
    ]
    train(load_config(TrainConfig, small_recipe, overrides))
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["cache_misses"] > 0 and not report["skipped_rows"]
    metrics = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("cache_misses", 0) for r in metrics) == report["cache_misses"]
    # Stage b asks for T2I:edit 0.5:0.5, but this manifest has no edits.
    assert list(report["mixture_renormalised"]) == ["b"]
    assert "0.5 requested, 1 drawn" in report["mixture_renormalised"]["b"]


def test_a_damaged_index_or_part_index_is_dropped_with_a_warning(cached, tmp_path):
    entries = len(CacheReader(cached).index)
    (cached / "index-p7.json").write_text('{"format": 2, "fingerprint": {"vae": "ab')  # killed mid-write
    with pytest.warns(UserWarning, match="index-p7.json is damaged"):
        merge_part_indexes(cached)
    assert len(CacheReader(cached).index) == entries and not (cached / "index-p7.json").exists()
    (cached / "index.json").write_text((cached / "index.json").read_text()[:100])
    with pytest.warns(UserWarning, match="index.json is damaged"):
        assert len(CacheReader(cached).index) == 0  # every sample is then a counted cache miss


def test_cache_reads_images_under_the_recipes_data_root_and_fails_counting_missing_ones(
    small_recipe, shapes, tmp_path
):
    elsewhere = tmp_path / "elsewhere"
    relative_manifest(shapes, elsewhere / "manifest.parquet")  # the images stay with the original
    recipe = tmp_path / "rooted.yaml"
    recipe.write_text(
        small_recipe.read_text().replace("num_workers: 1}", f"num_workers: 1, root: {shapes.parent}}}")
    )
    manifest = str(elsewhere / "manifest.parquet")
    result = run_cli("cache", manifest, "-m", "tiny", "-o", str(tmp_path / "c"), "--recipe", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(CacheReader(tmp_path / "c").index) == 72
    # Without a root, the manifest's own folder: no images there.
    result = run_cli("cache", manifest, "-m", "tiny", "-o", str(tmp_path / "d"), "--resolution", "64")
    assert result.returncode == 2
    assert "36 sample images could not be read" in result.stderr and "36 missing image" in result.stderr
