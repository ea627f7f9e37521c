"""A training stage, one idea for every trainer: a stretch of steps with its peak learning rate, warm-up and
decay; where a global step falls among the stages, and the learning rate there."""

import math
from typing import Literal

from pydantic import Field

from qwen_image2.config import Section


class Stage(Section):
    """The part of a stage every trainer has; each trainer's stage adds what it varies (data, losses)."""

    name: str
    steps: int = Field(ge=1, description="Optimizer steps in this stage.")
    lr: float = Field(1e-4, gt=0, description="Peak learning rate.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up from 0 at the stage start.")
    schedule: Literal["constant", "cosine"] = Field("constant", description="Decay after the warm-up.")


def stage_at(stages: list[Stage], step: int) -> tuple[int, int]:
    """(stage index, first global step of that stage) for 0-based `step`; past the end: the last stage."""
    start = 0
    for index, stage in enumerate(stages):
        if step < start + stage.steps:
            return index, start
        start += stage.steps
    return len(stages) - 1, start - stages[-1].steps


def learning_rate(stage: Stage, step_in_stage: int) -> float:
    """Linear warm-up to `stage.lr`, then constant or cosine to 0 at the stage's end.

    >>> learning_rate(Stage(name="s", steps=10, lr=1.0, warmup_steps=4), 1)
    0.5
    """
    if step_in_stage < stage.warmup_steps:
        return stage.lr * (step_in_stage + 1) / stage.warmup_steps
    if stage.schedule == "constant":
        return stage.lr
    span = max(1, stage.steps - stage.warmup_steps)
    progress = min(1.0, (step_in_stage - stage.warmup_steps) / span)
    return stage.lr * 0.5 * (1 + math.cos(math.pi * progress))
