"""`qwen-image2 synth`: procedural training data, made locally."""

from pathlib import Path

import typer

from qwen_image2.errors import UserError

KINDS = ("shapes",)


def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the images and manifest.parquet."),
    n: int = typer.Option(64, "--n", help="Number of T2I samples (edit pairs: half as many more)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same data."),
    kind: str = typer.Option(
        "shapes", "--kind", help="shapes: coloured shapes with captions and recolour edits."
    ),
) -> None:
    """Write a procedural dataset in the shared sample schema, ready for `qwen-image2 train`.

    Examples:

      qwen-image2 synth --kind shapes --out data/shapes --n 64

      qwen-image2 synth --out /tmp/shapes --n 1000 --seed 3
    """
    if kind not in KINDS:
        raise UserError(f"--kind {kind!r}: choose one of {', '.join(KINDS)}")
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    from qwen_image2.data.synthetic.shapes import write_shapes_dataset

    typer.echo(str(write_shapes_dataset(out, n, seed)))
