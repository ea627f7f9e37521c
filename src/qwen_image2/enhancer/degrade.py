"""The rule-based degrader: a fine caption (or edit instruction) made into what a person would type.

Word-poster captions and the renderer's edit instructions are parsed into their parts (the word, the text
and background colours, the face and layout; an edit's kind, old and new text) and re-said through a
phrase family (phrasings.py) at a graded specificity:

- 0: the word only; 1: the word and one colour; 2: both colours; 3: colours, face and layout.

Then some of: quotes dropped, a typo in a plain word, the colours said first, a filler word, a capital.
Any other caption (curation's, the renderer's other layouts) keeps its quoted texts and loses sentences
by specificity, is lowercased and may get a typo. Quoted text itself is never altered: the enhancer must
copy it verbatim, so the target's quotes must be recoverable from the prompt.
"""

import re
from dataclasses import dataclass, field

import numpy as np

from qwen_image2.enhancer.phrasings import Family, families

POSTER = re.compile(
    r'^A poster that reads "(?P<text>[^"]+)" in (?:large )?(?P<colour>[a-z ]+?) '
    r"(?P<font>(?:bold )?(?:sans-serif|serif|monospaced)) (?:letters|characters), "
    r"(?P<placement>left-aligned|centered) on a flat (?P<background>[a-z ]+?) background\.$"
)
EDITS = {
    "change_text": re.compile(r'^Make the text read "(?P<new>[^"]+)" instead of "(?P<old>[^"]+)"\.$'),
    "change_colour": re.compile(r'^Make the text "(?P<old>[^"]+)" (?P<colour>[a-z ]+)\.$'),
    "move": re.compile(r'^Move the text "(?P<old>[^"]+)" to (?P<where>the [a-z ]+)\.$'),
    "remove": re.compile(r'^Remove the text "(?P<old>[^"]+)"\.$'),
}
QUOTED = re.compile(r'"[^"]*"|“[^”]*”')
FILLERS_BEFORE = ("pls ", "hey, ", "quick one: ", "ok so ")
FILLERS_AFTER = (" pls", " thanks", " thx", " asap")


@dataclass
class Colloquial:
    """A degraded prompt and how it was made (EnhancerRow's prompt, requested, specificity, degradations,
    template)."""

    prompt: str
    specificity: int
    requested: dict[str, str] = field(default_factory=dict)
    degradations: list[str] = field(default_factory=list)
    template: str = ""


@dataclass(frozen=True)
class Poster:
    text: str
    colour: str
    background: str
    font: str
    placement: str


def parse_poster(caption: str) -> Poster | None:
    """The parts of a word-poster caption (data/synthetic/captions.word_poster_caption), else None."""
    match = POSTER.match(caption)
    return Poster(**match.groupdict()) if match else None


def parse_edit(instruction: str) -> tuple[str, dict[str, str]] | None:
    """(edit kind, its parts) of one of the renderer's edit instructions, else None."""
    for kind, pattern in EDITS.items():
        if match := pattern.match(instruction):
            return kind, match.groupdict()
    return None


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def look_phrase(rng: np.random.Generator, poster: Poster, kept: tuple[str, ...]) -> str:
    """What the prompt still says about the poster's look: the kept attributes, said casually."""
    colour, background = poster.colour, poster.background
    if "text_colour" in kept and "background" in kept:
        phrase = _pick(
            rng,
            (
                f" in {colour} letters on {background}",
                f", {colour} text on a {background} background",
                f", {colour} on {background}",
                f" ({colour} on {background})",
            ),
        )
    elif "text_colour" in kept:
        phrase = _pick(rng, (f" in {colour}", f", {colour} letters", f", {colour} text"))
    elif "background" in kept:
        phrase = _pick(rng, (f" on {background}", f", {background} background", f" on a {background} bg"))
    else:
        return ""
    if "style" in kept:
        phrase += _pick(
            rng, (f", {poster.font} font, {poster.placement}", f", {poster.font}, {poster.placement}")
        )
    return phrase


