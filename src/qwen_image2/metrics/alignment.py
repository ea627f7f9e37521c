"""Does an edit keep everything else in place? PSNR outside the edit mask, and the global pixel shift.

Editing models that re-draw the whole image often shift or rescale it by a few pixels; per-pixel metrics
then punish the whole image and say nothing about why. The shift, estimated by phase correlation on the
unchanged region, names the problem directly.
"""

import numpy as np
import torch
from PIL import Image

from qwen_image2.metrics.fidelity import psnr


def as_rgb(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3); transparency composited over white."""
    if image.mode != "RGB":
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def unchanged_psnr(source: Image.Image, output: Image.Image, mask: Image.Image | None) -> float | None:
    """PSNR (peak 255) of `output` against `source` over the pixels where `mask` is 0 (unchanged).

    None when nothing is unchanged; inf when those pixels are identical.
    """
    keep = np.ones(source.size[::-1], bool) if mask is None else np.asarray(mask.convert("L")) < 128
    if not keep.any():
        return None
    pixels = [torch.from_numpy(as_rgb(image)[keep].T.copy())[None, :, None, :] for image in (source, output)]
    return float(psnr(*pixels)[0])


# Below this spread (grey levels, standard deviation) the unchanged region is flat: a shift moves nothing
# there, and phase correlation of noise on a flat field returns a peak that means nothing (measured: a
# steady 0.7 px diagonal on a flat 128x128 poster with 1-level noise).
MIN_STRUCTURE = 2.0


def global_shift(
    source: Image.Image, output: Image.Image, mask: Image.Image | None = None
) -> tuple[float, float] | None:
    """How far `output`'s content moved from `source`'s, (dx, dy) in pixels (0.1 px steps); None when the
    source's unchanged region is flat, so that no shift can be seen in it.

    The changed region (mask > 0) is left out: both images are centred on the unchanged region's mean and
    set to 0 inside the mask, so that the edit itself does not pull the correlation peak.
    """
    from skimage.registration import phase_cross_correlation

    grey = [as_rgb(image).astype(np.float64).mean(axis=2) for image in (source, output)]
    changed = np.zeros(grey[0].shape, bool) if mask is None else np.asarray(mask.convert("L")) >= 128
    if changed.all() or grey[0][~changed].std() < MIN_STRUCTURE:
        return None
    for image in grey:
        image -= image[~changed].mean()
        image[changed] = 0.0
    shift, _, _ = phase_cross_correlation(grey[0], grey[1], upsample_factor=10, normalization=None)
    # skimage returns the shift that registers output onto source: the content moved by its negative.
    return (float(-shift[1]) + 0.0, float(-shift[0]) + 0.0)
