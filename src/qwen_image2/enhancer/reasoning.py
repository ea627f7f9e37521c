"""The inverse reasoning chain of an SFT row: what the request gives, what it leaves out, what to infer.

It is the supervision the report describes for the reverse-engineered data: the degradation run
backwards, said in a few short clauses (a tiny enhancer must write it before its answer, so it is kept to
a few dozen tokens).
"""

from qwen_image2.enhancer.degrade import Poster


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def poster_reasoning(poster: Poster, requested: dict[str, str], styled: bool) -> str:
    """For a word poster: what the prompt gave, what it left out, and the choice that fills it (the
    house style: the one poster form this generator draws legibly)."""
    given = [f'"{poster.text}"']
    if "text_colour" in requested:
        given.append(f"{poster.colour} text")
    if "background" in requested:
        given.append(f"{poster.background} background")
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
    if "text colour" in missing and "background" in missing:
        choice = f"{poster.colour} on {poster.background}, "
    elif "text colour" in missing:
        choice = f"{poster.colour} text, "
    elif "background" in missing:
        choice = f"{poster.background} background, "
    else:
        choice = ""
    return (
        f"Given: {', '.join(given)}. Missing: {', '.join(missing) or 'nothing'}. Infer: {choice}house style."
    )


def edit_reasoning(kind: str, parts: dict[str, str], old_given: bool) -> str:
    """For an edit: what to change, and the old text from the source image when the request left it out."""
    old = f'"{parts["old"]}"'
    missing = "" if old_given else f" Missing: old text; <image1> reads {old}."
    if kind == "change_text":
        given = f'new text "{parts["new"]}"' + (f", old text {old}" if old_given else "")
        return f"Given: {given}.{missing} Infer: replace it, same place and style."
    if kind == "change_colour":
        return f"Given: colour {parts['colour']}.{missing} Infer: recolour {old}, keep the rest."
    if kind == "move":
        return f"Given: place {parts['where']}.{missing} Infer: move {old} there, keep the rest."
    return f"Given: a removal.{missing} Infer: remove {old}, keep the rest."


def caption_reasoning(dropped: int, total: int, texts: list[str]) -> str:
    """For any other caption: the quoted texts kept, and how much detail has to come back."""
    given = _listed([f'"{t}"' for t in texts]) if texts else "no text"
    if not dropped:
        return f"Given: {given} and the scene. Missing: nothing. Infer: restate it in full sentences."
    return (
        f"Given: {given} and part of the scene. Missing: {dropped} of {total} details. "
        "Infer: the layout, colours and style around the given text."
    )
