"""The enhancer's training rows, shared by the reverse-engineered SFT data, SFT, GRPO and evaluation.

A row is one user request and what the enhancer should make of it (JSONL, one object per line):

- `id`: stable within a data folder; `task`: "t2i" or "edit"; `lang`: "en" or "zh".
- `prompt`: what the user typed (a colloquial prompt or instruction).
- `images`: the edit's source image paths (relative to the JSONL file); `ocr`: the text on each source
  image, which a text-only enhancer is shown instead of the image (messages.ocr_lines).
- `reasoning`: the inverse reasoning chain (what was missing, what to infer, why); "" when none.
- `rewrite`: the fine caption or instruction the enhancer should answer; `aspect_ratio`: a canvas.SIZES key.
- `texts`: the quoted texts the request asks for (what OCR must read back in the image).
- `requested`: the attributes the user's prompt still states (e.g. {"text_colour": "red"}), for the
  rule-based judge; `specificity`: 0 (terse) .. 3 (nearly the fine caption); `degradations` and `template`:
  how the prompt was made, for the report; `source`: where the fine caption came from.

The chat an enhancer sees for a row is exactly what `PromptEnhancer.rewrite` builds at inference
(`build_messages`), so SFT trains on the inputs it will be served.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwen_image2.enhancer.backend import Task
from qwen_image2.enhancer.messages import SYSTEM_PROMPTS, ocr_lines
from qwen_image2.errors import UserError


@dataclass
class EnhancerRow:
    id: str
    task: Task
    lang: str
    prompt: str
    rewrite: str
    aspect_ratio: str = "1:1"
    reasoning: str = ""
    images: list[str] = field(default_factory=list)
    ocr: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    requested: dict[str, str] = field(default_factory=dict)
    specificity: int = 0
    degradations: list[str] = field(default_factory=list)
    template: str = ""
    source: str = ""


def answer_text(rewrite: str, aspect_ratio: str) -> str:
    """The 2.1 contract's answer: one JSON object (non-ASCII kept as written)."""
    return json.dumps({"rewritten_prompt": rewrite, "aspect_ratio": aspect_ratio}, ensure_ascii=False)


def row_messages(row: EnhancerRow) -> list[dict]:
    """The chat a text-only enhancer is sent for this row: the task's system prompt, then the request
    (and, for an edit, the text read from each source image, as `build_messages` adds it)."""
    user = row.prompt if not row.images else f"{row.prompt}\n\n{ocr_lines(row.ocr)}"
    return [{"role": "system", "content": SYSTEM_PROMPTS[row.task]}, {"role": "user", "content": user}]


def row_completion(row: EnhancerRow, reasoning: bool) -> str:
    """The assistant's target: the answer, after the reasoning chain in <think> tags when `reasoning`."""
    answer = answer_text(row.rewrite, row.aspect_ratio)
    if reasoning and row.reasoning:
        return f"<think>\n{row.reasoning}\n</think>\n\n{answer}"
    return answer


def write_rows(rows: list[EnhancerRow], path: Path) -> Path:
    """Write rows as JSONL, atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows), "utf-8")
    partial.replace(path)
    return path


def read_rows(path: Path) -> list[EnhancerRow]:
    """Rows of a JSONL file; a UserError naming the line for anything that is not a row."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (enhancer rows are JSONL, from `qwen-image2 enhancer data`)")
    names = set(EnhancerRow.__dataclass_fields__)
    rows = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            unknown = set(data) - names
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            row = EnhancerRow(**data)
        except (ValueError, TypeError) as error:
            raise UserError(f"{path}:{number}: not an enhancer row ({error})") from None
        if row.task not in ("t2i", "edit") or not row.prompt.strip() or not row.rewrite.strip():
            raise UserError(f"{path}:{number}: an enhancer row needs task t2i|edit, a prompt and a rewrite")
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows
