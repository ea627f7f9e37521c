"""Resolution buckets and the stage's mixture sampler.

The DiT reads one image layout per forward pass, so every step draws a task (T2I or TI2I, at the stage's
ratio) and a bucket (at the bucket's probability), then a batch of that bucket's samples. The sampler's
whole state is a seed and a step counter: resuming at step k draws exactly what an uninterrupted run
would have drawn at step k.
"""

import math
from dataclasses import dataclass

import numpy as np

from qwen_image2.models.conditioning import condition_image_size
from qwen_image2.seeding import Stream, step_rng

# The aspect ratios of the Qwen-Image training buckets (R1 §training: 1:1, 2:3, 3:2, 3:4, 4:3, 9:16, 16:9, 1:3, 3:1).
ASPECT_RATIOS = ((1, 1), (2, 3), (3, 2), (3, 4), (4, 3), (9, 16), (16, 9), (1, 3), (3, 1))


@dataclass(frozen=True)
class Bucket:
    """A target size in pixels (multiples of 32) with its batch size and sampling probability."""

    width: int
    height: int
    batch_size: int
    probability: float

    @property
    def aspect(self) -> float:
        return self.width / self.height


def bucket_size(resolution: int, aspect: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of area about `resolution`² at `aspect`, multiples of 32.

    >>> bucket_size(1024, (16, 9))
    (1376, 768)
    """
    width, height = condition_image_size(*aspect, resolution)  # the one area-at-aspect rule
    return max(32, width), max(32, height)


def nearest_bucket(width: int, height: int, buckets: list[Bucket]) -> int:
    """Index of the bucket whose aspect is closest (in log space) to width/height."""
    target = math.log(width / height)
    return min(range(len(buckets)), key=lambda i: abs(math.log(buckets[i].aspect) - target))


class MixtureSampler:
    """Draws (task, bucket index, sample indices) per step from per-(task, bucket) pools.

    `pools[(task, bucket)]` holds the indices of eligible samples. Empty pools are never drawn; the task
    ratio and bucket probabilities are renormalised over what exists, and that is reported.
    """

    def __init__(
        self, pools: dict[tuple[str, int], list[int]], buckets: list[Bucket], t2i_ratio: float, seed: int
    ):
        self.pools = {key: np.asarray(value) for key, value in pools.items() if len(value)}
        self.buckets, self.seed = buckets, seed
        self.step = 0
        self.keys = sorted(self.pools)
        if not self.keys:
            raise ValueError("no eligible samples for any task and bucket of this stage")
        weights = np.array([self._weight(task, bucket, t2i_ratio) for task, bucket in self.keys])
        if weights.sum() <= 0:
            raise ValueError("eligible samples exist only for tasks or buckets with zero probability")
        self.probabilities = weights / weights.sum()
        self.t2i_share = float(
            sum(p for (task, _), p in zip(self.keys, self.probabilities, strict=True) if task == "t2i")
        )
        self.renormalised: str | None = None  # why the drawn T2I share differs from the requested one
        if abs(self.t2i_share - t2i_ratio) > 1e-9:
            tasks = sorted({task for task, _ in self.keys})
            self.renormalised = (
                f"T2I share {t2i_ratio:g} requested, {self.t2i_share:g} drawn: "
                f"eligible samples exist only for task {', '.join(tasks)}"
            )

    def _weight(self, task: str, bucket: int, t2i_ratio: float) -> float:
        task_weight = t2i_ratio if task == "t2i" else 1 - t2i_ratio
        tasks_present = {t for t, _ in self.keys}
        if len(tasks_present) == 1:
            task_weight = 1.0
        buckets_of_task = [b for t, b in self.keys if t == task]
        bucket_total = sum(self.buckets[b].probability for b in buckets_of_task)
        return task_weight * self.buckets[bucket].probability / bucket_total if bucket_total else 0.0

    def draw_slots(self, step: int) -> tuple[str, int, np.ndarray]:
        """The batch of `step` (a pure function of seed and step): task, bucket index, and positions in
        that (task, bucket) pool, so a loader can walk on from a position without searching the pool."""
        rng = step_rng(self.seed, step, Stream.BATCH)
        task, bucket = self.keys[rng.choice(len(self.keys), p=self.probabilities)]
        pool_size = len(self.pools[(task, bucket)])
        size = self.buckets[bucket].batch_size
        return task, bucket, rng.choice(pool_size, size=size, replace=pool_size < size)

    def draw(self, step: int) -> tuple[str, int, np.ndarray]:
        """Like `draw_slots`, with sample indices in place of pool positions."""
        task, bucket, slots = self.draw_slots(step)
        return task, bucket, self.pools[(task, bucket)][slots]

    def __iter__(self):
        return self

    def __next__(self) -> tuple[str, int, np.ndarray]:
        drawn = self.draw(self.step)
        self.step += 1
        return drawn

    def state_dict(self) -> dict:
        return {"seed": self.seed, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.step = state["seed"], state["step"]
