"""Where a global step falls among the stages, and the learning rate there."""

import math

from qwen_image2.training.config import Stage


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

    >>> from qwen_image2.training.config import Stage
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
