"""Evaluating through a prompt enhancer: each prompt is rewritten first, then generated and read back.

Beside the generator's figures (text_rendering.py) an enhancer has its own: the share of rewrites that
parsed (`parse_ok`), the share of quoting prompts whose quotes the model's own answer kept verbatim
(before the fallback, which keeps them by construction), and the rewrite latency. `compare_enhancers`
puts several enhancers (and the raw prompts, no enhancer) side by side on the same sets and seeds, so
that a difference between columns is the rewrite's alone.
"""

from collections.abc import Callable

import numpy as np
from PIL import Image

from qwen_image2.enhancer.answer import parse_answer
from qwen_image2.enhancer.constraints import missing_quotes, quoted_spans
from qwen_image2.enhancer.rewrite import PromptEnhancer, Rewrite
from qwen_image2.evaluation.heldout import PROMPTS_DIR
from qwen_image2.evaluation.text_rendering import PromptEntry

# The held-out colloquial sets (enhancer/colloquial.py writes them): what users type, not captions.
COLLOQUIAL_SETS = ("colloquial_t2i.jsonl", "colloquial_edits.jsonl")
RAW = "raw"  # the column of prompts as typed, no enhancer

Rewriter = Callable[[PromptEntry, Image.Image | None], tuple[str, dict]]


def colloquial_prompt_files() -> list:
    return [PROMPTS_DIR / name for name in COLLOQUIAL_SETS]


def enhancer_rewriter(enhancer: PromptEnhancer) -> Rewriter:
    """evaluate_text's `rewrite` over a PromptEnhancer: (prompt to draw, `rewrite_fields`); an edit entry
    is rewritten in edit mode with its source image."""

    def rewrite(entry: PromptEntry, source: Image.Image | None) -> tuple[str, dict]:
        images = [] if source is None else [source]
        result = enhancer.rewrite(entry.prompt, images, "edit" if entry.is_edit else "t2i")
        return result.rewritten_prompt, rewrite_fields(entry.prompt, result)

    return rewrite


def rewrite_fields(prompt: str, rewrite: Rewrite) -> dict:
    """What a per-sample row records of one rewrite. `quotes_kept`: the model's own answer copied every
    quoted text; `quotes_drawn`: the prompt the generator got has them (after any fallback). Both are None
    for a prompt with no quotes."""
    answer = parse_answer(rewrite.raw) if rewrite.raw else None
    kept = drawn = None
    if quoted_spans(prompt):
        kept = answer is not None and answer.prompt is not None and not missing_quotes(prompt, answer.prompt)
        drawn = not missing_quotes(prompt, rewrite.rewritten_prompt)
    return {
        "rewritten_prompt": rewrite.rewritten_prompt,
        "parse_ok": rewrite.parse_ok,
        "strict_json": bool(answer and answer.prompt is not None and not answer.repaired),
        "rewrite_reason": rewrite.reason,
        "rewrite_latency_s": round(rewrite.latency_s, 4),
        "quotes_kept": kept,
        "quotes_drawn": drawn,
    }


def summarize_rewrites(rows: list[dict]) -> dict:
    """The enhancer's figures over per-sample rows that have `rewrite_fields`."""
    rewritten = [r for r in rows if "parse_ok" in r]
    if not rewritten:
        return {}
    quoting = [r for r in rewritten if r["quotes_kept"] is not None]
    latencies = np.array([r["rewrite_latency_s"] for r in rewritten])
    return {
        "rewrites": len(rewritten),
        "parse_ok": float(np.mean([r["parse_ok"] for r in rewritten])),
        "strict_json": float(np.mean([r["strict_json"] for r in rewritten])),
        "quoting_prompts": len(quoting),
        "quotes_kept": float(np.mean([r["quotes_kept"] for r in quoting])) if quoting else None,
        "quotes_drawn": float(np.mean([r["quotes_drawn"] for r in quoting])) if quoting else None,
        "latency_median_s": float(np.median(latencies)),
        "latency_p90_s": float(np.percentile(latencies, 90)),
    }


# The side-by-side table: (label, where in a result, format).
COLUMNS = (
    ("OCR word accuracy (T2I)", ("word_accuracy",), "{:.3f}"),
    ("exact match (T2I)", ("exact_match",), "{:.3f}"),
    ("edit success", ("edits", "edit_success"), "{:.3f}"),
    ("edit word accuracy", ("edits", "word_accuracy"), "{:.3f}"),
    ("unchanged-region PSNR (dB)", ("edits", "unchanged_psnr"), "{:.1f}"),
    ("parse_ok", ("enhancer", "parse_ok"), "{:.3f}"),
    ("strict JSON", ("enhancer", "strict_json"), "{:.3f}"),
    ("quotes kept by the model", ("enhancer", "quotes_kept"), "{:.3f}"),
    ("quotes kept in the prompt drawn", ("enhancer", "quotes_drawn"), "{:.3f}"),
    ("rewrite latency, median (s)", ("enhancer", "latency_median_s"), "{:.3f}"),
)


def _lookup(result: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(result, dict) or result.get(key) is None:
            return None
        result = result[key]
    return result


def comparison_table(results: dict[str, dict]) -> str:
    """A markdown table, one column per enhancer label (raw first as given), one row per figure."""
    labels = list(results)
    lines = ["| figure | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name, path, form in COLUMNS:
        values = [_lookup(results[label], path) for label in labels]
        if all(v is None for v in values):
            continue
        cells = ["—" if v is None else form.format(v) for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
