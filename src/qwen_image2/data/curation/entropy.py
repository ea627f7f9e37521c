"""`entropy`: reject low-information images — blank, solid and near-uniform ones — by the Shannon entropy
of their grey-level histogram, in bits (0 for a solid image, 8 for a uniform spread over all 256 levels;
photographs typically score 6.5-7.8). The smallest value over all images of an edit pair counts.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image

from qwen_image2.data.curation.config import EntropyThresholds


def grey_entropy(pixels: np.ndarray) -> float:
    """Shannon entropy (bits) of the grey-level histogram of an H x W x 3 uint8 image.

    >>> grey_entropy(np.zeros((8, 8, 3), np.uint8))
    0.0
    """
    from skimage.measure import shannon_entropy

    grey = np.asarray(Image.fromarray(pixels).convert("L"))
    return float(shannon_entropy(grey, base=2))


def keep_entropy(columns: Mapping[str, np.ndarray], thresholds: EntropyThresholds) -> np.ndarray:
    score = np.asarray(columns["entropy_score"], dtype=np.float64)
    return (score >= thresholds.min_score) | np.isnan(score)


class EntropyFilter:
    """Adds `entropy_score` and `entropy_keep`."""

    name = "entropy"

    def __init__(self, thresholds: EntropyThresholds = EntropyThresholds()) -> None:
        self.thresholds = thresholds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["image"])
        score = np.full(n, np.nan)
        for i in range(n):
            if batch["image"][i] is not None:
                score[i] = min(
                    grey_entropy(img) for img in [batch["image"][i], *batch["condition_images"][i]]
                )
        out = {**batch, "entropy_score": score}
        out["entropy_keep"] = keep_entropy(out, self.thresholds)
        return out
