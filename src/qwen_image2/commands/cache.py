"""`qwen-image2 cache`."""

from functools import partial
from pathlib import Path

import typer

from qwen_image2.commands.options import DEVICE, DTYPE, check_device, check_model, check_out_folder
from qwen_image2.errors import UserError


def cache(
    manifest: Path = typer.Argument(..., help="Parquet manifest in the shared sample schema."),
    model: str = typer.Option(
        ..., "--model", "-m", help="The model whose encoder and VAE to cache (folder/preset)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Cache folder (shards + index.json); reruns resume."),
    recipe: Path = typer.Option(
        None, "--recipe", help="Cache the bucket sizes of every stage of this recipe."
    ),
    resolution: int = typer.Option(
        None, "--resolution", min=32, help="Without --recipe: the standard aspect buckets here."
    ),
    shard_size: int = typer.Option(256, "--shard-size", min=1, help="Samples per shard file."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Samples per VAE call."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the VAE encoder (GPU)."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes encoding in parallel, each with its own copy of the encoders."
    ),
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Precompute VAE latents and Qwen3-VL condition states for training.

    Examples:

      qwen-image2 cache data/shapes/manifest.parquet --model tiny --out cache/shapes --recipe recipes/tiny.yaml

      qwen-image2 cache curated/manifest.parquet -m /models/Qwen-Image-2.1 -o cache/256 --resolution 256

      qwen-image2 cache data/words-128/manifest.parquet -m checkpoints/tiny-demo -o cache/words --resolution 128 --workers 8
    """
    if (recipe is None) == (resolution is None):
        raise UserError("give exactly one of --recipe or --resolution")
    device, torch_dtype = check_device(device, dtype)
    check_model(model)
    check_out_folder(out)
    from qwen_image2.data.buckets import ASPECT_RATIOS, Bucket, bucket_size, nearest_bucket
    from qwen_image2.data.caching import CacheSettings, build_cache
    from qwen_image2.data.loader import build_buckets, image_root, read_manifest
    from qwen_image2.models.loading import load_components

    if recipe is not None:
        from qwen_image2.config import load_config
        from qwen_image2.training.dit.config import TrainConfig

        config = load_config(TrainConfig, recipe, [f"data.manifest={manifest}"])
        plans = [(build_buckets(s.resolution, s.buckets), s.min_side) for s in config.stages]
        root = image_root(str(manifest), config.data.root)  # as the trainer reads them
    else:
        plans = [([Bucket(*bucket_size(resolution, a), 1, 1.0) for a in ASPECT_RATIOS], 0)]
        root = image_root(str(manifest))

    def sizes(sample) -> list[tuple[int, int]]:
        found = []
        for buckets, min_side in plans:
            if min(sample.width, sample.height) >= min_side:
                bucket = buckets[nearest_bucket(sample.width or 1, sample.height or 1, buckets)]
                found.append((bucket.width, bucket.height))
        return list(dict.fromkeys(found))

    samples = read_manifest(str(manifest))
    load = partial(load_components, model, dtype=torch_dtype, device=device)
    settings = CacheSettings(shard_size, batch_size, compile)
    buckets = [(b.width, b.height) for buckets, _ in plans for b in buckets]
    report = build_cache(samples, root, load, sizes, out, settings, workers, buckets)
    typer.echo(" ".join(f"{k}={v}" for k, v in report.items()))
    unreadable = {k: v for k, v in report.items() if k.startswith(("missing image", "corrupt image"))}
    if unreadable:
        counts = ", ".join(f"{v} {k}" for k, v in unreadable.items())
        raise UserError(
            f"{sum(unreadable.values())} sample images could not be read under {root} ({counts}); "
            "the rest are cached: fix the paths (data.root) or the files and rerun"
        )
