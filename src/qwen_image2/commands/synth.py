"""`qwen-image2 synth`: procedural training data, made locally."""

from pathlib import Path

import typer

from qwen_image2.commands.options import check_out_folder, choice
from qwen_image2.errors import UserError

KINDS = ("text", "words", "shapes")
LANGS = ("en", "zh")
# What each text kind draws by default: the words kind is the tiny demo's curriculum (64-128 px, EN).
KIND_DEFAULTS = {"text": ("64,128,256,512,1024", "en,zh"), "words": ("64,128", "en")}


def _ints(value: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise UserError(f"{option} {value!r}: write comma-separated numbers, e.g. 64,128") from None


def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the images and manifest.parquet."),
    n: int = typer.Option(64, "--n", min=1, help="Number of T2I samples (edit pairs: half as many more)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same data."),
    kind: str = typer.Option(
        "text",
        "--kind",
        callback=choice(*KINDS),
        help="text: posters, signs, slides, paragraphs (EN+ZH) with edits; words: one-word posters "
        "for a tiny model; shapes: coloured shapes with recolour edits.",
    ),
    tiers: str = typer.Option(
        None, "--tiers", help="Resolution tiers (text kinds), e.g. 64,128 (text: 64..1024; words: 64,128)."
    ),
    langs: str = typer.Option(None, "--langs", help="Languages (text kinds): en, zh or en,zh."),
    shard_size: int = typer.Option(
        1000, "--shard-size", min=1, help="Samples per shard folder (text kinds)."
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Processes writing shards in parallel (text kinds)."
    ),
) -> None:
    """Write a procedural dataset in the shared sample schema, ready for `qwen-image2 train`.

    A rerun with the same settings resumes: finished shards are kept.

    Examples:

      qwen-image2 synth --out data/text --n 10000 --workers 8

      qwen-image2 synth --kind words --out data/words --n 20000 --tiers 64

      qwen-image2 synth --kind text --out data/zh-512 --n 1000 --tiers 512 --langs zh

      qwen-image2 synth --kind shapes --out data/shapes --n 64
    """
    check_out_folder(out)
    if kind == "shapes":
        from qwen_image2.data.synthetic.shapes import write_shapes_dataset

        typer.echo(str(write_shapes_dataset(out, n, seed)))
        return
    from qwen_image2.data.synthetic.writer import TextDataConfig, write_text_dataset

    default_tiers, default_langs = KIND_DEFAULTS[kind]
    tier_values = _ints(tiers or default_tiers, "--tiers")
    if not tier_values or min(tier_values) < 1:
        raise UserError(f"--tiers {tiers!r}: each tier must be a positive number of pixels")
    lang_values = tuple(lang.strip() for lang in (langs or default_langs).split(",") if lang.strip())
    if not lang_values or set(lang_values) - set(LANGS):
        raise UserError(f"--langs {langs!r}: choose from {', '.join(LANGS)}, comma-separated")
    config = TextDataConfig(
        style="full" if kind == "text" else "words",
        tiers=tier_values,
        langs=lang_values,
        shard_size=shard_size,
    )
    config.check()  # tiers and fonts, before anything is written
    typer.echo(str(write_text_dataset(out, n, seed, config, workers=workers)))
