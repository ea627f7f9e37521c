"""Every per-step random draw from (seed, step, stream): a resumed run, or N ranks, draw exactly what one
uninterrupted process draws, and two kinds of draw of one step never share numbers."""

from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    """What a draw is for; a new kind of draw gets a new number, so old draws stay as they were."""

    BATCH = 0  # which bucket and samples a step trains on
    CAPTION_DROPOUT = 1
    NOISE = 2  # training σ and ε
    POSTERIOR = 3  # a VAE's posterior sample
    HELDOUT = 4  # fixed validation noise (step: the sample's index)
    STAGE = 5  # a stage's own seed (step: the stage's index)


def step_rng(seed: int, step: int, stream: Stream) -> np.random.Generator:
    return np.random.default_rng([seed, step, int(stream)])


def step_generator(seed: int, step: int, stream: Stream) -> torch.Generator:
    """A CPU torch.Generator seeded from `step_rng` (draws on the CPU match on every device)."""
    return torch.Generator().manual_seed(int(step_rng(seed, step, stream).integers(2**63)))


def stage_seed(seed: int, stage_index: int) -> int:
    """The seed a stage's sampler draws its steps from: stages of one run never share a sequence."""
    return int(step_rng(seed, stage_index, Stream.STAGE).integers(2**63))
