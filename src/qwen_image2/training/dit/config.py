"""The DiT training config: one recipe (YAML) of small parts; every field documented once, here."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from qwen_image2.config import Section
from qwen_image2.diffusion.loss import Sigma
from qwen_image2.training import schedule
from qwen_image2.training.ema import EmaConfig
from qwen_image2.training.lora import Lora
from qwen_image2.training.parallelize import Parallel


class BucketSpec(Section):
    """One resolution bucket of a stage: an aspect ratio at the stage's resolution."""

    aspect: str = Field(
        "1:1", description="W:H, e.g. 16:9; the size is the stage's resolution² area at it, /32."
    )
    batch_size: int = Field(4, ge=1, description="Global batch size (all ranks, all micro-batches).")
    probability: float = Field(1.0, ge=0, description="Relative sampling weight among the stage's buckets.")

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, value: str) -> str:
        parts = value.split(":")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"aspect {value!r} must look like 16:9")
        return value


class Stage(schedule.Stage):
    """One training stage (a row of the report's Table 2)."""

    resolution: int = Field(256, ge=32, description="Bucket area is resolution²; the report's 256p..2048p.")
    buckets: list[BucketSpec] = Field(default_factory=lambda: [BucketSpec()], min_length=1)
    t2i_ratio: float = Field(0.9, ge=0, le=1, description="Share of T2I batches; the rest are TI2I (edits).")
    min_side: int = Field(0, ge=0, description="Eligible data: shorter side at least this many pixels.")


class Optim(Section):
    name: Literal["adam", "adamw"] = Field("adam", description="The report uses Adam (Table 2).")
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = Field(0.001, ge=0, description="Report: 0.001.")
    grad_clip: float = Field(1.0, gt=0, description="Max global grad norm; report: 1.0.")


class Data(Section):
    manifest: str = Field(
        description="Parquet manifest in the shared sample schema (curation or synth output)."
    )
    root: str | None = Field(
        None, description="Folder relative image paths are read from (default: the manifest's)."
    )
    cache_dir: str | None = Field(
        None, description="Latent/condition caches from `qwen-image2 cache`, if any."
    )
    num_workers: int = Field(2, ge=0, description="Image-decoding threads; 0 decodes on the main thread.")


class Validation(Section):
    every: int = Field(0, ge=0, description="Steps between validations; 0 turns them off.")
    prompts: list[str] = Field(default_factory=list, description="Fixed T2I prompts for the sample grid.")
    holdout: int = Field(4, ge=0, description="Samples kept out of training for the held-out loss.")
    sigmas: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75])
    steps: int = Field(8, ge=1, description="Sampling steps for the grid.")
    size: int = Field(256, ge=32, multiple_of=32, description="Side of the grid's T2I samples, in pixels.")


class TrainConfig(Section):
    """`qwen-image2 train RECIPE [key=value ...]`."""

    model: str = Field("tiny", description="Base weights: a diffusers folder or a preset name (random init).")
    output_dir: str = Field(
        "runs/train", description="Checkpoints, logs, grids, report and the exported model."
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps (default: all stages).")
    checkpoint_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(3, ge=1, description="Keep only the newest k checkpoints.")
    seed: int = 0
    caption_dropout: float = Field(0.1, ge=0, le=1, description="Unconditional training share; report: 0.1.")
    export_ema: bool = Field(True, description="Export EMA weights (when EMA is on) instead of the raw ones.")
    data: Data
    stages: list[Stage] = Field(min_length=1)
    optim: Optim = Optim()
    sigma: Sigma = Sigma()
    ema: EmaConfig = EmaConfig()
    lora: Lora = Lora()
    parallel: Parallel = Parallel()
    validation: Validation = Validation()

    @model_validator(mode="after")
    def _unique_stage_names(self) -> "TrainConfig":
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        return self

    @property
    def total_steps(self) -> int:
        planned = sum(stage.steps for stage in self.stages)
        return min(planned, self.max_steps) if self.max_steps else planned