def _typo(rng: np.random.Generator, prompt: str, protected: set[str]) -> str | None:
    """Swap two neighbouring letters in one plain lowercase word (not a quote, not a protected word)."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"[a-z]{4,}", prompt)]
    quoted = [(m.start(), m.end()) for m in QUOTED.finditer(prompt)]
    spans = [
        (a, b)
        for a, b in spans
        if prompt[a:b] not in protected and not any(qa <= a < qb for qa, qb in quoted)
    ]
    if not spans:
        return None
    start, end = _pick(rng, spans)
    at = int(rng.integers(start, end - 1))
    return prompt[:at] + prompt[at + 1] + prompt[at] + prompt[at + 2 :]


def _finish(rng: np.random.Generator, prompt: str, protected: set[str], done: list[str]) -> str:
    """The degradations any prompt may get after its family: a typo, a filler, a leading capital."""
    if rng.random() < 0.25 and (typo := _typo(rng, prompt, protected)):
        prompt = typo
        done.append("typo")
    if rng.random() < 0.2:
        prompt = (
            _pick(rng, FILLERS_BEFORE) + prompt if rng.random() < 0.5 else prompt + _pick(rng, FILLERS_AFTER)
        )
        done.append("filler")
    if rng.random() < 0.3:
        prompt = prompt[0].upper() + prompt[1:]
    return prompt


def _say_text(rng: np.random.Generator, text: str, done: list[str]) -> str:
    """The requested text as the prompt gives it: quoted, or (a third of the time) bare."""
    if rng.random() < 1 / 3:
        done.append("unquoted")
        return text
    return f'"{text}"'


def colloquial_poster(
    rng: np.random.Generator, poster: Poster, heldout: bool = False, specificity: int | None = None
) -> Colloquial:
    """A colloquial request for a word poster, through a family of the training (or held-out) split."""
    level = int(rng.integers(4)) if specificity is None else specificity
    kept = {0: (), 1: (_pick(rng, ("text_colour", "background")),), 2: ("text_colour", "background")}.get(
        level, ("text_colour", "background", "style")
    )
    family: Family = _pick(rng, families("t2i", heldout))
    template = _pick(rng, family.templates)
    done = [f"drop:{name}" for name in ("text_colour", "background", "style") if name not in kept]
    look = look_phrase(rng, poster, kept)
    if look and rng.random() < 0.2:  # the colours said first: "red on white: poster saying X"
        prompt = (
            look.lstrip(" ,(").rstrip(")")
            + ": "
            + template.format(text=_say_text(rng, poster.text, done), look="")
        )
        done.append("reorder")
    else:
        prompt = template.format(text=_say_text(rng, poster.text, done), look=look)
    requested = {"text_colour": poster.colour} if "text_colour" in kept else {}
    if "background" in kept:
        requested["background"] = poster.background
    protected = {poster.colour, poster.background, *poster.colour.split(), *poster.background.split()}
    prompt = _finish(rng, prompt, protected, done)
    return Colloquial(prompt, level, requested, [f"family:{family.name}", *done], template)


def colloquial_edit(
    rng: np.random.Generator, kind: str, parts: dict[str, str], heldout: bool = False
) -> Colloquial:
    """A colloquial edit request of one of the renderer's edit kinds."""
    choices = families("edit", heldout, kind) or families("edit", False, kind)
    family: Family = _pick(rng, choices)
    template = _pick(rng, family.templates)
    done: list[str] = [f"family:{family.name}"]
    slots = {name: _say_text(rng, value, done) for name, value in parts.items() if name in ("new", "old")}
    slots |= {name: value for name, value in parts.items() if name in ("colour", "where")}
    prompt = template.format(**{"new": "", "old": "", "colour": "", "where": ""} | slots)
    if "{old}" not in template and "old" in parts:
        done.append("drop:old_text")
    protected = {parts.get("colour", ""), *parts.get("where", "").split()}
    prompt = _finish(rng, prompt, protected, done)
    specificity = 2 if "{old}" in template else 1
    return Colloquial(prompt, specificity, {}, done, template)


def colloquial_caption(rng: np.random.Generator, caption: str, specificity: int | None = None) -> Colloquial:
    """Any other caption: its quoted texts kept, sentences dropped by specificity, lowercased, maybe a typo."""
    level = int(rng.integers(4)) if specificity is None else specificity
    sentences = [s for s in re.split(r"(?<=[.!?。])\s+", caption.strip()) if s]
    keep = max(1, round(len(sentences) * (level + 1) / 4))
    # The sentences with quotes come first: a user who wants text says what it reads.
    ordered = sorted(range(len(sentences)), key=lambda i: (not QUOTED.search(sentences[i]), i))
    chosen = sorted(ordered[:keep])
    quoted_elsewhere = any(QUOTED.search(sentences[i]) for i in ordered[keep:])
    if quoted_elsewhere:  # never drop requested text: every quoting sentence stays
        chosen = sorted({*chosen, *(i for i in range(len(sentences)) if QUOTED.search(sentences[i]))})
    done = ["generic"] + (
        [f"drop:{len(sentences) - len(chosen)}_sentences"] if len(chosen) < len(sentences) else []
    )
    prompt = " ".join(sentences[i] for i in chosen).rstrip(".")
    pieces = re.split(f"({QUOTED.pattern})", prompt)
    prompt = "".join(p if QUOTED.fullmatch(p) else p.lower() for p in pieces)
    done.append("lowercase")
    prompt = _finish(rng, prompt, set(), done)
    return Colloquial(prompt, level, {}, done, "generic")
