"""`pair`: editing samples (edit) pass or fail as one: target and condition images must have compatible
shapes, and the target must differ from its closest source (an edit that changed nothing teaches nothing)
while still resembling it (an unrelated target is a mislabelled pair). Text-to-image rows always pass.

"Resembling" is pHash similarity (`pair_score`). "Differs" cannot be: a changed word or colour often
leaves the 64 pHash bits as they are, so it is a pixel measure (`pair_change`): both images as a
16x16 grid of cell means, and the largest change of one cell in one channel, in grey levels. A local
edit moves the mean of the cells it covers; JPEG re-encoding or resizing moves none by much.

`broken`, `resolution` and the other filters already judge all images of a pair together, so a pair
with one bad image is rejected whole, under that filter's name.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image

from qwen_image2.data.curation.config import PairThresholds
from qwen_image2.data.curation.duplicate import PHASH_BITS, hamming, phash_images

CHANGE_GRID = 16


def keep_pair(columns: Mapping[str, np.ndarray], thresholds: PairThresholds) -> np.ndarray:
    score = np.asarray(columns["pair_score"], dtype=np.float64)
    change = np.asarray(columns["pair_change"], dtype=np.float64)
    aspect = np.asarray(columns["pair_aspect_change"], dtype=np.float64)
    keep = (score >= thresholds.min_similarity) & (change >= thresholds.min_change)
    keep &= aspect <= thresholds.max_aspect_change
    return keep | np.isnan(score)


def _cells(image: np.ndarray) -> np.ndarray:
    grid = Image.fromarray(image).resize((CHANGE_GRID, CHANGE_GRID), Image.Resampling.BOX)
    return np.asarray(grid, dtype=np.float64)


def pixel_change(target: np.ndarray, source: np.ndarray) -> float:
    """Largest change of one cell's mean in one channel (grey levels, 0..255), both images seen as a
    16x16 grid of cell means (so sizes may differ). 0 for identical images."""
    return float(np.abs(_cells(target) - _cells(source)).max())


class PairFilter:
    """Adds `pair_score` (pHash similarity of target to its closest condition, NaN for t2i),
    `pair_change` (`pixel_change` from the target's closest condition), `pair_aspect_change` and
    `pair_keep`."""

    name = "pair"

    def __init__(self, thresholds: PairThresholds = PairThresholds()) -> None:
        self.thresholds = thresholds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["image"])
        score = np.full(n, np.nan)
        pixels = np.full(n, np.nan)
        change = np.full(n, np.nan)
        for i in range(n):
            conditions = batch["condition_images"][i]
            if batch["image"][i] is None or not conditions:
                continue
            target, *sources = phash_images([batch["image"][i], *conditions])
            # A flat image has no pHash; compare its pixels' mean instead: equal means unchanged.
            distances = [
                hamming(target, s)
                if target and s
                else (0 if np.allclose(batch["image"][i].mean(), c.mean(), atol=2) else PHASH_BITS // 2)
                for s, c in zip(sources, conditions, strict=True)
            ]
            score[i] = 1.0 - min(distances) / PHASH_BITS
            pixels[i] = min(pixel_change(batch["image"][i], c) for c in conditions)
            aspect = batch["width"][i] / batch["height"][i]
            change[i] = max(max(aspect / (w / h), (w / h) / aspect) for w, h in batch["condition_sizes"][i])
        out = {**batch, "pair_score": score, "pair_change": pixels, "pair_aspect_change": change}
        out["pair_keep"] = keep_pair(out, self.thresholds)
        return out
