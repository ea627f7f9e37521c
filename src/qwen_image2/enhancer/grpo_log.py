"""The GRPO run's log: one metrics.jsonl line per logging step (TRL's figures, per-reward means among them,
plus the step's wall time and render time) and a contact sheet of that step's rollout images.

It is a transformers TrainerCallback (the Trainer's own extension point). On a resumed run the lines of
steps after the checkpoint are dropped first: they are about to be logged again.
"""

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from qwen_image2.metrics.grid import contact_sheet

SHEET_TILE = 128
LABEL_CHARS = 44


def _short(text: str | None) -> str:
    if text is None:
        return "(no usable answer)"
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


class RunLog(TrainerCallback):
    def __init__(self, output_dir: Path, rollout=None):
        self.metrics = Path(output_dir) / "metrics.jsonl"
        self.sheets = Path(output_dir) / "rollouts"
        self.rollout = rollout
        self.step_started = None
        self.step_seconds = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.metrics.is_file():  # resumed: state.global_step is the checkpoint's step
            kept = [
                line
                for line in self.metrics.read_text("utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= state.global_step
            ]
            self.metrics.write_text("".join(line + "\n" for line in kept), "utf-8")

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds = time.perf_counter() - self.step_started

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:  # the end-of-training summary line is not a step
            return
        row = {"step": state.global_step, **logs, "step_seconds": self.step_seconds}
        if self.rollout is not None and self.rollout.last.images:
            row["render_seconds"] = self.rollout.last.seconds
            self.write_sheet(state.global_step)
        with self.metrics.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")

    def write_sheet(self, step: int) -> Path:
        from PIL import Image

        last = self.rollout.last
        blank = Image.new("RGB", (SHEET_TILE, SHEET_TILE), "lightgrey")
        cells = [[image or blank] for image in last.images]
        labels = [
            [row_id, _short(rewrite)] for row_id, rewrite in zip(last.row_ids, last.rewrites, strict=True)
        ]
        self.sheets.mkdir(parents=True, exist_ok=True)
        path = self.sheets / f"step-{step:07d}.png"
        columns = max(1, min(8, len(cells)))
        contact_sheet(cells, labels, columns=columns, tile=SHEET_TILE).save(path)
        return path
