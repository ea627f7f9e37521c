"""Text-rendering and text-editing evaluation: generate, read back with OCR, score.

A prompt set is JSONL, one entry per line:
- generation: {"prompt": ..., "text": <the text that must appear>, "lang": "en"|"zh" (optional)}
- edit: {"instruction": ..., "image": <source path>, "text": <text that must appear>,
  "old_text": <text that must disappear> (optional), "mask": <PNG, 255 = may change> (optional)}
Relative paths are relative to the JSONL file. The defaults (evaluation/heldout.py) are held out.

Per sample: word accuracy, exact match and normalised edit distance of the OCR reading (ocr.py); for
edits also success (new text read, old text gone), PSNR outside the mask against the source, and the
global shift (alignment.py). Summaries are per language, and over all samples.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from qwen_image2.data.images import read_image
from qwen_image2.errors import UserError
from qwen_image2.evaluation.heldout import DEFAULT_SETS, PROMPTS_DIR
from qwen_image2.metrics.alignment import global_shift, unchanged_psnr
from qwen_image2.metrics.grid import contact_sheet
from qwen_image2.metrics.ocr import read_text, score_reading

# An output counts as aligned when its content moved by at most this many pixels.
ALIGNED_PX = 1.0


@dataclass
class PromptEntry:
    prompt: str  # the T2I prompt, or the edit instruction
    text: str
    lang: str
    image: Path | None = None
    mask: Path | None = None
    old_text: str | None = None
    source: str = ""  # file:line, for messages

    @property
    def is_edit(self) -> bool:
        return self.image is not None


def default_prompt_files() -> list[Path]:
    return [PROMPTS_DIR / name for name in DEFAULT_SETS]


def _guess_lang(text: str) -> str:
    return "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en"


def _entry(row: dict, folder: Path, where: str) -> PromptEntry:
    prompt = row.get("instruction") or row.get("prompt")
    if not isinstance(prompt, str) or not isinstance(row.get("text"), str) or not row["text"].strip():
        raise UserError(f"{where}: an entry needs a non-empty 'text' and a 'prompt' (or 'instruction')")
    paths = {}
    for key in ("image", "mask"):
        if row.get(key):
            path = Path(row[key]) if Path(row[key]).is_absolute() else folder / row[key]
            if not path.is_file():
                raise UserError(f"{where}: {key} {path} does not exist")
            paths[key] = path
    if "mask" in paths and "image" not in paths:
        raise UserError(f"{where}: a 'mask' belongs to an edit; add the source 'image'")
    lang = row.get("lang") or _guess_lang(row["text"])
    if lang not in ("en", "zh"):
        raise UserError(f"{where}: lang {lang!r}: use en or zh")
    return PromptEntry(
        prompt, row["text"], lang, paths.get("image"), paths.get("mask"), row.get("old_text"), where
    )


def load_prompts(path: Path) -> list[PromptEntry]:
    """Read a JSONL prompt set; a bad line is a UserError with its file and line number."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt file {path} does not exist")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{where}: not JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{where}: each line must be a JSON object")
        entries.append(_entry(row, path.parent, where))
    if not entries:
        raise UserError(f"{path} holds no prompts")
    return entries


# ------------------------------------------------------------------------------------------- scoring


def score_edit(entry: PromptEntry, source: Image.Image, output: Image.Image, mask, reading: str) -> dict:
    """Edit success, unchanged-region PSNR and global shift of one edited image (all at output size)."""
    scores = score_reading(entry.text, reading, entry.lang)
    success = scores["word_accuracy"] == 1.0
    if entry.old_text and entry.old_text not in entry.text:
        gone = score_reading(entry.old_text, reading, entry.lang)["word_accuracy"] == 0.0
        success = success and gone
    shift = global_shift(source, output, mask)
    value = unchanged_psnr(source, output, mask) if mask is not None else None
    return scores | {
        "edit_success": success,
        # JSON has no inf: identical unchanged regions are written as null and counted apart.
        "unchanged_psnr": value if value is not None and math.isfinite(value) else None,
        "unchanged_identical": value is not None and math.isinf(value),
        # null where the unchanged region is flat: nothing there can show a shift.
        "shift_x": None if shift is None else round(shift[0], 2),
        "shift_y": None if shift is None else round(shift[1], 2),
        "shift_px": None if shift is None else round(math.hypot(*shift), 2),
    }


