"""What the enhancer's Trainer runs (SFT, GRPO) share: their common TRL arguments, the last complete
checkpoint to resume from, and
metrics.jsonl, one line per logged step with its training or evaluation figures as TRL reports them plus
the step's wall time.

The log is a transformers TrainerCallback (the Trainer's own extension point). On a resumed run the lines
of steps after the checkpoint are dropped first: they are about to be logged again.
"""

import json
import re
import time
from pathlib import Path

from transformers import TrainerCallback

from qwen_image2.training.runlog import truncate_metrics

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def run_args(recipe) -> dict:
    """The TRL config arguments both trainers share, from what both recipes have (output_dir, log_every,
    device, train.save_every, train.keep_checkpoints, train.seed): checkpoints under output_dir/checkpoints
    (what `last_checkpoint` resumes from), the log cadence, the seeds, and CPU-safe settings (fp32; no
    activation checkpointing, which TRL turns on and which for a small model is only overhead; no loader
    workers)."""
    train = recipe.train
    return {
        "output_dir": str(Path(recipe.output_dir) / "checkpoints"),
        "logging_steps": recipe.log_every,
        "save_strategy": "steps",
        "save_steps": train.save_every,
        "save_total_limit": train.keep_checkpoints,
        "seed": train.seed,
        "data_seed": train.seed,
        "bf16": False,
        "use_cpu": recipe.device == "cpu",
        "activation_checkpointing": False,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "disable_tqdm": False,
    }


def last_checkpoint(folder: Path) -> Path | None:
    """The latest checkpoint-N that was written to the end (trainer_state.json is the Trainer's last file)."""
    if not folder.is_dir():
        return None
    done = [
        (int(m[1]), p)
        for p in folder.iterdir()
        if (m := CHECKPOINT.match(p.name)) and (p / "trainer_state.json").is_file()
    ]
    return max(done)[1] if done else None


def read_metrics(output_dir: Path) -> list[dict]:
    path = Path(output_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


class MetricsLog(TrainerCallback):
    def __init__(self, output_dir: Path):
        self.metrics = Path(output_dir) / "metrics.jsonl"
        self.step_started = None
        self.step_seconds = None

    def on_train_begin(self, args, state, control, **kwargs):
        truncate_metrics(self.metrics, state.global_step)  # resumed: global_step is the checkpoint's

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds = time.perf_counter() - self.step_started

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The end-of-training summary (train_runtime, ...) is neither a step nor an evaluation.
        if not logs or not {"loss", "eval_loss"} & logs.keys():
            return
        row = {"step": state.global_step, **logs}
        if "loss" in logs:
            row |= {"step_seconds": self.step_seconds, **self.step_extras(state.global_step)}
        with self.metrics.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")

    def step_extras(self, step: int) -> dict:
        """More figures for a training step's line (a subclass's)."""
        return {}
