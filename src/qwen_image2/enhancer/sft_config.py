"""The SFT recipe: which enhancer to start from, which rows, how to train. One field per knob, documented
here once; `qwen-image2 enhancer sft RECIPE key=value ...`.

The loss is on the answer only (TRL's completion_only_loss over prompt-completion rows): the chat is what
`PromptEnhancer.rewrite` sends at inference, the completion the reasoning chain in <think> tags, then the
2.1 contract's JSON.
"""

from pathlib import Path

from pydantic import Field

from qwen_image2.config import Section
from qwen_image2.errors import UserError
from qwen_image2.training.lora import Lora

TINY = "tiny"  # `base: tiny` starts from the tiny random enhancer (enhancer/tiny.py)
QWEN3_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class SFTTrainSection(Section):
    """TRL SFTConfig's knobs that a recipe sets."""

    max_steps: int = Field(2000, ge=1, description="optimiser steps")
    batch_size: int = Field(32, ge=1, description="rows per device step")
    gradient_accumulation: int = Field(1, ge=1, description="device steps per optimiser step")
    learning_rate: float = Field(1e-3, gt=0)
    lr_scheduler: str = Field("cosine", description="a transformers scheduler name")
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(384, ge=16, description="tokens per row (chat + answer); longer rows are cut")
    save_every: int = Field(200, ge=1, description="a Trainer checkpoint every this many steps (resume)")
    keep_checkpoints: int = Field(2, ge=1)
    eval_every: int = Field(200, ge=1, description="eval loss on the held-out rows every this many steps")
    eval_rows: int | None = Field(256, ge=1, description="held-out rows the eval loss uses (None: all)")
    seed: int = 0
    torch_threads: int | None = Field(2, ge=1, description="torch intra-op threads; None leaves torch's")


class EnhancerLora(Lora):
    """The DiT trainer's LoRA settings, aimed at a Qwen3 causal LM's linear layers."""

    targets: list[str] = Field(default_factory=lambda: list(QWEN3_LINEARS))


class SFTConfig(Section):
    base: str = Field(TINY, description="a causal-LM folder to start from, or 'tiny' (random, enhancer/tiny)")
    base_seed: int = Field(0, description="the seed of the tiny random base")
    data: Path = Field(..., description="enhancer rows (JSONL, `qwen-image2 enhancer data`'s rows.jsonl)")
    eval_data: Path | None = Field(None, description="held-out rows for the eval loss (default: eval.jsonl)")
    reasoning: bool = Field(True, description="train the <think> reasoning chain before the JSON answer")
    output_dir: Path = Field(Path("runs/enhancer-sft"), description="checkpoints, metrics, report, model/")
    device: str = "cpu"
    log_every: int = Field(10, ge=1, description="a metrics.jsonl line every this many steps")
    train: SFTTrainSection = SFTTrainSection()
    lora: EnhancerLora = Field(
        default_factory=EnhancerLora,
        description="lora.enabled: train an adapter (merged into model/ at the end) instead of all weights",
    )

    def eval_path(self) -> Path | None:
        """The held-out rows: `eval_data`, else the data folder's eval.jsonl when there is one."""
        if self.eval_data is not None:
            return self.eval_data
        beside = self.data.with_name("eval.jsonl")
        return beside if beside.is_file() else None


def check_inputs(config: SFTConfig) -> None:
    """Everything a user can get wrong, before any model loads: a UserError naming it and the fix."""
    if config.base != TINY and not (Path(config.base) / "config.json").is_file():
        raise UserError(f"base {config.base}: not a causal-LM folder (no config.json); or give base=tiny")
    if not config.data.is_file():
        raise UserError(f"data {config.data}: no such file (rows from `qwen-image2 enhancer data`)")
    if config.eval_data is not None and not config.eval_data.is_file():
        raise UserError(f"eval_data {config.eval_data}: no such file")
