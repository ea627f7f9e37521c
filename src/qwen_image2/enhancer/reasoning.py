"""The inverse reasoning chain of an SFT row: what the request gives, what it leaves out, what to infer.

It is the supervision the report describes for the reverse-engineered data: the degradation run
backwards, said in a few short clauses (a tiny enhancer must write it before its answer, so it is kept to
a few dozen tokens).
"""

from qwen_image2.enhancer.degrade import Poster


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def poster_reasoning(poster: Poster, requested: dict[str, str], styled: bool) -> str:
    """For a word poster: the text and colours the prompt gave; the rest filled with the house style."""
    given = [f'"{poster.text}"']
    if "text_colour" in requested:
        given.append(f"{poster.colour} text")
    if "background" in requested:
        given.append(f"a {poster.background} background")
    missing = [
        name
        for name, stated in (
            ("text colour", "text_colour" in requested),
            ("background", "background" in requested),
            ("font", styled),
            ("layout", styled),
        )
        if not stated
    ]
    if not missing:
        return f"Given: {_listed(given)}. Missing: nothing. Infer: restate it in the caption form."
    # The full look is the answer's to say; the chain names the choice and why.
    return (
        f"Given: {_listed(given)}. Missing: the {_listed(missing)}. "
        f"Infer: {poster.colour} on {poster.background}, in the poster style that keeps text legible."
    )


def edit_reasoning(kind: str, parts: dict[str, str], old_given: bool) -> str:
    """For an edit: what to change, and the old text from the source image when the request left it out."""
    old = f'"{parts["old"]}"'
    source = "" if old_given else f" Missing: the old text; <image1> reads {old}."
    if kind == "change_text":
        given = f'the new text "{parts["new"]}"' + (f" and the old text {old}" if old_given else "")
        return f"Given: {given}.{source} Infer: replace {old}, same place and style."
    if kind == "change_colour":
        return f"Given: the colour {parts['colour']}.{source} Infer: recolour {old}, keep the rest."
    if kind == "move":
        return f"Given: the place, {parts['where']}.{source} Infer: move {old} there, keep the rest."
    return f"Given: a removal.{source} Infer: remove {old}, keep the rest."


def caption_reasoning(dropped: int, total: int, texts: list[str]) -> str:
    """For any other caption: the quoted texts kept, and how much detail has to come back."""
    given = _listed([f'"{t}"' for t in texts]) if texts else "no text"
    if not dropped:
        return f"Given: {given} and the scene. Missing: nothing. Infer: restate it in full sentences."
    return (
        f"Given: {given} and part of the scene. Missing: {dropped} of {total} details. "
        "Infer: the layout, colours and style around the given text."
    )
