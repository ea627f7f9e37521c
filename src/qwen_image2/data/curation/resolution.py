"""`resolution`: the shorter side (after orientation correction) must reach the stage's tier.

The report validates 256x256 first and re-filters at 512, 1024 and 2048 for later stages; the score is
the shorter side in pixels (the smallest over all images of an edit pair), so every tier is a threshold on
one stored number. `aspect` (longer/shorter side) guards against strips and banners.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qwen_image2.data.curation.config import ResolutionThresholds


def keep_resolution(columns: Mapping[str, np.ndarray], thresholds: ResolutionThresholds) -> np.ndarray:
    score = np.asarray(columns["resolution_score"], dtype=np.float64)
    aspect = np.asarray(columns["aspect"], dtype=np.float64)
    keep = score >= thresholds.min_side
    if thresholds.max_aspect is not None:
        keep &= aspect <= thresholds.max_aspect
    return keep | np.isnan(score)


class ResolutionFilter:
    """Adds `resolution_score` (shorter side), `aspect` and `resolution_keep`."""

    name = "resolution"

    def __init__(self, thresholds: ResolutionThresholds = ResolutionThresholds()) -> None:
        self.thresholds = thresholds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["image"])
        score = np.full(n, np.nan)
        aspect = np.full(n, np.nan)
        for i in range(n):
            if batch["image"][i] is None:
                continue
            sizes = [(int(batch["width"][i]), int(batch["height"][i]))] + list(batch["condition_sizes"][i])
            score[i] = min(min(w, h) for w, h in sizes)
            aspect[i] = max(max(w, h) / min(w, h) for w, h in sizes)
        out = {**batch, "resolution_score": score, "aspect": aspect}
        out["resolution_keep"] = keep_resolution(out, self.thresholds)
        return out
