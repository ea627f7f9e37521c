"""`qwen-image2 curate`: filter raw images into a manifest, or re-threshold one for another stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from qwen_image2.commands.options import check_out_folder, choice
from qwen_image2.errors import UserError


def curate(
    sources: list[str] = typer.Argument(
        None, help="Folders of images (+ same-named .txt), .tar shards, .parquet files."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output folder (manifest, parts, report); reuse it to resume."
    ),
    stage: str = typer.Option("s1-256p", "--stage", help="Threshold set from the stages file."),
    filters: str = typer.Option(
        None, "--filters", help="Comma-separated subset, e.g. broken,resolution,duplicate."
    ),
    rethreshold: Path = typer.Option(
        None, "--rethreshold", help="Re-decide this manifest for --stage from its scores."
    ),
    tokenizer: str = typer.Option(
        None, "--tokenizer", help="Qwen tokenizer folder (AutoTokenizer), for `tokens`."
    ),
    clip_model: str = typer.Option("ViT-B-32", "--clip-model", help="open_clip model name or config JSON."),
    clip_weights: str = typer.Option(None, "--clip-weights", help="open_clip checkpoint for `clip`."),
    nsfw_model: str = typer.Option(
        None, "--nsfw-model", help="ONNX detector in NudeNet's format (default: bundled)."
    ),
    stages_file: str = typer.Option(
        None, "--stages-file", help="YAML of per-stage thresholds (default: built in)."
    ),
    workers: int = typer.Option(
        None, "--workers", min=0, help="Ray actors (default: one per core); 0: no Ray."
    ),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to run on (default: local)."),
    shard_size: int = typer.Option(
        1000, "--shard-size", min=1, help="Images per shard of a folder or parquet source."
    ),
    batch_size: int = typer.Option(
        32, "--batch-size", min=1, help="Images per filter batch inside a worker."
    ),
    max_pixels: int = typer.Option(
        100_000_000, "--max-pixels", min=1, help="Larger headers are rejected before decode."
    ),
    output_format: str = typer.Option(
        "text",
        "--format",
        callback=choice("text", "json"),
        help="text or json (the report, on stdout).",
    ),
) -> None:
    """Curate images with the report's eight filters into OUT/manifest.parquet (one row per input).

    Examples:

      qwen-image2 curate photos/ --out curated/ --tokenizer ./Qwen-Image-2.1/processor --clip-weights clip-b32.pt

      qwen-image2 curate shards/*.tar --out curated/ --filters broken,resolution,duplicate,entropy

      qwen-image2 curate pairs.parquet --out curated/ --stage s2-256p --ray-address ray://head:10001 ...

      qwen-image2 curate --rethreshold curated/manifest.parquet --stage s3-512p
    """
    from qwen_image2.data.curation import pipeline
    from qwen_image2.data.curation.config import RunSettings, parse_filters, stage_thresholds

    if out is not None:
        check_out_folder(out)
    stage_thresholds(stage, stages_file)  # an unknown --stage or a bad --stages-file, before any work
    if rethreshold is not None:
        if sources:
            raise UserError("--rethreshold reads stored scores; give no SOURCE with it")
        result = pipeline.rethreshold(rethreshold, stage, out, stages_file)
    else:
        if not sources:
            raise UserError("give at least one SOURCE (or --rethreshold MANIFEST)")
        if out is None:
            raise UserError("--out is required: the folder for the manifest, its parts and the report")
        for source in sources:
            if not Path(source).exists():
                raise UserError(f"SOURCE {source} does not exist")
        settings = RunSettings(
            filters=parse_filters(filters),
            tokenizer=tokenizer,
            clip_model=clip_model,
            clip_weights=clip_weights,
            nsfw_model=nsfw_model,
            max_pixels=max_pixels,
        )
        result = pipeline.curate(
            list(sources),
            out,
            stage,
            settings,
            stages_file,
            workers,
            ray_address,
            shard_size,
            batch_size,
            progress=sys.stderr.isatty(),
        )
    report = result.report
    if output_format == "json":
        print(json.dumps(report, indent=2))
        return
    print(f"manifest: {result.manifest}")
    print(f"passed {report['rows_passed']} of {report['rows_in']}")
    for name, count in report["rejected_by"].items():
        if count:
            print(f"  rejected by {name}: {count}")
    rate = report["throughput"].get("images_per_s")
    if rate:
        print(f"throughput: {rate:.1f} images/s")
