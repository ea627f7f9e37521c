"""The held-out colloquial sets in evaluation/prompts/: what people type, for words the demo never drew.

Each set pairs a held-out word (vocabulary.HELDOUT_EN: never rendered for training) with a colloquial
request made the way the SFT data makes them (degrade.py), half of them through phrase families the SFT
data never uses (phrasings.HELDOUT), the other half through the training families. Every entry records
its family, whether that family is held out, its specificity and the colours it still states.

- colloquial_t2i.jsonl (120) and colloquial_edits.jsonl (60: word edits on rendered sources, with the
  changed region's mask) are the reported sets.
- colloquial_select_t2i.jsonl (40) and colloquial_select_edits.jsonl (20) are for choosing checkpoints and
  settings; they come from another seed (other phrasings, colours and pairs; the held-out word pool is
  small, so words repeat between them and the reported sets, never prompts).

Regenerate with `python -m qwen_image2.enhancer.colloquial`; a test checks the committed files match.
"""

import json
from pathlib import Path

import numpy as np

from qwen_image2.data.synthetic.captions import word_poster_caption
from qwen_image2.data.synthetic.layouts import WORDS, word_poster
from qwen_image2.data.synthetic.vocabulary import HELDOUT_EN
from qwen_image2.enhancer.degrade import colloquial_edit, colloquial_poster, parse_poster
from qwen_image2.evaluation.heldout import EDIT_SIZE, PROMPTS_DIR, edit_pair

SETS = {  # name: (task, entries, seed)
    "colloquial_t2i.jsonl": ("t2i", 120, 20261201),
    "colloquial_edits.jsonl": ("edit", 60, 20261202),
    "colloquial_select_t2i.jsonl": ("t2i", 40, 20261203),
    "colloquial_select_edits.jsonl": ("edit", 20, 20261204),
}
HELDOUT_SHARE_EVERY = 2  # every second entry uses a held-out family: half, above the third asked for


def _family(degradations: list[str]) -> str:
    return next(d.split(":", 1)[1] for d in degradations if d.startswith("family:"))


def t2i_entries(count: int, rng: np.random.Generator) -> list[dict]:
    words = [str(w) for w in HELDOUT_EN]
    entries = []
    for index in range(count):
        word = words[int(rng.integers(len(words)))]
        scene = word_poster(rng, (EDIT_SIZE, EDIT_SIZE), "en", WORDS, text=word)
        caption = word_poster_caption(scene.elements[0], scene.background.describe(), "en")
        heldout = index % HELDOUT_SHARE_EVERY == 0
        colloquial = colloquial_poster(rng, parse_poster(caption), heldout=heldout)
        entries.append(
            {
                "prompt": colloquial.prompt,
                "text": word,
                "lang": "en",
                "family": _family(colloquial.degradations),
                "heldout_family": heldout,
                "specificity": colloquial.specificity,
                "requested": colloquial.requested,
                "caption": caption,
            }
        )
    return entries


def edit_entries(folder: Path, stem: str, count: int, rng: np.random.Generator) -> list[dict]:
    words = [str(w) for w in HELDOUT_EN if len(w) <= 5]
    entries = []
    while len(entries) < count:
        old, new = (str(w) for w in rng.choice(words, 2, replace=False))
        entry = edit_pair(rng, old, new, folder, f"{stem}/{len(entries):03d}")
        if entry is None:
            continue
        heldout = len(entries) % HELDOUT_SHARE_EVERY == 0
        colloquial = colloquial_edit(rng, "change_text", {"new": new, "old": old}, heldout=heldout)
        canonical = entry["instruction"]
        entry |= {
            "instruction": colloquial.prompt,
            "family": _family(colloquial.degradations),
            "heldout_family": heldout,
            "canonical": canonical,
        }
        entries.append(entry)
    return entries


def write_colloquial_sets(folder: Path = PROMPTS_DIR) -> list[Path]:
    """Write the four sets (and the edit sources and masks) into `folder`; returns the JSONL paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (task, count, seed) in SETS.items():
        rng = np.random.default_rng(seed)
        stem = name.removesuffix(".jsonl")
        entries = t2i_entries(count, rng) if task == "t2i" else edit_entries(folder, stem, count, rng)
        path = folder / name
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), "utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_colloquial_sets():
        print(written)
