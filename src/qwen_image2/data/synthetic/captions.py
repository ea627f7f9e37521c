"""Captions in the report's prompt style: the layout, the colours, and every rendered text exactly, in quotes.

The word-poster caption has one fixed form, so that the held-out evaluation prompts (same form, unseen
words) differ from training prompts only in the word.
"""

from qwen_image2.data.synthetic.layouts import font_style_words
from qwen_image2.data.synthetic.scene import Box, Scene, ShapeElement, TextElement, element_box


def quoted(text: str, lang: str) -> str:
    """The text as it appears in a caption: in double quotes, lines joined (by a space for EN)."""
    return '"' + ("" if lang == "zh" else " ").join(text.split("\n")) + '"'


def position_words(box: Box, size: tuple[int, int]) -> str:
    """'in the center', 'at the top left', 'at the bottom', ... from the box centre's third of the image."""
    cx, cy = (box[0] + box[2]) / 2 / size[0], (box[1] + box[3]) / 2 / size[1]
    row = "top" if cy < 0.36 else "bottom" if cy > 0.64 else ""
    column = "left" if cx < 0.36 else "right" if cx > 0.64 else ""
    if not row and not column:
        return "in the center"
    return f"at the {' '.join(p for p in (row, column) if p)}"


def word_poster_caption(word: TextElement, background: str, lang: str) -> str:
    """The one word-poster form; evaluation/heldout.py writes its prompts with this same function. The
    quoted text comes first, so that its letters sit at the same place in every caption: a small model
    learns which letter goes where far sooner when the letters do not move."""
    glyphs = "characters" if lang == "zh" else "letters"
    size, placement = ("", "left-aligned") if word.pitch else ("large ", "centered")
    return (
        f"A poster that reads {quoted(word.text, lang)} in {size}{word.colour} {font_style_words(word.font)} "
        f"{glyphs}, {placement} on {background}."
    )


def article(word: str) -> str:
    """'a red', 'an orange'."""
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def caption(scene: Scene) -> str:
    """The T2I caption of a scene."""
    texts = [e for e in scene.elements if isinstance(e, TextElement)]
    shapes = [e for e in scene.elements if isinstance(e, ShapeElement)]
    background, lang = scene.background.describe(), scene.lang
    first = texts[0]
    style = font_style_words(first.font)
    if scene.layout == "word_poster":
        return word_poster_caption(first, background, lang)
    if scene.layout == "sign":
        board = shapes[0]
        border = f" with a {board.outline} border" if board.outline else ""
        return (
            f"{article(board.colour).capitalize()} {board.role}{border} on {background}. {first.colour.capitalize()} {style} text "
            f"on it reads {quoted(first.text, lang)}."
        )
    if scene.layout == "poster":
        parts = [
            f"A poster with {background}. {position_words(element_box(first), scene.size).capitalize()}, "
            f"large {first.colour} {style} text reads {quoted(first.text, lang)}."
        ]
        if len(texts) > 1:
            parts.append(f"Below it, smaller {texts[1].colour} text says {quoted(texts[1].text, lang)}.")
        for shape in shapes:
            parts.append(
                f"{article(shape.colour).capitalize()} {shape.shape} sits {position_words(shape.box, scene.size)}."
            )
        return " ".join(parts)
    if scene.layout == "slide":
        bullets = [quoted(t.text, lang) for t in texts[1:]]
        accent = next(s.colour for s in shapes if s.role == "bar")
        return (
            f"A presentation slide with {background}. The title {quoted(first.text, lang)} is written in "
            f"{first.colour} {style} letters at the top left, above a thin {accent} line. Below are "
            f"{len(bullets)} bullet points with {accent} dots: {_list(bullets)}."
        )
    body = texts[1]
    return (
        f"A page with {background}. The heading {quoted(first.text, lang)} is at the top left, followed by a "
        f"paragraph of {body.colour} {font_style_words(body.font)} text that reads {quoted(body.text, lang)}."
    )
