"""SFT data by reverse engineering: fine captions from manifests made into (prompt, reasoning, rewrite) rows.

Each manifest row (the renderer's `synth` manifests, curation's passing rows; T2I captions and edit
instructions alike) gives `variants` rows: a colloquial prompt of graded specificity (degrade.py), the
inverse reasoning chain (reasoning.py), and the fine caption as the rewrite. A row's randomness comes
from (seed, sample id, variant) alone, so the data is the same for the same seed whatever the order,
the limit or the other manifests.

With an LLM degrader (any enhancer backend: a local causal LM or an OpenAI-compatible endpoint) the
prompt is the LLM's paraphrase instead, kept only when it still holds every quoted text verbatim; any
other answer falls back to the rule-based prompt, and the summary counts how often.
"""

import json
import os
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qwen_image2.data.loader import image_root, read_manifest, resolve
from qwen_image2.data.records import Sample
from qwen_image2.enhancer.backend import Backend, BackendFailure, Sampling
from qwen_image2.enhancer.canvas import nearest_ratio
from qwen_image2.enhancer.constraints import language_of, quoted_spans
from qwen_image2.enhancer.degrade import (
    Colloquial,
    colloquial_caption,
    colloquial_edit,
    colloquial_poster,
    parse_edit,
    parse_poster,
)
from qwen_image2.enhancer.reasoning import caption_reasoning, edit_reasoning, poster_reasoning
from qwen_image2.enhancer.rows import EnhancerRow, write_rows
from qwen_image2.errors import UserError

DEGRADER_PROMPT = (
    "Rewrite this detailed image description as the short, casual request a person might type to get "
    "it. Leave out most details. Copy any text in double quotes exactly, with its quotes. Answer with the "
    "request only."
)
DEGRADER_SAMPLING = Sampling(greedy=False, temperature=0.9, top_p=0.95, max_new_tokens=96, thinking=False)


@dataclass
class LLMDegrader:
    """Paraphrase captions through a backend; None when the answer is unusable (the caller falls back)."""

    backend: Backend
    sampling: Sampling = DEGRADER_SAMPLING

    def probe(self) -> None:
        """One request before the run: an unreachable degrader is a UserError, not a silent fallback."""
        try:
            self.backend.complete([{"role": "user", "content": "hello"}], Sampling(max_new_tokens=4))
        except BackendFailure as failure:
            raise UserError(
                f"the LLM degrader did not answer ({failure}); fix it or drop --degrader"
            ) from None

    def __call__(self, caption: str) -> str | None:
        messages = [{"role": "system", "content": DEGRADER_PROMPT}, {"role": "user", "content": caption}]
        try:
            text = self.backend.complete(messages, self.sampling).text.strip()
        except BackendFailure:
            return None
        text = text.split("</think>")[-1].strip().strip("`").strip()
        if not text or len(text) >= len(caption) or "\n" in text or "{" in text:
            return None
        if any(span not in text for span in quoted_spans(caption)):
            return None
        return text


def row_rng(seed: int, sample_id: str, variant: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(sample_id.encode("utf-8")), variant])


def _requested_in(prompt: str, requested: dict[str, str]) -> dict[str, str]:
    """The attributes an LLM's paraphrase still names (a colour word present in it)."""
    return {name: value for name, value in requested.items() if value in prompt.lower()}


def t2i_row(
    sample: Sample, rng: np.random.Generator, variant: int, degrader: LLMDegrader | None
) -> EnhancerRow:
    caption = sample.caption.strip()
    lang = language_of(caption) or "en"
    poster = parse_poster(caption)
    colloquial: Colloquial = colloquial_poster(rng, poster) if poster else colloquial_caption(rng, caption)
    paraphrase = degrader(caption) if degrader else None
    if paraphrase:
        stated = {"text_colour": poster.colour, "background": poster.background} if poster else {}
        colloquial = Colloquial(
            paraphrase, colloquial.specificity, _requested_in(paraphrase, stated), ["llm"], "llm"
        )
    texts = quoted_spans(caption)
    if poster:
        styled = "style" in colloquial.prompt or "monospaced" in colloquial.prompt
        reasoning = poster_reasoning(poster, colloquial.requested, styled)
    else:
        dropped = sum(
            int(d.split(":")[1].split("_")[0]) for d in colloquial.degradations if d.startswith("drop:")
        )
        reasoning = caption_reasoning(dropped, caption.count(". ") + 1, texts)
    ratio = nearest_ratio(sample.width, sample.height) if sample.width and sample.height else "1:1"
    return EnhancerRow(
        id=f"{sample.id}-{variant}",
        task="t2i",
        lang=lang,
        prompt=colloquial.prompt,
        rewrite=caption,
        aspect_ratio=ratio,
        reasoning=reasoning,
        texts=texts,
        requested=colloquial.requested,
        specificity=colloquial.specificity,
        degradations=colloquial.degradations,
        template=colloquial.template,
        source=f"{sample.path}",
    )


