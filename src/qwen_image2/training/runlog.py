"""What a training run writes besides checkpoints: metrics.jsonl, tensorboard, the final report and plot."""

import json
import warnings
from collections import Counter
from pathlib import Path


def truncate_metrics(path: Path, resume_step: int) -> list[dict]:
    """Cut a metrics.jsonl back to a resumed checkpoint: keep the records of steps up to `resume_step` and
    return them. A line a kill -9 left unfinished (not JSON) is dropped with a warning."""
    if not path.exists():
        return []
    kept, records = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{number}: dropped an unfinished line (a killed run?)", stacklevel=2)
            continue
        if record.get("step", 0) <= resume_step:
            kept.append(line)
            records.append(record)
    path.write_text("".join(f"{line}\n" for line in kept))
    return records


class RunLog:
    """One JSON line per optimizer step; on resume, lines past the checkpoint's step are dropped so that the
    file always describes one consistent run. The report counts skipped rows, cache misses (samples the
    latent cache lacked, encoded online) and the stages whose T2I:edit ratio was renormalised."""

    def __init__(self, out: Path, enabled: bool, resume_step: int = 0):
        self.enabled = enabled
        self.out = out
        self.metrics_path = out / "metrics.jsonl"
        self.skipped: Counter = Counter()
        self.cache_misses = 0
        self.renormalised: dict[str, str] = {}  # stage -> how its T2I:edit ratio changed
        self.writer = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        for record in truncate_metrics(self.metrics_path, resume_step):
            self.skipped.update(record.get("skipped", {}))
            self.cache_misses += record.get("cache_misses", 0)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step + 1)

    def step(self, step: int, skipped: list[tuple[str, str]], cache_misses: int = 0, **values) -> None:
        if not self.enabled:
            return
        reasons = Counter(reason for _, reason in skipped)
        self.skipped.update(reasons)
        self.cache_misses += cache_misses
        record = {"step": step, **values}
        if reasons:
            record["skipped"] = dict(reasons)
        if cache_misses:
            record["cache_misses"] = cache_misses
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
            "cache_misses": self.cache_misses,
            "mixture_renormalised": self.renormalised,
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
