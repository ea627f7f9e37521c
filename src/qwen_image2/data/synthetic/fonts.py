"""The fonts the text renderer draws with: a fixed catalogue of Debian font files, by script.

The catalogue is a fixed, ordered list so that a seed picks the same font on every machine that has the
same packages (Makefile: fonts-dejavu-core, fonts-liberation, fonts-noto-cjk). A font that is not installed
is left out; a script with no installed font is a UserError naming the package to install.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from qwen_image2.errors import UserError

DEJAVU = "/usr/share/fonts/truetype/dejavu"
LIBERATION = "/usr/share/fonts/truetype/liberation"
NOTO_CJK = "/usr/share/fonts/opentype/noto"


@dataclass(frozen=True)
class FontSpec:
    """One face: `name` is how captions describe it; `index` picks the face inside a .ttc collection."""

    name: str
    path: str
    style: str  # "sans", "serif" or "mono": what captions call the typeface
    bold: bool
    index: int = 0


# Index 2 of the Noto CJK collections is the Simplified Chinese (SC) face.
LATIN = (
    FontSpec("DejaVu Sans Bold", f"{DEJAVU}/DejaVuSans-Bold.ttf", "sans", True),
    FontSpec("DejaVu Serif Bold", f"{DEJAVU}/DejaVuSerif-Bold.ttf", "serif", True),
    FontSpec("DejaVu Sans", f"{DEJAVU}/DejaVuSans.ttf", "sans", False),
    FontSpec("DejaVu Serif", f"{DEJAVU}/DejaVuSerif.ttf", "serif", False),
    FontSpec("DejaVu Sans Mono Bold", f"{DEJAVU}/DejaVuSansMono-Bold.ttf", "mono", True),
    FontSpec("DejaVu Sans Condensed Bold", f"{DEJAVU}/DejaVuSansCondensed-Bold.ttf", "sans", True),
    FontSpec("Liberation Sans Bold", f"{LIBERATION}/LiberationSans-Bold.ttf", "sans", True),
    FontSpec("Liberation Serif", f"{LIBERATION}/LiberationSerif-Regular.ttf", "serif", False),
    FontSpec("Liberation Sans Narrow Bold", f"{LIBERATION}/LiberationSansNarrow-Bold.ttf", "sans", True),
    FontSpec("Liberation Mono", f"{LIBERATION}/LiberationMono-Regular.ttf", "mono", False),
)
CJK = (
    FontSpec("Noto Sans CJK SC Bold", f"{NOTO_CJK}/NotoSansCJK-Bold.ttc", "sans", True, 2),
    FontSpec("Noto Sans CJK SC", f"{NOTO_CJK}/NotoSansCJK-Regular.ttc", "sans", False, 2),
    FontSpec("Noto Serif CJK SC Bold", f"{NOTO_CJK}/NotoSerifCJK-Bold.ttc", "serif", True, 2),
    FontSpec("Noto Serif CJK SC", f"{NOTO_CJK}/NotoSerifCJK-Regular.ttc", "serif", False, 2),
)
# The words style draws one monospaced face of the one required Latin package, so that a tiny model sees
# each letter in one shape and every letter fits the same grid column (the demo model learns from it).
WORD_POSTER_FONTS = ("DejaVu Sans Mono Bold",)
PACKAGES = {"en": "fonts-dejavu-core (and fonts-liberation)", "zh": "fonts-noto-cjk"}


def available_fonts(lang: str, names: tuple[str, ...] | None = None) -> list[FontSpec]:
    """The installed faces that can draw `lang` ("en" or "zh"), optionally only those named in `names`.

    Raises UserError naming the Debian package when none is installed.
    """
    catalogue = CJK if lang == "zh" else LATIN
    fonts = [f for f in catalogue if Path(f.path).is_file() and (names is None or f.name in names)]
    if not fonts:
        raise UserError(
            f"no font for {lang!r} text is installed: apt-get install {PACKAGES[lang]} (or `make install`)"
        )
    return fonts


@lru_cache(maxsize=512)
def load_font(spec: FontSpec, size: int) -> ImageFont.FreeTypeFont:
    """The face at `size` pixels (cached: sizes repeat across thousands of samples)."""
    return ImageFont.truetype(spec.path, size, index=spec.index)


def font_by_name(name: str) -> FontSpec:
    """A catalogue entry by name (scenes store font names, so that they stay plain data)."""
    for spec in LATIN + CJK:
        if spec.name == name:
            return spec
    raise KeyError(name)
