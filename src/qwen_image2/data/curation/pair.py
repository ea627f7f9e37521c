"""`pair`: editing samples (edit) pass or fail as one: target and condition images must have compatible
shapes, and the target must differ from its closest source (an edit that changed nothing teaches nothing)
while still resembling it (an unrelated target is a mislabelled pair). Text-to-image rows always pass.

`broken`, `resolution` and the other filters already judge all images of a pair together, so a pair
with one bad image is rejected whole, under that filter's name.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qwen_image2.data.curation.config import PairThresholds
from qwen_image2.data.curation.duplicate import PHASH_BITS, hamming, phash_images


def keep_pair(columns: Mapping[str, np.ndarray], thresholds: PairThresholds) -> np.ndarray:
    score = np.asarray(columns["pair_score"], dtype=np.float64)
    change = np.asarray(columns["pair_aspect_change"], dtype=np.float64)
    keep = (score >= thresholds.min_similarity) & (score <= thresholds.max_similarity)
    keep &= change <= thresholds.max_aspect_change
    return keep | np.isnan(score)


class PairFilter:
    """Adds `pair_score` (pHash similarity of target to its closest condition, NaN for t2i),
    `pair_aspect_change` and `pair_keep`."""

    name = "pair"

    def __init__(self, thresholds: PairThresholds = PairThresholds()) -> None:
        self.thresholds = thresholds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["image"])
        score = np.full(n, np.nan)
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
            aspect = batch["width"][i] / batch["height"][i]
            change[i] = max(max(aspect / (w / h), (w / h) / aspect) for w, h in batch["condition_sizes"][i])
        out = {**batch, "pair_score": score, "pair_aspect_change": change}
        out["pair_keep"] = keep_pair(out, self.thresholds)
        return out
