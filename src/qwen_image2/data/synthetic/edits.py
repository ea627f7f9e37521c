"""Edit pairs: change one element of a scene and say so in an instruction.

Kinds: change_text, change_colour, add (a shape), remove, move. An edit returns the target scene and the
boxes that changed (old and new place of the element); both images are renders of the two scenes, so
every pixel outside those boxes (plus `scene.MASK_PADDING`) is identical.
"""

from dataclasses import dataclass, replace

import numpy as np

from qwen_image2.data.synthetic import vocabulary
from qwen_image2.data.synthetic.backgrounds import COLOURS
from qwen_image2.data.synthetic.captions import article, position_words, quoted
from qwen_image2.data.synthetic.layouts import Style, fit_size, pick, pick_colour
from qwen_image2.data.synthetic.scene import Box, Scene, ShapeElement, TextElement, element_box, padded

EDIT_KINDS = ("change_text", "change_colour", "add", "remove", "move")
# The words style mostly changes one word: the edit the demo model learns.
EDIT_WEIGHTS = {
    "words": (0.7, 0.1, 0.05, 0.05, 0.1),
    "full": (0.4, 0.15, 0.15, 0.15, 0.15),
}
# Where `move` can put an element: region name -> centre as fractions of (width, height).
REGIONS = {
    "top": (0.5, 0.2),
    "bottom": (0.5, 0.8),
    "left": (0.22, 0.5),
    "right": (0.78, 0.5),
    "top left": (0.22, 0.2),
    "top right": (0.78, 0.2),
    "bottom left": (0.22, 0.8),
    "bottom right": (0.78, 0.8),
    "center": (0.5, 0.5),
}


@dataclass(frozen=True)
class Edit:
    kind: str
    instruction: str
    target: Scene
    changed: tuple[Box, ...]  # boxes (unpadded) where source and target may differ
    old_text: str | None = None  # for text edits: what OCR should no longer read
    new_text: str | None = None  # ... and what it should read instead


def _inside(box: Box, size: tuple[int, int], margin: int = 1) -> bool:
    return box[0] >= margin and box[1] >= margin and box[2] <= size[0] - margin and box[3] <= size[1] - margin


def _overlaps(box: Box, others: list[Box]) -> bool:
    return any(box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3] for o in others)


def _text_indices(scene: Scene) -> list[int]:
    return [i for i, e in enumerate(scene.elements) if isinstance(e, TextElement)]


def _new_text(rng: np.random.Generator, element: TextElement, lang: str, style: Style) -> str:
    count = len(element.text.split()) if lang == "en" else 1
    while True:
        if count == 1 and "\n" not in element.text:
            text = (
                vocabulary.zh_word(rng, 3)
                if lang == "zh"
                else vocabulary.en_word(rng, style.max_letters, style.pseudo)
            )
            text = text if element.text.isupper() or lang == "zh" else text.title()
        else:
            case = "upper" if element.text.isupper() else "sentence"
            text = vocabulary.phrase(rng, lang, count, case)
        if text != element.text:
            return text


def _moved(element: TextElement, centre: tuple[float, float]) -> TextElement:
    """The element with its ink box centred on `centre` (anchor "ma" keeps its horizontal centre at x)."""
    x0, y0, x1, y1 = element_box(element)
    dx = centre[0] - (x0 + x1) / 2
    dy = centre[1] - (y0 + y1) / 2
    return replace(element, xy=(round(element.xy[0] + dx), round(element.xy[1] + dy)))


