"""The default held-out prompt sets in evaluation/prompts/, and how they were made.

They use only `vocabulary.HELDOUT_EN`/`HELDOUT_ZH` words, which the renderer never writes, in the fonts,
colours and caption form of the `words` style, which it does: "words and combinations the model did not
train on, within what it was taught". Regenerate with `python -m qwen_image2.evaluation.heldout`
(the files are committed; a test checks that the JSONL matches this code).

- words_en.jsonl: single-word EN word-poster prompts ({"prompt", "text", "lang"}).
- words_zh.jsonl: the same for two-character ZH words.
- edits_en.jsonl: "Make the text read "B" instead of "A"" on a rendered 128 px word poster of A (both held out),
  with the source image and the mask of the changed region (`image`, `mask`: paths beside the file).
"""

import json
from pathlib import Path

import numpy as np

from qwen_image2.data.synthetic.captions import word_poster_caption
from qwen_image2.data.synthetic.edits import change_text_to
from qwen_image2.data.synthetic.layouts import WORDS, scene_size, word_poster
from qwen_image2.data.synthetic.scene import render_mask, render_scene
from qwen_image2.data.synthetic.vocabulary import HELDOUT_EN, HELDOUT_ZH

PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_SETS = ("words_en.jsonl", "edits_en.jsonl")
EDIT_SIZE = 128
SEED = 20250501  # any fixed number; changing it changes the published set


def _t2i_entries(words: tuple[str, ...], lang: str, rng: np.random.Generator) -> list[dict]:
    entries = []
    for word in words:
        scene = word_poster(rng, (EDIT_SIZE, EDIT_SIZE), lang, WORDS, text=word)
        element = scene.elements[0]
        background = scene.background.describe()
        prompt = word_poster_caption(element, background, lang)
        entries.append({"prompt": prompt, "text": word, "lang": lang})
    return entries


def edit_pair(rng: np.random.Generator, old: str, new: str, folder: Path, name: str) -> dict | None:
    """A 128 px word poster of `old` and the edit to `new`: the source and the changed region's mask are
    written to folder/name.png and folder/name-mask.png; the entry (paths relative to `folder`), or None
    when `new` does not fit."""
    scene = word_poster(rng, scene_size(rng, EDIT_SIZE, style=WORDS), "en", WORDS, text=old)
    edit = change_text_to(scene, 0, new)
    if edit is None:
        return None
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    render_scene(scene).save(folder / f"{name}.png")
    render_mask(scene.size, list(edit.changed)).save(folder / f"{name}-mask.png")
    return {
        "instruction": edit.instruction,
        "text": new,
        "old_text": old,
        "lang": "en",
        "image": f"{name}.png",
        "mask": f"{name}-mask.png",
    }


def _edit_entries(folder: Path, count: int, rng: np.random.Generator) -> list[dict]:
    """Pairs (A -> B) of held-out words of 3-5 letters; sources and masks are written to folder/edits."""
    words = [w for w in HELDOUT_EN if len(w) <= 5]
    entries = []
    while len(entries) < count:
        old, new = (str(w) for w in rng.choice(words, 2, replace=False))
        entry = edit_pair(rng, old, new, folder, f"edits/{len(entries):03d}")
        if entry is not None:
            entries.append(entry)
    return entries


def write_default_prompts(folder: Path = PROMPTS_DIR, words: int = 40, edits: int = 24) -> list[Path]:
    """Write the three held-out sets (and the edit sources) into `folder`; returns the JSONL paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    en_words = tuple(str(w) for w in rng.permutation([w for w in HELDOUT_EN if len(w) <= 6])[:words])
    sets = {
        "words_en.jsonl": _t2i_entries(en_words, "en", rng),
        "words_zh.jsonl": _t2i_entries(HELDOUT_ZH, "zh", rng),
        "edits_en.jsonl": _edit_entries(folder, edits, rng),
    }
    paths = []
    for name, entries in sets.items():
        path = folder / name
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_default_prompts():
        print(written)
