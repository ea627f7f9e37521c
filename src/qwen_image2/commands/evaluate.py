"""`qwen-image2 eval ...`: evaluation commands, one sub-app (`vae`, `pairs`, `text`)."""

import json
from pathlib import Path

import typer

from qwen_image2.commands.options import (
    DEVICE,
    DTYPE,
    ENHANCER_MODEL,
    GUIDANCE,
    NEGATIVE_PROMPT,
    SEED,
    cfg_negative,
    check_device,
    check_model,
    check_out_file,
    choice,
    load_pipeline,
    picture_beside,
)
from qwen_image2.errors import UserError
from qwen_image2.evaluation.vae_report import BENCHMARKS

eval_app = typer.Typer(
    help="Evaluate models: VAE reconstruction, image pairs, text rendering and editing.", no_args_is_help=True
)

LPIPS_NET = typer.Option(
    "none",
    "--lpips",
    callback=choice("alex", "vgg", "none"),
    help="LPIPS backbone: alex (the metric), vgg (OmniDoc's), or none.",
)
LPIPS_WEIGHTS = typer.Option(
    None, "--lpips-weights", help="torchvision backbone .pth (default: torch's hub cache)."
)
BENCHMARK = typer.Option(
    "text",
    "--benchmark",
    callback=choice(*BENCHMARKS),
    help="Anchor table to place the result in: imagenet, text, omnidoc.",
)
WORST = typer.Option(8, "--worst", min=0, help="Reconstructions shown in the worst-cases PNG.")
SIZE = typer.Option(
    None,
    "--size",
    help="Output side in pixels (edits: the source's aspect); default: the model's training side.",
)
TEXT_STEPS = typer.Option(20, "--steps", min=1, help="Denoising steps.")
LIMIT = typer.Option(0, "--limit", min=0, help="Use only the first N entries of each set (0: all).")


def _check_folder(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise UserError(f"{what} {path} is not a folder")


def _check_file(path: Path | None, flag: str) -> None:
    if path is not None and not path.is_file():
        raise UserError(f"{flag} {path} " + ("is not a file" if path.exists() else "does not exist"))


def _lpips(net: str, weights: Path | None, device: str):
    if net == "none":
        return None
    from qwen_image2.metrics.fidelity import build_lpips

    return build_lpips(net, weights).to(device)


def _print_summary(result: dict, paths: dict) -> None:
    shown = {k: v for k, v in result.items() if k not in ("per_image", "skipped_images", "report")}
    print(json.dumps(shown, indent=2))
    for row in result["skipped_images"]:
        typer.echo(f"skipped {row['name']}: {row['reason']}", err=True)
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}", err=True)


