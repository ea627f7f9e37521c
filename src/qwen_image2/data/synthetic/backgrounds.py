"""Backgrounds (flat, gradient, noise, photo-like) and the named colours captions use.

A background is plain data (`Background`) rendered by one function from its own seed, so that the source
and target of an edit pair share it pixel for pixel and the edit mask is exact.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]

# Named colours; captions use the names, so each is far enough from the others to be told apart.
COLOURS: dict[str, RGB] = {
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "red": (210, 35, 40),
    "blue": (30, 80, 200),
    "yellow": (245, 205, 40),
    "green": (40, 150, 70),
    "orange": (240, 130, 30),
    "purple": (120, 50, 160),
    "navy": (20, 35, 90),
    "cream": (245, 235, 210),
    "grey": (128, 128, 128),
    "pink": (240, 150, 180),
    "teal": (20, 140, 140),
    "brown": (120, 75, 40),
    "light blue": (170, 210, 245),
    "dark green": (20, 80, 40),
}
KINDS = ("flat", "gradient", "noise", "photo")


def luminance(rgb: RGB) -> float:
    """Relative luminance in [0, 1] (Rec. 709 weights on gamma-encoded values: enough to rank contrast)."""
    return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255


def contrasting(names: list[str], against: RGB, minimum: float = 0.4) -> list[str]:
    """The colour names in `names` whose luminance differs from `against` by at least `minimum`."""
    return [n for n in names if abs(luminance(COLOURS[n]) - luminance(against)) >= minimum]


@dataclass(frozen=True)
class Background:
    """kind: flat | gradient | noise | photo; colours: one or two names; direction: for gradients."""

    kind: str
    colours: tuple[str, ...]
    seed: int = 0
    direction: str = "vertical"  # vertical | horizontal | diagonal | radial

    @property
    def mean_colour(self) -> RGB:
        """The colour text must stand out against (the average of the named colours)."""
        rgbs = np.array([COLOURS[c] for c in self.colours], dtype=float)
        return tuple(int(v) for v in rgbs.mean(0))

    def describe(self) -> str:
        """Caption words for the background, e.g. 'a vertical gradient from navy to teal'."""
        first, last = self.colours[0], self.colours[-1]
        if self.kind == "flat":
            return f"a flat {first} background"
        if self.kind == "gradient":
            if self.direction == "radial":
                return f"a radial gradient background from {first} in the middle to {last} at the edges"
            return f"a {self.direction} gradient background from {first} to {last}"
        if self.kind == "noise":
            return f"a grainy {first} background"
        return f"a blurred photo-like background in soft {first} and {last} tones"


def _gradient(size: tuple[int, int], a: np.ndarray, b: np.ndarray, direction: str) -> np.ndarray:
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = x / max(width - 1, 1), y / max(height - 1, 1)
    weight = {
        "vertical": y,
        "horizontal": x,
        "diagonal": (x + y) / 2,
        "radial": np.clip(np.hypot(x - 0.5, y - 0.5) / 0.71, 0, 1),
    }[direction]
    return a * (1 - weight[..., None]) + b * weight[..., None]


def _photo(size: tuple[int, int], a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth multi-octave fields mixing two tones plus soft blobs: out of focus, like a photo's backdrop."""
    width, height = size
    field = np.zeros((height, width), np.float32)
    for cells, amplitude in ((3, 1.0), (6, 0.5), (12, 0.25)):
        coarse = rng.random((cells, cells)).astype(np.float32)
        layer = Image.fromarray(coarse, mode="F").resize(size, Image.Resampling.BICUBIC)
        field += amplitude * np.asarray(layer)
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    pixels = a * (1 - field[..., None]) + b * field[..., None]
    blobs = Image.new("L", size, 0)
    painter = ImageDraw.Draw(blobs)
    radius = max(2, min(size) // 12)
    for _ in range(int(rng.integers(2, 6))):  # bokeh-like soft bright spots
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        painter.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    glow = np.asarray(blobs.filter(ImageFilter.GaussianBlur(radius)), np.float32) / 255
    return pixels + 40 * glow[..., None]


def render_background(background: Background, size: tuple[int, int]) -> Image.Image:
    """The background as an RGB image of `size` (width, height); same spec, same pixels."""
    rng = np.random.default_rng(background.seed)
    a = np.array(COLOURS[background.colours[0]], np.float32)
    b = np.array(COLOURS[background.colours[-1]], np.float32)
    width, height = size
    if background.kind == "flat":
        pixels = np.broadcast_to(a, (height, width, 3))
    elif background.kind == "gradient":
        pixels = _gradient(size, a, b, background.direction)
    elif background.kind == "noise":
        pixels = a + rng.normal(0, 14, (height, width, 1)).astype(np.float32)
    else:
        pixels = _photo(size, a, b, rng)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")