def edit_row(
    sample: Sample,
    rng: np.random.Generator,
    variant: int,
    degrader: LLMDegrader | None,
    root: Path,
    out: Path,
) -> EnhancerRow:
    from qwen_image2.metrics.ocr import read_text

    instruction = sample.caption.strip()
    lang = language_of(instruction) or "en"
    images = [resolve(path, root) for path in sample.conditions]
    parsed = parse_edit(instruction)
    if parsed:
        kind, parts = parsed
        colloquial = colloquial_edit(rng, kind, parts)
        ocr = [parts["old"]] + [""] * (len(images) - 1)  # the renderer's source shows the old text
    else:
        colloquial = colloquial_caption(rng, instruction)
        ocr = [read_text(_open(path), lang) for path in images]
    paraphrase = degrader(instruction) if degrader else None
    if paraphrase:
        colloquial = Colloquial(paraphrase, colloquial.specificity, {}, ["llm"], "llm")
    if parsed:
        old_given = f"{parts['old']}" in colloquial.prompt
        reasoning = edit_reasoning(kind, parts, old_given)
    else:
        reasoning = caption_reasoning(0, 1, quoted_spans(instruction))
    texts = [parts["new"]] if parsed and kind == "change_text" else []
    return EnhancerRow(
        id=f"{sample.id}-{variant}",
        task="edit",
        lang=lang,
        prompt=colloquial.prompt,
        rewrite=instruction,
        aspect_ratio="",  # keep the source's shape (the edit system prompt's "")
        reasoning=reasoning,
        images=[os.path.relpath(path, out) for path in images],
        ocr=ocr,
        texts=texts,
        specificity=colloquial.specificity,
        degradations=colloquial.degradations,
        template=colloquial.template,
        source=f"{sample.path}",
    )


def _open(path: Path):
    from qwen_image2.data.images import open_image

    return open_image(path)


def manifest_samples(manifests: list[Path]) -> list[tuple[Sample, Path]]:
    """(sample, image root) of every captioned row of the manifests, in order; UserError for a bad one."""
    found = []
    for manifest in manifests:
        samples = read_manifest(str(manifest))
        root = image_root(str(manifest))
        found.extend((sample, root) for sample in samples if sample.caption and sample.caption.strip())
    if not found:
        raise UserError(f"no captioned rows in {', '.join(map(str, manifests))}: nothing to degrade")
    return found


def make_data(
    manifests: list[Path],
    out: Path,
    seed: int = 0,
    variants: int = 2,
    limit: int | None = None,
    eval_share: float = 0.02,
    degrader: LLMDegrader | None = None,
) -> dict:
    """Write out/rows.jsonl (training), out/eval.jsonl (held-out samples, for the SFT eval loss) and
    out/summary.json; returns the summary."""
    if variants < 1:
        raise UserError(f"--variants {variants}: must be at least 1")
    if not 0 <= eval_share < 1:
        raise UserError(f"--eval-share {eval_share}: must be in [0, 1)")
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    samples = manifest_samples([Path(m) for m in manifests])[:limit]  # a bad manifest fails before `out`
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if degrader is not None:
        degrader.probe()
    train, held = [], []
    for sample, root in tqdm(samples, desc="degrading", unit="caption"):
        # A whole sample goes to one split: its variants share the rewrite.
        to_eval = zlib.crc32(f"{seed}:{sample.id}".encode()) / 2**32 < eval_share
        for variant in range(variants):
            rng = row_rng(seed, sample.id, variant)
            row = (
                edit_row(sample, rng, variant, degrader, root, out)
                if sample.task == "edit"
                else t2i_row(sample, rng, variant, degrader)
            )
            (held if to_eval else train).append(row)
    write_rows(train, out / "rows.jsonl")
    if held:
        write_rows(held, out / "eval.jsonl")
    summary = summarize(train, held, seed, variants, degrader is not None, [str(m) for m in manifests])
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), "utf-8")
    return summary


def summarize(
    train: list[EnhancerRow], held: list[EnhancerRow], seed: int, variants: int, llm: bool, manifests
) -> dict:
    rows = train + held
    degradations = Counter(
        d.split(":")[0] if d.startswith("family:") else d for r in rows for d in r.degradations
    )
    return {
        "manifests": manifests,
        "seed": seed,
        "variants": variants,
        "rows": len(train),
        "eval_rows": len(held),
        "tasks": dict(Counter(r.task for r in rows)),
        "specificity": {str(k): v for k, v in sorted(Counter(r.specificity for r in rows).items())},
        "templates": dict(Counter(r.template for r in rows).most_common()),
        "degradations": dict(degradations.most_common()),
        "llm_degrader": llm,
        "llm_fallbacks": sum("llm" not in r.degradations for r in rows) if llm else None,
    }