def _mean(rows: list[dict], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def _reading_summary(rows: list[dict]) -> dict:
    return {
        "samples": len(rows),
        "word_accuracy": _mean(rows, "word_accuracy"),
        "exact_match": _mean(rows, "exact"),
        "ned": _mean(rows, "ned"),
    }


def summarize(rows: list[dict]) -> dict:
    """Generation figures per language and overall; edit figures apart; `word_accuracy` always present
    (generation samples', or the edits' when there are only edits)."""
    generation = [r for r in rows if not r["edit"]]
    edits = [r for r in rows if r["edit"]]
    result = _reading_summary(generation or edits)
    result["per_language"] = {
        lang: _reading_summary([r for r in generation if r["lang"] == lang])
        for lang in sorted({r["lang"] for r in generation})
    }
    if edits:
        shifts = [r["shift_px"] for r in edits if r["shift_px"] is not None]
        result["edits"] = _reading_summary(edits) | {
            "edit_success": _mean(edits, "edit_success"),
            "unchanged_psnr": _mean(edits, "unchanged_psnr"),
            "unchanged_identical": sum(bool(r["unchanged_identical"]) for r in edits),
            "shift_measured": len(shifts),
            "mean_shift_px": _mean(edits, "shift_px"),
            "aligned": float(np.mean([shift <= ALIGNED_PX for shift in shifts])) if shifts else None,
        }
    return result


# ---------------------------------------------------------------------------------------- evaluation

Generate = Callable[[PromptEntry, Image.Image | None, int, int], Image.Image]


def output_size(entry: PromptEntry, source: Image.Image | None, size: int) -> tuple[int, int]:
    """Generation: size x size. Edit: the source's aspect at about size² pixels, multiples of 32."""
    if source is None:
        return size, size
    from qwen_image2.models.conditioning import condition_image_size

    return condition_image_size(*source.size, size)


def evaluate_text(
    entries: list[PromptEntry],
    generate: Generate,
    size: int = 128,
    ocr: Callable = read_text,
    rewrite: Callable | None = None,
    desc: str = "eval text",
) -> tuple[dict, list[dict]]:
    """Generate every entry, read it, score it: (summary with per-sample rows, samples for the sheet).

    `generate(entry, source_or_None, width, height)` returns the image; sources and masks are resized
    to the output size first, so that every comparison is pixel for pixel. `rewrite(entry, source)`,
    when given, returns (the prompt to draw instead, fields for the row): a prompt enhancer's rewrite
    (enhancer/evaluation.py). The output size stays the set's, so that columns with and without an
    enhancer are scored on the same canvas. A progress bar named `desc` goes to stderr.
    """
    from tqdm import tqdm

    rows, shown = [], []
    for entry in tqdm(entries, desc=desc, unit="prompt", mininterval=2):
        source = read_image(entry.image, "RGB") if entry.is_edit else None
        width, height = output_size(entry, source, size)
        if source is not None:
            source = source.resize((width, height), Image.Resampling.LANCZOS)
        row = {"prompt": entry.prompt, "text": entry.text, "lang": entry.lang, "edit": entry.is_edit}
        drawn = entry
        if rewrite is not None:
            prompt, fields = rewrite(entry, source)
            row |= fields
            drawn = replace(entry, prompt=prompt)
        output = generate(drawn, source, width, height).convert("RGB")
        single_line = "\n" not in entry.text
        reading = ocr(output, entry.lang, single_line=single_line)
        row["reading"] = reading
        if entry.is_edit:
            mask = (
                read_image(entry.mask, "L").resize((width, height), Image.Resampling.NEAREST)
                if entry.mask
                else None
            )
            row |= score_edit(entry, source, output, mask, reading)
        else:
            row |= score_reading(entry.text, reading, entry.lang)
        rows.append(row)
        shown.append({"row": row, "output": output, "source": source})
    return summarize(rows) | {"per_sample": rows}, shown


def pipeline_generator(
    pipe, steps: int, seed: int, guidance: float = 1.0, negative_prompt: str | None = None
) -> Generate:
    """A `Generate` over a QwenImage2Pipeline: one image per entry, noise seeded per call; true CFG when
    `guidance` > 1 with a negative prompt ("" is the unconditional a caption-dropout model learned)."""
    import torch

    def generate(entry: PromptEntry, source, width: int, height: int) -> Image.Image:
        result = pipe(
            entry.prompt,
            image=source,
            width=width,
            height=height,
            num_inference_steps=steps,
            guidance_scale=guidance,
            negative_prompt=negative_prompt,
            generator=torch.Generator("cpu").manual_seed(seed),
            resolution=max(width, height) if source is None else int(math.sqrt(width * height)),
        )
        return result.images[0]

    return generate


# --------------------------------------------------------------------------------------------- sheet

TILE = 160  # pixels per image in the sheet


def _label_font(size: int = 13):
    from PIL import ImageFont

    from qwen_image2.data.synthetic.fonts import CJK, LATIN, load_font

    for spec in (CJK[1], LATIN[2]):  # Noto CJK draws the Chinese readings too; DejaVu otherwise
        if Path(spec.path).is_file():
            return load_font(spec, size)
    return ImageFont.load_default(size)


def _labels(row: dict) -> list[str]:
    mark = "ok" if (row.get("edit_success") if row["edit"] else row["word_accuracy"] == 1.0) else "miss"
    reading = " ".join(row["reading"].split()) or "(nothing)"
    extra = f"  psnr {row['unchanged_psnr']:.1f}" if row["edit"] and row.get("unchanged_psnr") else ""
    if row["edit"]:
        extra += "  shift n/a" if row["shift_px"] is None else f"  shift {row['shift_px']:.1f}px"
    return [f"want: {row['text']}", f"read: {reading[:28]}", f"{mark}  ned {row['ned']:.2f}{extra}"]


def save_sheet(shown: list[dict], path: Path, columns: int = 4, limit: int = 32) -> Path:
    """A PNG grid: each sample's output (edits: source | output), what should be written, what OCR read."""
    shown = shown[:limit]
    cells = [[s["source"], s["output"]] if s["source"] is not None else [s["output"]] for s in shown]
    sheet = contact_sheet(cells, [_labels(s["row"]) for s in shown], columns, TILE, _label_font())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
