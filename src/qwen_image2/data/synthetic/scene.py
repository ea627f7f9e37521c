"""A scene is plain data — a background and an ordered list of elements — and one function renders it.

Layouts build scenes, edits change one element of a scene, and both images of an edit pair are renders of
scenes that differ only in that element: outside the changed element's boxes the pixels are identical,
which is what makes the edit mask exact.
"""

from dataclasses import dataclass, field, replace

from PIL import Image, ImageDraw

from qwen_image2.data.synthetic.backgrounds import COLOURS, Background, render_background
from qwen_image2.data.synthetic.fonts import font_by_name, load_font

Box = tuple[int, int, int, int]
# Anti-aliasing and strokes bleed a pixel or two past the measured glyph box.
MASK_PADDING = 2
# The multiline `align` that keeps each line under its anchor.
ALIGN = {"la": "left", "ma": "center", "ra": "right"}


@dataclass(frozen=True)
class TextElement:
    """A block of text. `xy` is the anchor point: top-left ("la"), top-centre ("ma") or top-right ("ra")."""

    role: str  # what captions and edit instructions call it: word, title, subtitle, bullet, paragraph, ...
    text: str  # lines separated by "\n"
    font: str  # a fonts.FontSpec name
    size: int  # pixels
    colour: str
    xy: tuple[int, int]
    anchor: str = "la"
    spacing: int = 4
    stroke: int = 0
    stroke_colour: str = "black"
    # > 0: one line on a grid, each character centred in its own column `pitch` pixels wide from x (anchor
    # "la"). At one latent cell per column a letter's place in the word fixes the cell it is drawn in.
    pitch: int = 0


@dataclass(frozen=True)
class ShapeElement:
    """A filled shape: circle, square, rectangle, rounded (a board or label), bar (a line), triangle."""

    role: str
    shape: str
    box: Box
    colour: str
    outline: str | None = None
    outline_width: int = 0


Element = TextElement | ShapeElement


@dataclass(frozen=True)
class Scene:
    size: tuple[int, int]  # (width, height)
    background: Background
    elements: tuple[Element, ...] = field(default_factory=tuple)
    layout: str = "word_poster"
    lang: str = "en"

    def texts(self) -> list[str]:
        """Every text block, in drawing order (what OCR should read)."""
        return [e.text for e in self.elements if isinstance(e, TextElement)]

    def with_element(self, index: int, element: Element | None) -> "Scene":
        """A copy with element `index` replaced (None: removed; index == len: appended)."""
        elements = list(self.elements)
        if element is None:
            del elements[index]
        elif index == len(elements):
            elements.append(element)
        else:
            elements[index] = element
        return replace(self, elements=tuple(elements))


_MEASURE = ImageDraw.Draw(Image.new("RGB", (1, 1)))


def grid_glyphs(element: TextElement) -> list[tuple[tuple[float, int], str]]:
    """A grid element's characters with their anchor points (top-centre of each column)."""
    x, y = element.xy
    return [((x + (i + 0.5) * element.pitch, y), char) for i, char in enumerate(element.text)]


def text_box(element: TextElement) -> Box:
    """The pixel box the text's ink covers, stroke included."""
    font = load_font(font_by_name(element.font), element.size)
    if element.pitch:
        boxes = [_MEASURE.textbbox(xy, char, font=font, anchor="ma") for xy, char in grid_glyphs(element)]
        boxes = [b for b in boxes if b[2] > b[0]] or [(*element.xy, *element.xy)]
        x0, y0, x1, y1 = zip(*boxes, strict=True)
        return int(min(x0)), int(min(y0)), int(max(x1)), int(max(y1))
    box = _MEASURE.multiline_textbbox(
        element.xy,
        element.text,
        font=font,
        anchor=element.anchor,
        spacing=element.spacing,
        align=ALIGN[element.anchor],
        stroke_width=element.stroke,
    )
    return tuple(int(v) for v in box)


def element_box(element: Element) -> Box:
    return text_box(element) if isinstance(element, TextElement) else element.box


def padded(box: Box, size: tuple[int, int], padding: int = MASK_PADDING) -> Box:
    """`box` grown by `padding` pixels and clipped to the image."""
    return (
        max(0, box[0] - padding),
        max(0, box[1] - padding),
        min(size[0], box[2] + padding),
        min(size[1], box[3] + padding),
    )


def _draw_shape(draw: ImageDraw.ImageDraw, element: ShapeElement) -> None:
    fill, outline = COLOURS[element.colour], COLOURS[element.outline] if element.outline else None
    box, width = element.box, element.outline_width
    if element.shape == "circle":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif element.shape == "rounded":
        radius = max(2, min(box[2] - box[0], box[3] - box[1]) // 5)
        draw.rounded_rectangle(box, radius, fill=fill, outline=outline, width=width)
    elif element.shape == "triangle":
        draw.polygon([((box[0] + box[2]) // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=fill)
    else:  # square, rectangle, bar
        draw.rectangle(box, fill=fill, outline=outline, width=width)


def render_scene(scene: Scene) -> Image.Image:
    """The scene as an RGB image: background, then each element in order."""
    image = render_background(scene.background, scene.size)
    draw = ImageDraw.Draw(image)
    for element in scene.elements:
        if isinstance(element, ShapeElement):
            _draw_shape(draw, element)
            continue
        if element.pitch:
            font = load_font(font_by_name(element.font), element.size)
            for xy, char in grid_glyphs(element):
                draw.text(xy, char, fill=COLOURS[element.colour], font=font, anchor="ma")
            continue
        draw.multiline_text(
            element.xy,
            element.text,
            fill=COLOURS[element.colour],
            font=load_font(font_by_name(element.font), element.size),
            anchor=element.anchor,
            spacing=element.spacing,
            align=ALIGN[element.anchor],
            stroke_width=element.stroke,
            stroke_fill=COLOURS[element.stroke_colour],
        )
    return image


def render_mask(size: tuple[int, int], boxes: list[Box]) -> Image.Image:
    """A mode-L mask: 255 inside the (padded) changed boxes, 0 elsewhere."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for box in boxes:
        x0, y0, x1, y1 = padded(box, size)
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    return mask
