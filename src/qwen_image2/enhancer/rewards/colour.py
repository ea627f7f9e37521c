"""The colour reward: the text and background colours the user stated, measured in the image.

The background is the median colour of the image's border ring (a poster's edge is background); the text
is the median of the pixels farthest from it in CIE Lab (the top TEXT_SHARE of those that differ at all,
which skips the anti-aliased rim between the two). A requested colour scores 1 - ΔE/MAX_DELTA_E (CIE76,
floored at 0) against its COLOURS value: continuous, so a group's closer colour ranks higher. Only the
attributes in the row's `requested` count; a row stating none gives None.
"""

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

from qwen_image2.data.synthetic.backgrounds import COLOURS

# requested-attribute names -> which measured colour they name
ATTRIBUTES = {
    "text_colour": "text",
    "text_color": "text",
    "background": "background",
    "background_colour": "background",
    "background_color": "background",
}
BORDER = 0.06  # the border ring's width, as a share of the short side
MIN_DELTA_E = 12.0  # pixels closer than this to the background are background (JPEG-ish noise, shading)
TEXT_SHARE = 0.5  # of the pixels that differ, the farthest half is taken as the text's colour
MAX_DELTA_E = 60.0  # ΔE at which a colour scores 0 (red vs navy is ~75; red vs orange ~35)


def _lab(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(np.asarray(rgb, dtype=np.float64).reshape(-1, 1, 3) / 255.0).reshape(-1, 3)


def measure_colours(image: Image.Image) -> dict[str, tuple[int, int, int] | None]:
    """{"background": RGB, "text": RGB or None when nothing stands out from the background}."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    height, width, _ = pixels.shape
    ring = max(1, round(min(height, width) * BORDER))
    border = np.concatenate(
        [
            pixels[:ring].reshape(-1, 3),
            pixels[-ring:].reshape(-1, 3),
            pixels[:, :ring].reshape(-1, 3),
            pixels[:, -ring:].reshape(-1, 3),
        ]
    )
    background = np.median(border, axis=0)
    flat = pixels.reshape(-1, 3)
    distance = np.linalg.norm(_lab(flat) - _lab(background[None]), axis=1)
    differing = distance > MIN_DELTA_E
    if not differing.any():
        return {"background": tuple(int(v) for v in background.round()), "text": None}
    cut = np.quantile(distance[differing], 1.0 - TEXT_SHARE)
    text = np.median(flat[differing & (distance >= cut)], axis=0)
    return {
        "background": tuple(int(v) for v in background.round()),
        "text": tuple(int(v) for v in text.round()),
    }


def delta_e(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """CIE76 ΔE between two sRGB colours.

    >>> round(delta_e((255, 255, 255), (255, 255, 255)), 6)
    0.0
    """
    lab = _lab(np.array([a, b]))
    return float(np.linalg.norm(lab[0] - lab[1]))


def nearest_colour(rgb: tuple[int, int, int]) -> str:
    """The COLOURS name closest to `rgb` in Lab.

    >>> nearest_colour((200, 40, 40)), nearest_colour((25, 30, 95))
    ('red', 'navy')
    """
    return min(COLOURS, key=lambda name: delta_e(rgb, COLOURS[name]))


def stated_colours(requested: dict[str, str]) -> dict[str, str]:
    """{"text" | "background": colour name} for the colour attributes stated with a known colour name.

    >>> stated_colours({"text_colour": "red", "background": "navy", "font": "serif", "text_color": "mauve"})
    {'text': 'red', 'background': 'navy'}
    """
    return {
        ATTRIBUTES[key]: value for key, value in requested.items() if key in ATTRIBUTES and value in COLOURS
    }


def colour_score(image: Image.Image, requested: dict[str, str]) -> float | None:
    """Mean over the stated colour attributes of 1 - ΔE/MAX_DELTA_E; None when none is stated."""
    wanted = stated_colours(requested)
    if not wanted:
        return None
    measured = measure_colours(image)
    scores = []
    for part, name in wanted.items():
        found = measured[part]
        scores.append(0.0 if found is None else max(0.0, 1.0 - delta_e(found, COLOURS[name]) / MAX_DELTA_E))
    return sum(scores) / len(scores)


def colour_reward(images: list[Image.Image | None], requested: list[dict[str, str]]) -> list[float | None]:
    """One score per image: `colour_score`; 0 for a missing image of a row that states colours."""
    scores: list[float | None] = []
    for image, stated in zip(images, requested, strict=True):
        if not stated_colours(stated):
            scores.append(None)
        elif image is None:
            scores.append(0.0)
        else:
            scores.append(colour_score(image, stated))
    return scores
