"""How people ask for a poster or a word edit: phrase families for colloquial prompts.

A family is a set of templates one way of asking shares ("poster saying {text}", "{text} poster").
TRAIN families are what the reverse-engineered SFT data uses; HELDOUT families appear only in the
held-out colloquial sets (enhancer/colloquial.py), so that a score on them measures phrasings the
enhancer never saw. A test checks the two never share a template.

Slots: {text} the requested word (quoted, or bare when quotes are dropped); {look} what the prompt still
says about colours ("" when nothing); {new}, {old} an edit's new and old text; {colour} an edit's new
colour; {where} a move's place ("the top").
"""

from dataclasses import dataclass

from qwen_image2.enhancer.backend import Task


@dataclass(frozen=True)
class Family:
    name: str
    task: Task
    edit: str  # "" for T2I; the edit kind for edits: change_text, change_colour, move, remove
    templates: tuple[str, ...]


TRAIN: tuple[Family, ...] = (
    Family("says", "t2i", "", ("a poster that says {text}{look}", "poster saying {text}{look}")),
    Family(
        "with_word",
        "t2i",
        "",
        ("a poster with the word {text}{look}", "make a poster with {text} on it{look}"),
    ),
    Family(
        "want", "t2i", "", ("i want a poster that reads {text}{look}", "i need a sign saying {text}{look}")
    ),
    Family("draw", "t2i", "", ("can you draw {text} on a poster{look}", "draw me a poster of {text}{look}")),
    Family("keywords", "t2i", "", ("{text} poster{look}", "poster, {text}{look}", "text {text}{look}")),
    Family("write", "t2i", "", ("write {text}{look}", "just write {text} big{look}")),
    Family("change", "edit", "change_text", ("change {old} to {new}", "change the text to {new}")),
    Family("replace", "edit", "change_text", ("replace {old} with {new}", "replace the word with {new}")),
    Family("say", "edit", "change_text", ("make it say {new}", "make it say {new} instead of {old}")),
    Family("swap", "edit", "change_text", ("swap {old} for {new}", "{new} instead of {old}")),
    Family("recolour", "edit", "change_colour", ("make {old} {colour}", "turn the text {colour}")),
    Family("move", "edit", "move", ("move {old} to {where}", "put the text at {where}")),
    Family("remove", "edit", "remove", ("remove {old}", "get rid of the text {old}")),
)

HELDOUT: tuple[Family, ...] = (
    Family("spell", "t2i", "", ("could you whip up something that spells out {text}{look}",)),
    Family("flyer", "t2i", "", ("need a flyer: {text}{look}", "quick flyer -- {text}{look}")),
    Family("show", "t2i", "", ("show the word {text} please{look}", "show me {text}{look}")),
    Family("card", "t2i", "", ("print {text} on a card{look}", "a card reading {text}{look}")),
    Family("banner", "t2i", "", ("{text}!! big letters{look}", "banner: {text}{look}")),
    Family("turn_into", "edit", "change_text", ("turn {old} into {new}",)),
    Family("rather", "edit", "change_text", ("i'd rather it said {new}", "can it read {new} now")),
    Family("put_where", "edit", "change_text", ("put {new} where {old} is", "{old} -> {new}")),
)


def families(task: Task, heldout: bool, edit: str | None = None) -> tuple[Family, ...]:
    """The families for a task (and edit kind), from the held-out split or the training one."""
    pool = HELDOUT if heldout else TRAIN
    return tuple(f for f in pool if f.task == task and (edit is None or f.edit == edit))
