"""The GRPO run's log: metrics.jsonl (trainer_run.py; TRL's per-reward means among its figures) plus each
logged step's render time and a contact sheet of that step's rollout images."""

from pathlib import Path

from qwen_image2.enhancer.trainer_run import MetricsLog
from qwen_image2.metrics.grid import contact_sheet

SHEET_TILE = 128
LABEL_CHARS = 44


def _short(text: str | None) -> str:
    if text is None:
        return "(no usable answer)"
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


class RunLog(MetricsLog):
    def __init__(self, output_dir: Path, rollout=None):
        super().__init__(output_dir)
        self.sheets = Path(output_dir) / "rollouts"
        self.rollout = rollout

    def step_extras(self, step: int) -> dict:
        if self.rollout is None or not self.rollout.last.images:
            return {}
        self.write_sheet(step)
        return {"render_seconds": self.rollout.last.seconds}

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
