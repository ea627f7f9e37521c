"""`orientation`: apply the EXIF orientation tag, so images and sizes are the way a viewer shows them.

A correction, never a rejection: `orientation_keep` is always true. `rotated` marks rows whose pixels
were turned or flipped; `width`/`height` are the corrected full sizes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# EXIF orientation -> the transpose that undoes it (the table in PIL.ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Return `pixels` (H x W x C) as displayed under EXIF `orientation` (1..8)."""
    if orientation not in _TRANSPOSE:
        return pixels
    return np.asarray(Image.fromarray(pixels).transpose(_TRANSPOSE[orientation]))


def corrected_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation in _SWAPS_SIDES else (width, height)


class OrientationFilter:
    """Adds `width`, `height`, `rotated`, `orientation_keep`; rewrites `image` and `condition_images`."""

    name = "orientation"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["image"])
        images = batch["image"].copy()
        conditions = batch["condition_images"].copy()
        condition_sizes = batch["condition_sizes"].copy()
        width = np.zeros(n, dtype=np.int64)
        height = np.zeros(n, dtype=np.int64)
        rotated = np.zeros(n, dtype=bool)
        for i in range(n):
            if images[i] is None:
                continue
            orientation = int(batch["exif_orientation"][i])
            images[i] = apply_orientation(images[i], orientation)
            width[i], height[i] = corrected_size(
                int(batch["orig_width"][i]), int(batch["orig_height"][i]), orientation
            )
            rotated[i] = orientation != 1
            orientations = batch["condition_orientations"][i]
            conditions[i] = [
                apply_orientation(c, o) for c, o in zip(conditions[i], orientations, strict=True)
            ]
            condition_sizes[i] = [
                corrected_size(w, h, o) for (w, h), o in zip(condition_sizes[i], orientations, strict=True)
            ]
        return {
            **batch,
            "image": images,
            "condition_images": conditions,
            "condition_sizes": condition_sizes,
            "width": width,
            "height": height,
            "rotated": rotated,
            "orientation_keep": np.ones(n, dtype=bool),
        }
