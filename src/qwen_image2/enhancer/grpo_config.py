"""The GRPO recipe: which enhancer to start from, which rows, which frozen generator, how to sample, train
and reward. One field per knob, documented here once; `qwen-image2 enhancer grpo RECIPE key=value ...`.

Defaults follow reference/serving_enhancer_rl_distill.md §7.6 (TRL's GRPOTrainer): loss dapo, rewards
scaled per group, no KL (beta 0), clip epsilon 0.2, temperature 1.0 so that a group's answers differ.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from qwen_image2.config import Section
from qwen_image2.errors import UserError


class RenderSection(Section):
    """How the frozen generator draws each rewrite (the demo model: 128 px, 20 steps, guidance 2, '')."""

    size: int = Field(128, description="square side in pixels; the aspect ratio in the answer is not drawn")
    steps: int = Field(20, ge=1, description="denoising steps per image")
    guidance: float = Field(2.0, ge=1.0, description="true-CFG scale; 1 turns CFG off")
    negative_prompt: str = Field("", description="what CFG pushes away from ('' = the unconditional)")
    seed: int = Field(0, description="added to each row's own seed: a group shares its noise")
    text_bucket: int = Field(64, ge=1, description="prompts padded to a multiple of this many tokens batch")

    @model_validator(mode="after")
    def _multiple_of_32(self):
        if self.size % 32:
            raise ValueError(f"render.size {self.size} must be a multiple of 32 (VAE cell x patch)")
        return self


class TrainSection(Section):
    """TRL GRPOConfig's knobs that a recipe sets."""

    num_generations: int = Field(4, ge=2, description="group size G: answers sampled per prompt")
    prompts_per_step: int = Field(1, ge=1, description="prompts (groups) per optimiser step")
    max_completion_length: int = Field(128, ge=1, description="new tokens per answer")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    beta: float = Field(0.0, ge=0, description="KL coefficient; 0 loads no reference model")
    epsilon: float = Field(0.2, gt=0, description="PPO-style clip of the importance ratio")
    learning_rate: float = Field(1e-6, gt=0)
    max_steps: int = Field(20, ge=1, description="optimiser steps")
    save_every: int = Field(5, ge=1, description="a Trainer checkpoint every this many steps (resume)")
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    torch_threads: int | None = Field(2, ge=1, description="torch intra-op threads; None leaves torch's")


class RewardWeights(Section):
    """TRL's reward_weights, one per reward; 0 leaves a reward out (and its scorer unneeded)."""

    json_valid: float = Field(1.0, description="the answer is strict JSON with a rewritten_prompt")
    quotes_kept: float = Field(1.0, description="every quoted text of the request copied verbatim")
    length: float = Field(0.5, description="the rewrite's word count within length.min_words..max_words")
    language: float = Field(0.5, description="the rewrite is in the request's language")
    no_invented_quotes: float = Field(0.5, description="no quoted text the user did not ask for")
    ocr: float = Field(1.0, description="the requested texts read back from the image (rows' `texts`)")
    colour: float = Field(0.5, description="text and background colours the user stated (`requested`)")
    judge: float = Field(0.0, description="an MLLM judge: does the image fulfil the original request")
    aesthetic: float = Field(0.0, description="LAION aesthetic head over CLIP ViT-L/14 features")


class LengthSection(Section):
    min_words: int = Field(8, ge=1)
    max_words: int = Field(120, ge=1)


class JudgeSection(Section):
    """The MLLM judge: an OpenAI-compatible VLM endpoint, or a local Qwen3-VL folder."""

    kind: Literal["none", "endpoint", "local"] = "none"
    url: str | None = Field(None, description="endpoint base URL, e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="the served model's name (endpoint)")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key")
    timeout_s: float = Field(30.0, gt=0)
    path: Path | None = Field(None, description="a Qwen3-VL transformers folder (local)")


class AestheticSection(Section):
    """LAION's improved aesthetic predictor: an MLP head (`head`, a .pth state dict) over CLIP features."""

    head: Path | None = Field(None, description="the head's weights, e.g. sac+logos+ava1-l14-linearMSE.pth")
    clip_model: str = Field("ViT-L-14", description="the open_clip architecture the head was fitted on")
    clip_weights: Path | None = Field(None, description="that CLIP's weights file (open_clip `pretrained`)")


class GRPOConfig(Section):
    base: Path = Field(..., description="the causal-LM folder to start from (SFT's model/)")
    data: Path = Field(..., description="enhancer rows (JSONL, enhancer/rows.py)")
    generator: str = Field(..., description="the frozen generator: a diffusers folder or a preset name")
    output_dir: Path = Field(Path("runs/enhancer-grpo"), description="checkpoints, metrics, report, model/")
    device: str = "cpu"
    dtype: str = "float32"
    log_every: int = Field(1, ge=1, description="metrics and a rollout contact sheet every this many steps")
    render: RenderSection = RenderSection()
    train: TrainSection = TrainSection()
    rewards: RewardWeights = RewardWeights()
    length: LengthSection = LengthSection()
    judge: JudgeSection = JudgeSection()
    aesthetic: AestheticSection = AestheticSection()

    @model_validator(mode="after")
    def _consistent(self):
        if self.length.min_words > self.length.max_words:
            raise ValueError("length.min_words must not exceed length.max_words")
        return self


IMAGE_REWARDS = ("ocr", "colour", "judge", "aesthetic")


def check_inputs(config: GRPOConfig) -> None:
    """Everything a user can get wrong, before any model loads: a UserError naming it and the fix."""
    if not (config.base / "config.json").is_file():
        raise UserError(f"base {config.base}: not a causal-LM folder (no config.json); give SFT's model/")
    if not config.data.is_file():
        raise UserError(f"data {config.data}: no such file (rows from `qwen-image2 enhancer data`)")
    weights = config.rewards.model_dump()
    if not any(weights.values()):
        raise UserError("every reward weight is 0: give at least one reward a weight (rewards.json_valid=1)")
    if weights["judge"] and config.judge.kind == "none":
        raise UserError(
            "rewards.judge has a weight but no judge: set judge.kind=endpoint (judge.url, "
            "judge.model) or judge.kind=local (judge.path), or rewards.judge=0"
        )
    if config.judge.kind == "endpoint" and weights["judge"] and not (config.judge.url and config.judge.model):
        raise UserError("judge.kind=endpoint needs judge.url and judge.model")
    if (
        config.judge.kind == "local"
        and weights["judge"]
        and not (config.judge.path and config.judge.path.is_dir())
    ):
        raise UserError(f"judge.path {config.judge.path}: give a Qwen3-VL folder for judge.kind=local")
    if weights["aesthetic"]:
        head = config.aesthetic.head
        if head is None:
            raise UserError(
                "rewards.aesthetic has a weight but no scorer: set aesthetic.head (LAION's MLP "
                "weights) and aesthetic.clip_weights, or rewards.aesthetic=0"
            )
        for name, path in (
            ("aesthetic.head", head),
            ("aesthetic.clip_weights", config.aesthetic.clip_weights),
        ):
            if path is None or not path.is_file():
                raise UserError(f"{name} {path}: no such file")
