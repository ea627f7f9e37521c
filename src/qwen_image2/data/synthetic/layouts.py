"""Layouts: word posters, posters, signs, labels, slides and paragraphs, each a function rng -> Scene.

A `Style` is the closed set a layout draws from (fonts, colours, background kinds, pseudo-word share).
`WORDS` is the narrow style for a tiny model: one short uppercase word, big and centred on a square, in
one bold sans face and a few colours on flat backgrounds; `FULL` is everything the renderer knows.
"""

import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qwen_image2.data.buckets import ASPECT_RATIOS, bucket_size
from qwen_image2.data.synthetic import vocabulary
from qwen_image2.data.synthetic.backgrounds import COLOURS, KINDS, Background, contrasting, luminance
from qwen_image2.data.synthetic.fonts import WORD_POSTER_FONTS, available_fonts, font_by_name
from qwen_image2.data.synthetic.scene import Scene, ShapeElement, TextElement, text_box

TIERS = (64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Style:
    name: str
    backgrounds: tuple[str, ...]  # background kinds
    background_colours: tuple[str, ...]
    text_colours: tuple[str, ...]
    latin_fonts: tuple[str, ...] | None  # None: every installed Latin face
    pseudo: float  # share of pseudo-words among single words
    max_letters: int
    aspects: tuple[tuple[int, int], ...] | None = None  # None: every aspect the tier and layout allow
    jitter: float = 0.04  # a word poster's word moves off centre by up to this share of the size
    grid: int = 0  # > 0: a Latin word poster's letters sit in this many equal columns, from the second


FULL = Style("full", KINDS, tuple(COLOURS), tuple(COLOURS), None, 0.25, 7)
# A tiny model on a CPU learns to spell only when little else varies: one monospaced face on a square, the
# word left-aligned on an 8-column grid, so that at 128 px each letter fills one 16-px latent cell and the
# k-th letter of every word lands in the same cell. The image column then maps to the letter's place in
# the prompt by a fixed offset (a relative position RoPE expresses), whatever the word's length.
WORDS = Style(
    "words",
    ("flat",),
    ("white", "black", "cream", "navy", "yellow", "light blue"),
    ("black", "white", "red", "blue", "navy", "yellow"),
    WORD_POSTER_FONTS,
    0.3,
    5,
    aspects=((1, 1),),
    jitter=0.0,
    grid=8,
)


# --------------------------------------------------------------------------------------------- helpers


def pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def scene_size(
    rng: np.random.Generator, tier: int, layout: str = "word_poster", style: Style = FULL
) -> tuple[int, int]:
    """A (width, height) of about tier² pixels at a training-bucket aspect the layout and style suit."""
    aspects = ASPECT_RATIOS if tier >= 512 else ASPECT_RATIOS[:7] if tier >= 128 else ASPECT_RATIOS[:3]
    allowed = LAYOUT_ASPECTS.get(layout, aspects)
    suited = [a for a in aspects if a in allowed and (style.aspects is None or a in style.aspects)]
    return bucket_size(tier, pick(rng, suited or aspects))


def pick_background(rng: np.random.Generator, style: Style, kinds: tuple[str, ...] | None = None):
    kind = pick(rng, tuple(k for k in style.backgrounds if kinds is None or k in kinds) or ("flat",))
    first = pick(rng, style.background_colours)
    # The second tone stays close in luminance so that one text colour contrasts with the whole background.
    near = [
        c for c in style.background_colours if abs(luminance(COLOURS[c]) - luminance(COLOURS[first])) < 0.25
    ]
    second = pick(rng, [c for c in near if c != first] or [first])
    direction = pick(rng, ("vertical", "horizontal", "diagonal", "radial"))
    colours = (first,) if kind in ("flat", "noise") else (first, second)
    return Background(kind, colours, int(rng.integers(2**31)), direction)


def pick_colour(rng: np.random.Generator, style: Style, against, exclude: tuple[str, ...] = ()) -> str:
    options = [c for c in contrasting(list(style.text_colours), against) if c not in exclude]
    return pick(rng, options or ["white" if luminance(against) < 0.5 else "black"])


def pick_font(rng: np.random.Generator, style: Style, lang: str, bold: bool | None = None) -> str:
    fonts = available_fonts(lang, style.latin_fonts if lang == "en" else None)
    if bold is not None:
        fonts = [f for f in fonts if f.bold == bold] or fonts
    return pick(rng, fonts).name


def fit_size(text: str, font: str, max_width: float, max_height: float, spacing_ratio: float = 0.2) -> int:
    """The largest pixel size (>= 6) at which `text` fits in max_width x max_height."""
    probe = TextElement("probe", text, font, 100, "black", (0, 0), spacing=20)
    x0, y0, x1, y1 = text_box(probe)
    size = int(100 * min(max_width / max(x1 - x0, 1), max_height / max(y1 - y0, 1)))
    while size > 6:
        box = text_box(
            TextElement("probe", text, font, size, "black", (0, 0), spacing=int(size * spacing_ratio))
        )
        if box[2] - box[0] <= max_width and box[3] - box[1] <= max_height:
            break
        size -= 1
    return max(size, 6)


def centred_text(role, text, font, size, colour, centre: tuple[float, float], **kw) -> TextElement:
    """A text element whose ink box is centred on `centre` (anchor "ma", top adjusted from a measurement)."""
    spacing = kw.pop("spacing", int(size * 0.2))
    probe = TextElement(role, text, font, size, colour, (0, 0), "ma", spacing, **kw)
    _, top, _, bottom = text_box(probe)
    y = round(centre[1] - (top + bottom) / 2)
    return TextElement(role, text, font, size, colour, (round(centre[0]), y), "ma", spacing, **kw)


def single_text(rng: np.random.Generator, style: Style, lang: str, size: tuple[int, int]) -> str:
    if lang == "zh":
        return vocabulary.zh_word(rng, 2 if min(size) < 128 else 3)
    letters = min(style.max_letters, 5 if min(size) < 64 else style.max_letters)
    return vocabulary.en_word(rng, letters, style.pseudo)


def wrap(text_words: list[str], font: str, size: int, max_width: float, joiner: str) -> list[str]:
    """Greedy line breaking: EN breaks between words (joiner " "), ZH between characters (joiner "")."""
    lines, current = [], ""
    for word in text_words:
        candidate = f"{current}{joiner}{word}" if current else word
        x0, _, x1, _ = text_box(TextElement("probe", candidate, font, size, "black", (0, 0)))
        if current and x1 - x0 > max_width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current] if current else lines


