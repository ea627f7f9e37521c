"""What a training run writes besides checkpoints: metrics.jsonl, tensorboard, the final report and plot."""

import json
from collections import Counter
from pathlib import Path


class RunLog:
    """One JSON line per optimizer step; on resume, lines past the checkpoint's step are dropped so that the
    file always describes one consistent run."""

    def __init__(self, out: Path, enabled: bool, resume_step: int = 0):
        self.enabled = enabled
        self.out = out
        self.metrics_path = out / "metrics.jsonl"
        self.skipped: Counter = Counter()
        self.writer = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        kept = []
        if self.metrics_path.exists():
            for line in self.metrics_path.read_text().splitlines():
                record = json.loads(line)
                if record.get("step", 0) <= resume_step:
                    kept.append(line)
                    for reason, count in record.get("skipped", {}).items():
                        self.skipped[reason] += count
        self.metrics_path.write_text("".join(f"{line}\n" for line in kept))
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step + 1)

    def step(self, step: int, skipped: list[tuple[str, str]], **values) -> None:
        if not self.enabled:
            return
        reasons = Counter(reason for _, reason in skipped)
        self.skipped.update(reasons)
        record = {"step": step, **values}
        if reasons:
            record["skipped"] = dict(reasons)
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        for key in ("loss", "lr", "grad_norm", "tokens_per_s"):
            self.writer.add_scalar(f"train/{key}", values[key], step)

    def validation(self, step: int, figures: dict[str, float]) -> None:
        if not self.enabled:
            return
        for key, value in figures.items():
            self.writer.add_scalar(f"validation/{key}", value, step)
        with (self.out / "validation.jsonl").open("a") as handle:
            handle.write(json.dumps({"step": step, **figures}) + "\n")

    def finish(self, model_dir: Path) -> None:
        """report.json (figures per stage, skipped rows by reason) and loss.png."""
        if not self.enabled:
            return
        self.writer.close()
        records = [json.loads(line) for line in self.metrics_path.read_text().splitlines()]
        stages: dict[str, list[float]] = {}
        for record in records:
            stages.setdefault(record["stage"], []).append(record["loss"])
        report = {
            "steps": len(records),
            "final_loss": records[-1]["loss"] if records else None,
            "stages": {name: {"steps": len(v), "mean_loss": sum(v) / len(v)} for name, v in stages.items()},
            "mean_tokens_per_s": sum(r["tokens_per_s"] for r in records) / max(1, len(records)),
            "skipped_rows": dict(self.skipped),
            "model": str(model_dir),
        }
        (self.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        plot_losses(records, self.out / "loss.png")


def plot_losses(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    for stage in dict.fromkeys(r["stage"] for r in records):
        points = [(r["step"], r["loss"]) for r in records if r["stage"] == stage]
        axis.plot(*zip(*points, strict=True), label=stage, linewidth=1)
    axis.set_xlabel("step")
    axis.set_ylabel("flow-matching loss")
    axis.set_yscale("log")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