@eval_app.command("vae")
def vae(
    model: str = typer.Option(
        ..., "--model", "-m", help="A diffusers model folder, its vae/ folder, or a preset."
    ),
    data: Path = typer.Option(..., "--data", help="Folder of images to reconstruct."),
    out: Path = typer.Option(Path("vae_eval.json"), "--out", "-o", help="JSON to write (+ .worst.png, .md)."),
    size: int = typer.Option(256, "--size", help="Center-crop side in pixels (a multiple of 16)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images per VAE call."),
    lpips: str = LPIPS_NET,
    lpips_weights: Path = LPIPS_WEIGHTS,
    fid_weights: Path = typer.Option(
        None, "--fid-weights", help="Compute rFID with pytorch-fid's Inception (this .pth or the hub cache)."
    ),
    benchmark: str = BENCHMARK,
    worst: int = WORST,
    device: str = DEVICE,
) -> None:
    """Reconstruct a folder of images (fp32, posterior mode) and report PSNR, SSIM, LPIPS and rFID.

    Examples:

      qwen-image2 eval vae --model ./Qwen-Image-2.1 --data ./imagenet-val-1k --benchmark imagenet

      qwen-image2 eval vae --model runs/vae-tiny/export --data ./text-128 --size 128 --out tiny.json

      qwen-image2 eval vae -m ./Qwen-Image-2.1 --data ./omnidoc --lpips vgg --benchmark omnidoc
    """
    from qwen_image2.data.images import list_images
    from qwen_image2.evaluation.reconstruction import evaluate_vae
    from qwen_image2.evaluation.vae_report import save_report
    from qwen_image2.metrics.fidelity import build_fid_features
    from qwen_image2.models.loading import load_vae

    if size <= 0 or size % 16:
        raise UserError(f"--size {size}: must be a positive multiple of 16 (the VAE folds 16x16 pixels)")
    device, _ = check_device(device)
    check_out_file(out)
    _check_file(lpips_weights, "--lpips-weights")
    _check_file(fid_weights, "--fid-weights")
    _check_folder(data, "--data")
    paths = list_images(data)
    check_model(model)
    vae_model = load_vae(model).to(device)
    fid = build_fid_features(fid_weights) if fid_weights is not None else None
    result, worst_pairs = evaluate_vae(
        vae_model, paths, size, batch_size, _lpips(lpips, lpips_weights, device), fid, keep=worst
    )
    result.update(model=model, data=str(data), size=size, lpips_net=lpips, protocol="vae_eval_perf.md §4")
    setting = f"f{vae_model.config.scale_factor_spatial}c{vae_model.config.z_dim}"
    name = Path(model).resolve().parent.name if Path(model).name in ("export", "vae") else Path(model).name
    _print_summary(result, save_report(result, worst_pairs, out, name, setting, benchmark))


@eval_app.command("pairs")
def pairs(
    reference: Path = typer.Argument(..., help="Folder of reference (ground-truth) images."),
    prediction: Path = typer.Argument(..., help="Folder of reconstructions, matched by file name stem."),
    out: Path = typer.Option(
        Path("pairs_eval.json"), "--out", "-o", help="JSON to write (+ .worst.png, .md)."
    ),
    lpips: str = LPIPS_NET,
    lpips_weights: Path = LPIPS_WEIGHTS,
    benchmark: str = BENCHMARK,
    worst: int = WORST,
    device: str = DEVICE,
) -> None:
    """Score two folders of images matched by name (PSNR, SSIM, optional LPIPS), e.g. any VAE's outputs.

    Images are compared as they are (no resizing); a missing counterpart, an unreadable file or a size
    mismatch is skipped, counted and listed.

    Examples:

      qwen-image2 eval pairs ./gt ./recon --out recon.json

      qwen-image2 eval pairs ./omnidoc/gt ./flux-recon --lpips vgg --benchmark omnidoc
    """
    from qwen_image2.evaluation.reconstruction import evaluate_pairs
    from qwen_image2.evaluation.vae_report import save_report

    device, _ = check_device(device)
    check_out_file(out)
    _check_file(lpips_weights, "--lpips-weights")
    _check_folder(reference, "REFERENCE")
    _check_folder(prediction, "PREDICTION")
    result, worst_pairs = evaluate_pairs(
        reference, prediction, _lpips(lpips, lpips_weights, device), keep=worst
    )
    result.update(reference=str(reference), prediction=str(prediction), lpips_net=lpips)
    _print_summary(result, save_report(result, worst_pairs, out, prediction.name, "—", benchmark))