# --------------------------------------------------------------------------------------------- layouts


@lru_cache(maxsize=64)
def grid_font_size(font: str, pitch: int) -> int:
    """A size at which every capital and digit fits in `pitch` - 1 pixels: the grid's columns never touch."""
    return min(
        fit_size(glyph, font, pitch - 1, pitch * 3) for glyph in string.ascii_uppercase + string.digits
    )


def grid_word(text: str, font: str, colour: str, size: tuple[int, int], columns: int) -> TextElement:
    """`text` on a grid of `columns` equal columns, from the second column, capitals centred vertically."""
    width, height = size
    pitch = width // columns
    font_size = grid_font_size(font, pitch)
    _, top, _, bottom = text_box(TextElement("probe", "H", font, font_size, "black", (0, 0), "ma"))
    y = round(height / 2 - (top + bottom) / 2)
    return TextElement("word", text, font, font_size, colour, (pitch, y), pitch=pitch)


def word_poster(rng: np.random.Generator, size, lang: str, style: Style, text: str | None = None) -> Scene:
    """One short word (`text`, else a drawn training word), as large as fits in 70-85% of the width and
    55% of the height, near the centre."""
    background = pick_background(rng, style)
    text = text or single_text(rng, style, lang, size)
    font = pick_font(rng, style, lang, bold=True)
    width, height = size
    if style.grid and lang == "en":
        colour = pick_colour(rng, style, background.mean_colour)
        return Scene(
            size, background, (grid_word(text, font, colour, size, style.grid),), "word_poster", lang
        )
    font_size = fit_size(text, font, width * float(rng.uniform(0.7, 0.85)), height * 0.55)
    jitter = rng.uniform(-style.jitter, style.jitter, 2) * size
    colour = pick_colour(rng, style, background.mean_colour)
    word = centred_text(
        "word", text, font, font_size, colour, (width / 2 + jitter[0], height / 2 + jitter[1])
    )
    return Scene(size, background, (word,), "word_poster", lang)


