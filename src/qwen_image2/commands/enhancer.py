"""`qwen-image2 enhance` (rewrite one prompt) and `qwen-image2 enhancer ...` (make data, SFT, GRPO)."""

import typer

app = typer.Typer(help="The prompt enhancer: SFT data by reverse engineering, SFT, GRPO.", no_args_is_help=True)