@eval_app.command("text")
def text(
    model: str = typer.Option(
        ..., "--model", "-m", help="A diffusers model folder (e.g. checkpoints/tiny-demo) or a preset."
    ),
    prompts: list[Path] = typer.Option(
        None,
        "--prompts",
        help="JSONL prompt set; repeat for several (default: the held-out EN words and word edits).",
    ),
    out: Path = typer.Option(
        Path("text_eval.json"), "--out", "-o", help="JSON to write (+ NAME.sheet.png beside it)."
    ),
    size: int = SIZE,
    steps: int = TEXT_STEPS,
    guidance: float = GUIDANCE,
    negative_prompt: str = NEGATIVE_PROMPT,
    seed: int = SEED,
    limit: int = LIMIT,
    enhancer: str | None = typer.Option(
        None,
        "--enhancer",
        help="Rewrite every prompt first: an enhancer folder or an OpenAI-compatible chat URL.",
    ),
    enhancer_model: str | None = ENHANCER_MODEL,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Generate from held-out prompts, read the images with Tesseract, and score text rendering and edits.

    Figures: word accuracy, exact match and normalised edit distance per language; for edits, success
    (new text read, old gone), PSNR outside the edit mask, and the global shift (phase correlation).
    With --enhancer, each prompt is rewritten first and the enhancer's own figures are added.

    Examples:

      qwen-image2 eval text --model checkpoints/tiny-demo --size 64 --out demo_text.json

      qwen-image2 eval text -m ./Qwen-Image-2.1 --prompts my_posters.jsonl --size 1024 --steps 40

      qwen-image2 eval text -m checkpoints/tiny-demo --guidance 4 --negative-prompt "" --out cfg.json

      qwen-image2 eval text -m tiny --limit 2 --steps 2 --size 64 --out /tmp/t.json
    """
    from qwen_image2.evaluation.text_rendering import default_prompt_files, evaluate_text, save_sheet

    setup = _TextSetup(model, prompts or default_prompt_files(), out, size, limit, device, dtype)
    rewrite = None
    if enhancer is not None:
        from qwen_image2.commands.enhancer import load_command_enhancer
        from qwen_image2.enhancer.evaluation import enhancer_rewriter

        rewrite = enhancer_rewriter(load_command_enhancer(enhancer, enhancer_model, setup.size))
    generate, negative_prompt = setup.generator(steps, seed, guidance, negative_prompt)
    result, shown = evaluate_text(setup.entries, generate, setup.size, rewrite=rewrite)
    if rewrite is not None:
        from qwen_image2.enhancer.evaluation import summarize_rewrites

        result = {"enhancer": summarize_rewrites(result["per_sample"])} | result
    result = (
        {
            "model": model,
            "prompts": [str(f) for f in setup.files],
            "size": setup.size,
            "steps": steps,
            "guidance": guidance,
            "negative_prompt": negative_prompt,
            "seed": seed,
        }
        | ({"enhancer_spec": enhancer} if enhancer else {})
        | result
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    sheet = save_sheet(shown, picture_beside(out, "sheet"))
    print(json.dumps({k: v for k, v in result.items() if k != "per_sample"}, indent=2, ensure_ascii=False))
    typer.echo(f"wrote {out}, {sheet}", err=True)


@eval_app.command("enhancer")
def enhancers(
    model: str = typer.Option(
        ..., "--model", "-m", help="The generator: a diffusers model folder (e.g. checkpoints/tiny-demo)."
    ),
    enhancer: list[str] = typer.Option(
        None,
        "--enhancer",
        help="LABEL=SPEC (a folder or an OpenAI-compatible chat URL); repeat to compare, e.g. sft=... grpo=...",
    ),
    enhancer_model: str | None = ENHANCER_MODEL,
    raw: bool = typer.Option(True, "--raw/--no-raw", help="Also score the prompts as typed (column 'raw')."),
    prompts: list[Path] = typer.Option(
        None,
        "--prompts",
        help="JSONL prompt set; repeat (default: the held-out colloquial T2I and edit sets).",
    ),
    out: Path = typer.Option(
        Path("enhancer_eval.json"),
        "--out",
        "-o",
        help="JSON to write (+ NAME.md table and sheets beside it).",
    ),
    size: int = SIZE,
    steps: int = TEXT_STEPS,
    guidance: float = GUIDANCE,
    negative_prompt: str = NEGATIVE_PROMPT,
    seed: int = SEED,
    limit: int = LIMIT,
    device: str = DEVICE,
    dtype: str = DTYPE,
) -> None:
    """Score prompt enhancers side by side: parse_ok, quotes kept, rewrite latency, and the generator's OCR
    word accuracy and edit success on what each enhancer wrote (same sets, sizes and seeds in every column).

    Examples:

      qwen-image2 eval enhancer -m checkpoints/tiny-demo --enhancer tiny=checkpoints/tiny-enhancer \
          --steps 20 --guidance 2 --negative-prompt '' --out outputs/enhancer_eval.json

      qwen-image2 eval enhancer -m checkpoints/tiny-demo --enhancer sft=runs/sft/model --enhancer grpo=runs/grpo/model
    """
    from qwen_image2.commands.enhancer import load_command_enhancer
    from qwen_image2.enhancer.evaluation import (
        RAW,
        colloquial_prompt_files,
        comparison_table,
        enhancer_rewriter,
        summarize_rewrites,
    )
    from qwen_image2.evaluation.text_rendering import evaluate_text, save_sheet

    specs = dict(_labelled(item) for item in enhancer or [])
    if not specs and not raw:
        raise UserError("nothing to score: give --enhancer LABEL=SPEC, or leave --raw on")
    if raw and RAW in specs:
        raise UserError(
            f"--enhancer {RAW}=...: the label {RAW!r} is the column of prompts as typed; rename it"
        )
    setup = _TextSetup(model, prompts or colloquial_prompt_files(), out, size, limit, device, dtype)
    rewriters = {RAW: None} if raw else {}
    for label, spec in specs.items():  # every enhancer loads before the first image is drawn
        rewriters[label] = enhancer_rewriter(load_command_enhancer(spec, enhancer_model, setup.size))
    generate, negative_prompt = setup.generator(steps, seed, guidance, negative_prompt)
    results, sheets = {}, []
    for label, rewrite in rewriters.items():
        result, shown = evaluate_text(setup.entries, generate, setup.size, rewrite=rewrite, desc=label)
        if rewrite is not None:
            result = {"enhancer": summarize_rewrites(result["per_sample"])} | result
        results[label] = result
        sheets.append(save_sheet(shown, picture_beside(out, f"{label}.sheet")))
    table = comparison_table(results)
    report = {
        "model": model,
        "enhancers": specs,
        "prompts": [str(f) for f in setup.files],
        "size": setup.size,
        "steps": steps,
        "guidance": guidance,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    table_path = out.with_suffix(".md")
    table_path.write_text(table)
    print(table, end="")
    typer.echo(f"wrote {out}, {table_path}, {', '.join(str(p) for p in sheets)}", err=True)


def _labelled(item: str) -> tuple[str, str]:
    label, sep, spec = item.partition("=")
    if not sep or not label.strip() or not spec.strip() or "/" in label:
        raise UserError(f"--enhancer {item!r}: write LABEL=SPEC, e.g. sft=runs/enhancer-sft/model")
    return label.strip(), spec.strip()


class _TextSetup:
    """What `eval text` and `eval enhancer` check and load first: the model, the size, the prompts."""

    def __init__(self, model: str, files: list[Path], out: Path, size, limit: int, device: str, dtype: str):
        from qwen_image2.evaluation.text_rendering import load_prompts
        from qwen_image2.metrics.ocr import check_tesseract
        from qwen_image2.models.loading import training_resolution_of

        check_device(device, dtype)
        check_model(model)
        size = training_resolution_of(model) if size is None else size
        if size <= 0 or size % 32:
            raise UserError(f"--size {size}: must be a positive multiple of 32")
        check_out_file(out)
        self.files, self.size = list(files), size
        self.entries = [
            e for f in self.files for e in (load_prompts(f)[:limit] if limit > 0 else load_prompts(f))
        ]
        check_tesseract(sorted({e.lang for e in self.entries}))  # before the model loads: fail in a second
        self.model, self.device, self.dtype = model, device, dtype

    def generator(self, steps: int, seed: int, guidance: float, negative_prompt: str):
        """(a Generate over the loaded pipeline, the negative prompt CFG will use)."""
        from qwen_image2.evaluation.text_rendering import pipeline_generator

        pipe = load_pipeline(self.model, self.device, self.dtype)
        pipe.set_progress_bar_config(disable=True)
        negative_prompt = cfg_negative(guidance, negative_prompt)
        return pipeline_generator(pipe, steps, seed, guidance, negative_prompt), negative_prompt