def sign(rng: np.random.Generator, size, lang: str, style: Style) -> Scene:
    """A board (rounded, outlined: a sign; plain rectangle: a label) holding one or two words."""
    background = pick_background(rng, style)
    width, height = size
    board_colour = pick(
        rng, [c for c in style.background_colours if c not in background.colours] or ["white"]
    )
    is_sign = bool(rng.random() < 0.5)
    bw = width * rng.uniform(0.6, 0.85)
    bh = min(height * rng.uniform(0.3, 0.5), bw * rng.uniform(0.35, 0.7))  # a board, not a pillar
    cx, cy = width / 2 + rng.uniform(-0.05, 0.05) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
    box = (round(cx - bw / 2), round(cy - bh / 2), round(cx + bw / 2), round(cy + bh / 2))
    outline = pick_colour(rng, style, COLOURS[board_colour]) if is_sign else None
    board = ShapeElement(
        "sign" if is_sign else "label",
        "rounded" if is_sign else "rectangle",
        box,
        board_colour,
        outline,
        max(1, min(size) // 64) if is_sign else 0,
    )
    count = 1 if lang == "zh" or rng.random() < 0.6 else 2
    text = vocabulary.phrase(rng, lang, count, "upper") if count > 1 else single_text(rng, style, lang, size)
    if count > 1 and bw / bh < 2.5:  # two words on a squarish board read better stacked
        text = text.replace(" ", "\n")
    font = pick_font(rng, style, lang, bold=True)
    font_size = fit_size(text, font, bw * 0.8, bh * 0.6)
    colour = pick_colour(rng, style, COLOURS[board_colour], exclude=(outline or "",))
    return Scene(
        size, background, (board, centred_text("text", text, font, font_size, colour, (cx, cy))), "sign", lang
    )


def poster(rng: np.random.Generator, size, lang: str, style: Style) -> Scene:
    """A title (1-2 words) over a smaller subtitle (2-4 words), with a decorative shape in a free corner."""
    background = pick_background(rng, style)
    width, height = size
    title_text = vocabulary.phrase(rng, lang, int(rng.integers(1, 3)), "upper")
    subtitle_text = vocabulary.phrase(rng, lang, int(rng.integers(2, 4)) if lang == "en" else 1, "title")
    title_font, subtitle_font = pick_font(rng, style, lang, bold=True), pick_font(rng, style, lang)
    top = float(rng.uniform(0.3, 0.45))
    title_size = fit_size(title_text, title_font, width * 0.85, height * 0.25)
    subtitle_size = fit_size(subtitle_text, subtitle_font, width * 0.8, min(height * 0.1, title_size * 0.6))
    title_colour = pick_colour(rng, style, background.mean_colour)
    subtitle_colour = pick_colour(rng, style, background.mean_colour)
    title = centred_text("title", title_text, title_font, title_size, title_colour, (width / 2, height * top))
    below = text_box(title)[3] + subtitle_size * 0.9
    subtitle = centred_text(
        "subtitle", subtitle_text, subtitle_font, subtitle_size, subtitle_colour, (width / 2, below)
    )
    elements = [title, subtitle]
    if rng.random() < 0.7:
        side = round(min(size) * rng.uniform(0.1, 0.16))
        margin = round(min(size) * 0.05)
        y = height - margin - side
        x = margin if rng.random() < 0.5 else width - margin - side
        shape = pick(rng, ("circle", "square", "triangle"))
        colour = pick(rng, [c for c in style.text_colours if c not in background.colours])
        elements.append(ShapeElement("decoration", shape, (x, y, x + side, y + side), colour))
    return Scene(size, background, tuple(elements), "poster", lang)


def slide(rng: np.random.Generator, size, lang: str, style: Style) -> Scene:
    """A title at the top left, an accent bar under it, and 2-4 bullet points."""
    background = pick_background(rng, style, ("flat", "gradient"))
    width, height = size
    margin = round(min(size) * 0.07)
    title_font, body_font = pick_font(rng, style, lang, bold=True), pick_font(rng, style, lang, bold=False)
    title_text = vocabulary.phrase(rng, lang, int(rng.integers(2, 4)) if lang == "en" else 1, "title")
    title_size = fit_size(title_text, title_font, width * 0.8, height * 0.12)
    colour = pick_colour(rng, style, background.mean_colour)
    title = TextElement("title", title_text, title_font, title_size, colour, (margin, margin))
    bar_top = text_box(title)[3] + margin // 3
    accent = pick_colour(rng, style, background.mean_colour, exclude=(colour,))
    elements = [
        title,
        ShapeElement(
            "bar", "bar", (margin, bar_top, width - margin, bar_top + max(2, height // 100)), accent
        ),
    ]
    count = int(rng.integers(2, 5))
    body_size = max(8, round(min(title_size * 0.6, (height - bar_top - margin) / (count * 1.8))))
    for index in range(count):
        text = vocabulary.phrase(rng, lang, int(rng.integers(2, 5)) if lang == "en" else 2, "sentence")
        body_size_i = min(
            body_size, fit_size(text, body_font, width - 3 * margin - body_size, body_size * 1.5)
        )
        y = bar_top + margin // 2 + round(index * body_size * 1.8)
        dot = round(body_size * 0.3)
        cy = y + round(body_size * 0.55)
        elements.append(
            ShapeElement("bullet", "circle", (margin, cy - dot // 2, margin + dot, cy + dot // 2), accent)
        )
        elements.append(TextElement("bullet", text, body_font, body_size_i, colour, (margin + body_size, y)))
    return Scene(size, background, tuple(elements), "slide", lang)


def paragraph(rng: np.random.Generator, size, lang: str, style: Style) -> Scene:
    """A heading and a multi-line paragraph, left aligned, wrapped to the page width."""
    background = pick_background(rng, style, ("flat", "gradient", "noise"))
    width, height = size
    margin = round(min(size) * 0.08)
    font = pick_font(rng, style, lang, bold=False)
    colour = pick_colour(rng, style, background.mean_colour)
    heading_text = vocabulary.phrase(rng, lang, int(rng.integers(1, 3)), "title")
    heading_font = pick_font(rng, style, lang, bold=True)  # the size is fitted to the face that draws it
    heading_size = fit_size(heading_text, heading_font, width * 0.7, height * 0.1)
    heading = TextElement("heading", heading_text, heading_font, heading_size, colour, (margin, margin))
    body_size = max(10, round(heading_size * rng.uniform(0.4, 0.6)))
    top = text_box(heading)[3] + body_size
    if lang == "zh":
        units, joiner = list(vocabulary.phrase(rng, lang, 40)), ""
    else:  # more words than fit; the lines that do not fit are dropped
        units, joiner = vocabulary.phrase(rng, lang, 80, "sentence").split(), " "
    lines = wrap(units, font, body_size, width - 2 * margin, joiner)
    max_lines = max(1, int((height - top - margin) / (body_size * 1.3)))
    body = TextElement(
        "paragraph",
        "\n".join(lines[:max_lines]),
        font,
        body_size,
        colour,
        (margin, top),
        spacing=round(body_size * 0.3),
    )
    return Scene(size, background, (heading, body), "paragraph", lang)


LAYOUTS: dict[str, Callable[..., Scene]] = {
    "word_poster": word_poster,
    "sign": sign,
    "poster": poster,
    "slide": slide,
    "paragraph": paragraph,
}
# Slides are landscape; a paragraph on a 1:3 strip is a column of one word per line.
LAYOUT_ASPECTS = {
    "slide": ((16, 9), (4, 3), (3, 2)),
    "paragraph": ((1, 1), (3, 4), (4, 3), (2, 3), (3, 2)),
}
# The smallest tier each layout is legible at (a paragraph needs 512 px to hold >= 10 px glyphs).
MIN_TIER = {"word_poster": 64, "sign": 128, "poster": 256, "slide": 512, "paragraph": 512}


def layouts_for(tier: int, style: Style) -> tuple[str, ...]:
    if style.name == "words":
        return ("word_poster",)
    return tuple(name for name, smallest in MIN_TIER.items() if tier >= smallest)


def build_scene(rng: np.random.Generator, tier: int, lang: str, style: Style) -> Scene:
    layout = pick(rng, layouts_for(tier, style))
    size = scene_size(rng, tier, layout, style)
    return LAYOUTS[layout](rng, size, lang, style)


def font_style_words(font: str) -> str:
    """Caption words for a face: 'bold sans-serif', 'serif', 'monospaced'."""
    spec = font_by_name(font)
    kind = {"sans": "sans-serif", "serif": "serif", "mono": "monospaced"}[spec.style]
    return f"bold {kind}" if spec.bold else kind