def change_text_to(scene: Scene, index: int, text: str) -> Edit | None:
    """Replace the text of element `index` by `text`, same face, colour and place (smaller only if it must
    be to fit the width); None when it cannot fit."""
    old: TextElement = scene.elements[index]
    box = element_box(old)
    if old.pitch:  # grid text keeps its grid: same size, first column and line
        new = replace(old, text=text)
    else:
        limit = scene.size[0] * 0.9 if old.anchor == "ma" else scene.size[0] - box[0] - 4
        font_size = min(old.size, fit_size(text, old.font, limit, scene.size[1]))
        new = _moved(replace(old, text=text, size=font_size), ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
        if old.anchor == "la":  # left-aligned text keeps its left edge and top, as a text tool would
            new = replace(new, xy=old.xy)
    if not _inside(element_box(new), scene.size):
        return None
    # The new text comes first, at the same place in every instruction (as the word does in a caption).
    instruction = f"Make the text read {quoted(text, scene.lang)} instead of {quoted(old.text, scene.lang)}."
    target = scene.with_element(index, new)
    return Edit("change_text", instruction, target, (box, element_box(new)), old.text, text)


def change_text(rng, scene: Scene, style: Style) -> Edit | None:
    lines = [i for i in _text_indices(scene) if scene.elements[i].role != "paragraph"]
    if not lines:
        return None  # rewriting a whole paragraph is not a text edit a user asks for
    index = pick(rng, lines)
    return change_text_to(scene, index, _new_text(rng, scene.elements[index], scene.lang, style))


def change_colour(rng, scene: Scene, style: Style) -> Edit | None:
    index = pick(rng, [i for i, e in enumerate(scene.elements) if e.role not in ("bar", "bullet")] or [0])
    old = scene.elements[index]
    if isinstance(old, TextElement):
        behind = [
            e for e in scene.elements[:index] if isinstance(e, ShapeElement) and e.role in ("sign", "label")
        ]
        against = COLOURS[behind[-1].colour] if behind else scene.background.mean_colour
        colour = pick_colour(rng, style, against, exclude=(old.colour,))
        what = f"the text {quoted(old.text, scene.lang)}"
    else:
        colour = pick(rng, [c for c in style.text_colours if c != old.colour])
        what = f"the {old.colour} {old.shape}" if old.role == "decoration" else f"the {old.role}"
    if colour == old.colour:
        return None
    target = scene.with_element(index, replace(old, colour=colour))
    return Edit("change_colour", f"Make {what} {colour}.", target, (element_box(old),))


def add_shape(rng, scene: Scene, style: Style) -> Edit | None:
    width, height = scene.size
    taken = [padded(element_box(e), scene.size, 4) for e in scene.elements]
    side = max(8, round(min(scene.size) * rng.uniform(0.12, 0.2)))
    for _ in range(20):
        x, y = int(rng.integers(2, width - side - 1)), int(rng.integers(2, height - side - 1))
        box = (x, y, x + side, y + side)
        if not _overlaps(box, taken):
            break
    else:
        return None
    shape = pick(rng, ("circle", "square", "triangle"))
    colour = pick(rng, [c for c in style.text_colours if c not in scene.background.colours])
    element = ShapeElement("decoration", shape, box, colour)
    instruction = f"Add {article(colour)} {shape} {position_words(box, scene.size)}."
    return Edit("add", instruction, scene.with_element(len(scene.elements), element), (box,))


def remove(rng, scene: Scene, style: Style) -> Edit | None:
    candidates = [
        i for i, e in enumerate(scene.elements) if isinstance(e, TextElement) or e.role == "decoration"
    ]
    index = pick(rng, candidates)
    old = scene.elements[index]
    if isinstance(old, TextElement):
        what = f"the text {quoted(old.text, scene.lang)}"
        texts = (old.text, None)
    else:
        what, texts = f"the {old.colour} {old.shape}", (None, None)
    return Edit("remove", f"Remove {what}.", scene.with_element(index, None), (element_box(old),), *texts)


def move(rng, scene: Scene, style: Style) -> Edit | None:
    index = pick(
        rng,
        _text_indices(scene) if scene.layout in ("word_poster", "sign") else list(range(len(scene.elements))),
    )
    old = scene.elements[index]
    if isinstance(old, ShapeElement) and old.role != "decoration" or scene.layout == "sign":
        return None  # boards, bars and bullets belong to their text; a sign's text belongs to its board
    box = element_box(old)
    current = position_words(box, scene.size)
    others = [padded(element_box(e), scene.size, 4) for i, e in enumerate(scene.elements) if i != index]
    for region in rng.permutation(list(REGIONS)):
        centre = (REGIONS[region][0] * scene.size[0], REGIONS[region][1] * scene.size[1])
        if isinstance(old, TextElement):
            new = _moved(old, centre)
        else:
            half = ((box[2] - box[0]) // 2, (box[3] - box[1]) // 2)
            new = replace(
                old,
                box=(
                    round(centre[0]) - half[0],
                    round(centre[1]) - half[1],
                    round(centre[0]) + half[0],
                    round(centre[1]) + half[1],
                ),
            )
        new_box = element_box(new)
        words = position_words(new_box, scene.size)
        if words != current and _inside(new_box, scene.size) and not _overlaps(new_box, others):
            what = (
                f"the text {quoted(old.text, scene.lang)}"
                if isinstance(old, TextElement)
                else f"the {old.colour} {old.shape}"
            )
            return Edit(
                "move",
                f"Move {what} {words.replace('at the', 'to the').replace('in the', 'to the')}.",
                scene.with_element(index, new),
                (box, new_box),
            )
    return None


EDITS = {
    "change_text": change_text,
    "change_colour": change_colour,
    "add": add_shape,
    "remove": remove,
    "move": move,
}


def make_edit(rng: np.random.Generator, scene: Scene, style: Style) -> Edit:
    """An edit of a kind drawn at the style's weights; a kind that cannot apply falls back to change_text."""
    weights = np.array(EDIT_WEIGHTS[style.name])
    kind = str(rng.choice(EDIT_KINDS, p=weights / weights.sum()))
    for attempt in (kind, "change_text", "change_text", "change_colour", "remove"):
        edit = EDITS[attempt](rng, scene, style)
        if edit is not None:
            return edit
    raise AssertionError("remove always applies: every layout has a text element")
