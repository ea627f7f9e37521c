"""The `qwen-image2` command: one app, a thin module per command group under `commands/`.

Command modules import heavy libraries (torch, diffusers, ray) inside their functions, so that
`qwen-image2 --help` and light commands start fast.
"""

import os
import sys
import warnings

import typer

from qwen_image2.commands import arena, cache, curate, enhancer, evaluate, generate, serve, synth, train, vae
from qwen_image2.errors import UserError

app = typer.Typer(
    name="qwen-image2",
    help="Qwen-Image-2.0-class generation and editing: run, train, curate, evaluate, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("generate")(generate.generate)
app.command("edit")(generate.edit)
app.command("train")(train.train)
app.command("synth")(synth.synth)
app.command("cache")(cache.cache)
app.command("curate")(curate.curate)
app.add_typer(arena.app, name="arena")
app.command("train-vae")(vae.train_vae)
app.add_typer(evaluate.eval_app, name="eval")
app.command("serve")(serve.serve)
app.command("enhance")(enhancer.enhance)
app.add_typer(enhancer.app, name="enhancer")


INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

# Library notices a user can do nothing about: DCP saving in one process by design, lpips calling
# torchvision's deprecated `pretrained=`. Our own progress bars (tqdm) stay.
QUIET_WARNINGS = (
    "torch.distributed is disabled, unavailable or uninitialized",
    "The parameter 'pretrained' is deprecated",
    "Arguments other than a weight enum or `None` for 'weights' are deprecated",
)


def quiet_libraries() -> None:
    """Quiet by default: known library notices filtered, transformers' weight-loading bars off."""
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=f".*{message}.*")
    # Read by huggingface_hub when transformers first loads (the commands import it lazily, after this).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: list[str] | None = None) -> None:
    """Entry point: a `UserError` becomes one `error:` line on stderr and exit code 2; Ctrl-C one line and
    exit code 130."""
    quiet_libraries()
    try:
        # Without standalone mode, typer returns the command's value, or the exit code of a typer.Exit,
        # and turns Ctrl-C into exit code 130: that code is the process's.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code:
            if code == INTERRUPTED:
                print("error: interrupted", file=sys.stderr)
            sys.exit(code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except typer.TyperException as err:  # usage errors (unknown option, bad value): one line too
        print(f"error: {err.format_message()}", file=sys.stderr)
        sys.exit(2)
