"""`qwen-image2 enhance` (rewrite one prompt) and `qwen-image2 enhancer ...` (make data, SFT, GRPO)."""

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from qwen_image2.commands.options import ENHANCER_MODEL
from qwen_image2.errors import UserError

if TYPE_CHECKING:
    from qwen_image2.enhancer.rewrite import PromptEnhancer, Rewrite

app = typer.Typer(
    help="The prompt enhancer: SFT data by reverse engineering, SFT, GRPO.", no_args_is_help=True
)


def load_command_enhancer(
    spec: str, enhancer_model: str | None, canvas_side: int, timeout: float = 30.0
) -> "PromptEnhancer":
    """The enhancer a command names (`--enhance`/`--enhancer`), its canvas scaled to `canvas_side`."""
    from qwen_image2.enhancer.loading import load_enhancer

    side = max(32, canvas_side // 32 * 32)  # the size table's sides are multiples of 32
    return load_enhancer(spec, model=enhancer_model, timeout_s=timeout, canvas_side=side)


def rewrite_for_command(enhancer: "PromptEnhancer", prompt: str, images: list) -> "Rewrite":
    """Rewrite `prompt` (edit mode when there are source images) and say on stderr what came of it."""
    rewrite = enhancer.rewrite(prompt, images, "edit" if images else "t2i")
    if rewrite.parse_ok:
        width, height = rewrite.size
        typer.echo(
            f"enhanced ({rewrite.aspect_ratio}, {width}x{height}): {rewrite.rewritten_prompt}", err=True
        )
    else:
        typer.echo(f"enhancer fell back to the prompt as given: {rewrite.reason}", err=True)
    return rewrite


def enhance(
    prompt: str = typer.Argument(
        ..., help="The request to rewrite (an edit instruction when --image is given)."
    ),
    enhancer: str = typer.Option(
        ...,
        "--enhancer",
        help="A causal-LM folder (e.g. checkpoints/tiny-enhancer) or an OpenAI-compatible chat URL.",
    ),
    image: list[Path] = typer.Option(
        [], "--image", "-i", help="A source image of an edit; repeat for several."
    ),
    enhancer_model: str | None = ENHANCER_MODEL,
    canvas_side: int = typer.Option(
        2048, "--canvas-side", min=32, help="The side of the 1:1 canvas the aspect ratio is scaled to."
    ),
    timeout: float = typer.Option(30.0, "--timeout", min=0.001, help="Seconds one rewrite may take."),
) -> None:
    """Rewrite a prompt with the prompt enhancer and print the result as JSON.

    A failed rewrite (timeout, unparsable answer, a quoted text not kept) prints the prompt as given with
    "parse_ok": false and the reason; the exit code is 0 either way.

    Examples:

      qwen-image2 enhance 'poster saying otter, red on navy' --enhancer checkpoints/tiny-enhancer --canvas-side 128

      qwen-image2 enhance 'make it say "DOG"' --image poster.png --enhancer http://127.0.0.1:8000/v1 --enhancer-model qwen3
    """
    from qwen_image2.data.images import read_image

    if not prompt.strip():  # before any model loads
        raise UserError("the prompt is empty: give the text to rewrite")
    for path in image:
        if not path.is_file():
            raise UserError(f"--image {path}: no such file")
    images = [read_image(path) for path in image]
    loaded = load_command_enhancer(enhancer, enhancer_model, canvas_side, timeout)
    rewrite = loaded.rewrite(prompt, images, "edit" if images else "t2i")
    result = {
        "prompt": prompt,
        "rewritten_prompt": rewrite.rewritten_prompt,
        "aspect_ratio": rewrite.aspect_ratio,
        "size": list(rewrite.size),
        "parse_ok": rewrite.parse_ok,
        "reason": rewrite.reason,
        "latency_s": round(rewrite.latency_s, 4),
    }
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@app.command("data")
def data(
    manifests: list[Path] = typer.Argument(..., help="Manifests with fine captions (synth's, curation's)."),
    out: Path = typer.Option(..., "--out", help="Folder for rows.jsonl, eval.jsonl and summary.json."),
    seed: int = typer.Option(0, help="Same seed, same rows."),
    variants: int = typer.Option(2, help="Colloquial prompts made from each caption."),
    limit: int | None = typer.Option(None, help="Use only the first N captioned rows."),
    eval_share: float = typer.Option(0.02, help="Share of captions kept apart for the SFT eval loss."),
    degrader: str | None = typer.Option(
        None, help="An LLM degrader: a causal-LM folder or an http(s) endpoint (default: rule-based)."
    ),
    degrader_model: str | None = typer.Option(None, help="The model an endpoint degrader serves."),
) -> None:
    """Reverse-engineer SFT rows: each fine caption made colloquial, with the reasoning back to it.

    Examples:

      qwen-image2 enhancer data data/grid-128/manifest.parquet --out runs/enhancer-data-tiny

      qwen-image2 enhancer data a.parquet b.parquet --out runs/pe --degrader http://127.0.0.1:8000/v1 \\
          --degrader-model Qwen3-8B
    """
    from qwen_image2.enhancer.reverse import LLMDegrader, make_data

    paraphraser = None
    if degrader:
        from qwen_image2.enhancer.loading import load_enhancer

        paraphraser = LLMDegrader(load_enhancer(degrader, model=degrader_model).backend)
    summary = make_data(manifests, out, seed, variants, limit, eval_share, paraphraser)
    typer.echo(json.dumps({k: summary[k] for k in ("rows", "eval_rows", "tasks", "specificity")}))
    typer.echo(str(out / "rows.jsonl"))


@app.command("grpo")
def grpo(
    recipe: Path = typer.Argument(..., help="A GRPO recipe (YAML), e.g. recipes/enhancer-grpo-tiny.yaml."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. train.max_steps=4."),
) -> None:
    """GRPO on enhancer rows, rewarded by what the frozen generator draws; rerunning resumes.

    Examples:

      qwen-image2 enhancer grpo recipes/enhancer-grpo-tiny.yaml

      qwen-image2 enhancer grpo recipes/enhancer-grpo-tiny.yaml train.max_steps=2 output_dir=runs/g

      qwen-image2 enhancer grpo recipes/enhancer-grpo-tiny.yaml rewards.judge=1 judge.kind=endpoint \\
          judge.url=http://127.0.0.1:8000/v1 judge.model=Qwen3-VL-8B-Instruct
    """
    from qwen_image2.enhancer.grpo import train_grpo
    from qwen_image2.enhancer.grpo_config import GRPOConfig, check_inputs

    _train_from_recipe(GRPOConfig, check_inputs, train_grpo, recipe, overrides)


@app.command("sft")
def sft(
    recipe: Path = typer.Argument(..., help="An SFT recipe (YAML), e.g. recipes/enhancer-sft-tiny.yaml."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. train.max_steps=100."),
) -> None:
    """SFT on reverse-engineered enhancer rows (loss on the reasoning and answer); rerunning resumes.

    Examples:

      qwen-image2 enhancer sft recipes/enhancer-sft-tiny.yaml

      qwen-image2 enhancer sft recipes/enhancer-sft-tiny.yaml base=Qwen3-0.6B train.learning_rate=2e-5
    """
    from qwen_image2.enhancer.sft import train_sft
    from qwen_image2.enhancer.sft_config import SFTConfig, check_inputs

    _train_from_recipe(SFTConfig, check_inputs, train_sft, recipe, overrides)


def _train_from_recipe(schema, check_inputs, train, recipe: Path, overrides: list[str] | None) -> None:
    """Load and check the recipe (every UserError before any model loads), echo it, train, print model/."""
    from qwen_image2.config import dump_config, load_config

    config = load_config(schema, recipe, overrides or [])
    check_inputs(config)
    typer.echo(dump_config(config), err=True)
    typer.echo(str(train(config)))
