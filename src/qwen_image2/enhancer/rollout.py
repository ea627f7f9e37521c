"""Rendering a GRPO step's rewrites with the frozen generator, in one batch, each row with its own seed.

A row's seed is fixed (its id's CRC32 plus `render.seed`), so the images of a group differ only by the
rewrite: the advantage then compares rewrites, not noise. Requests go through `RequestSampler` (the serving
engine's batching), prompts padded to `render.text_bucket` tokens so that rewrites of different lengths
share one batch; an identical (rewrite, seed) is drawn once. Every image reward of a step asks for the
same images: the last batch is kept and handed out again.
"""

import time
import zlib
from dataclasses import dataclass, field

from PIL import Image

from qwen_image2.enhancer.grpo_config import RenderSection
from qwen_image2.pipelines.requests import ImageRequest, RequestSampler


def row_seed(row_id: str, base: int = 0) -> int:
    """The noise seed of a row: the same for every answer in its group, and across runs.

    >>> row_seed("r1") == row_seed("r1") != row_seed("r2")
    True
    """
    return (zlib.crc32(row_id.encode("utf-8")) + base) % 2**31


@dataclass
class RolloutBatch:
    """The last rendered step: per answer, the rewrite (None: nothing usable to draw) and its image."""

    rewrites: list[str | None] = field(default_factory=list)
    row_ids: list[str] = field(default_factory=list)
    images: list[Image.Image | None] = field(default_factory=list)
    seconds: float = 0.0


class Rollout:
    def __init__(self, sampler: RequestSampler, render: RenderSection):
        self.sampler, self.render_settings = sampler, render
        self.last = RolloutBatch()
        self.rendered = 0  # images drawn so far (duplicates drawn once)

    def request(self, rewrite: str, row_id: str) -> ImageRequest:
        settings = self.render_settings
        return ImageRequest(
            prompt=rewrite,
            width=settings.size,
            height=settings.size,
            steps=settings.steps,
            seed=row_seed(row_id, settings.seed),
            guidance_scale=settings.guidance,
            negative_prompt=settings.negative_prompt if settings.guidance > 1 else None,
        )

    def render(self, rewrites: list[str | None], row_ids: list[str]) -> list[Image.Image | None]:
        """One image per rewrite (None where the rewrite is None), the same list again for the same call."""
        if rewrites == self.last.rewrites and row_ids == self.last.row_ids:
            return self.last.images
        start = time.perf_counter()
        wanted = sorted({(r, i) for r, i in zip(rewrites, row_ids, strict=True) if r is not None})
        prepared = [self.sampler.prepare(self.request(rewrite, row_id)) for rewrite, row_id in wanted]
        drawn: dict[tuple[str, str], Image.Image] = {}
        for key in dict.fromkeys(p.key for p in prepared):  # one batch per shape (one, when buckets match)
            batch = [(w, p) for w, p in zip(wanted, prepared, strict=True) if p.key == key]
            latents = self.sampler.sample([p for _, p in batch])
            images = self.sampler.decode(latents, batch[0][1].grid)
            drawn.update((w, image.convert("RGB")) for (w, _), image in zip(batch, images, strict=True))
        self.rendered += len(drawn)
        images = [None if r is None else drawn[(r, i)] for r, i in zip(rewrites, row_ids, strict=True)]
        self.last = RolloutBatch(list(rewrites), list(row_ids), images, time.perf_counter() - start)
        return images
