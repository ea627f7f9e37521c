"""The GRPO run's report: report.md (per-reward means, first vs last logged step and over the run, the share
of groups that taught nothing, seconds per step) and rewards.png (each reward's mean, and the weighted
total, per step), from metrics.jsonl."""

import json
import statistics
from pathlib import Path

from qwen_image2.enhancer.trainer_run import read_metrics


def reward_names(rows: list[dict]) -> list[str]:
    """TRL's per-reward means, `rewards/<name>/mean`, in the order first logged."""
    names = [key for row in rows for key in row if key.startswith("rewards/") and key.endswith("/mean")]
    return list(dict.fromkeys(names))


def _name(key: str) -> str:
    """`rewards/ocr/mean` -> `ocr`; TRL's weighted total, `reward`, -> `total`."""
    return "total" if key == "reward" else key.split("/")[1]


def plot_rewards(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    steps = [row["step"] for row in rows]
    for key in [*reward_names(rows), "reward"]:
        values = [row.get(key) for row in rows]
        label = "total (weighted)" if key == "reward" else _name(key)
        axes.plot(steps, values, marker="o", markersize=3, label=label, linewidth=2 if key == "reward" else 1)
    axes.set_xlabel("step")
    axes.set_ylabel("mean reward")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _over_run(rows: list[dict], key: str, average=statistics.fmean) -> float | None:
    """`average` of `key` over the steps that logged it; None when none did."""
    values = [row[key] for row in rows if row.get(key) is not None]
    return average(values) if values else None


def summary(rows: list[dict], wall_seconds: float) -> dict:
    """Seconds, per-reward first/last/mean, and why a run may not move: a group whose answers all score the
    same has zero advantage and no gradient (TRL's frac_reward_zero_std); entropy says how varied the
    sampled answers were."""
    first, last = (rows[0], rows[-1]) if rows else ({}, {})
    return {
        "steps_logged": len(rows),
        "last_step": last.get("step"),
        "wall_seconds_this_run": round(wall_seconds, 1),
        "median_step_seconds": _over_run(rows, "step_seconds", statistics.median),
        "median_render_seconds": _over_run(rows, "render_seconds", statistics.median),
        "groups_without_spread": _over_run(rows, "frac_reward_zero_std"),
        "mean_entropy": _over_run(rows, "entropy"),
        "rewards": {
            _name(key): {"first": first.get(key), "last": last.get(key), "mean": _over_run(rows, key)}
            for key in [*reward_names(rows), "reward"]
        },
    }


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_report(output_dir: Path, wall_seconds: float) -> Path:
    """report.json, report.md and rewards.png in `output_dir`; returns report.md."""
    output_dir = Path(output_dir)
    rows = read_metrics(output_dir)
    figures = summary(rows, wall_seconds)
    (output_dir / "report.json").write_text(json.dumps(figures, indent=2))
    lines = [
        "# Enhancer GRPO run",
        "",
        f"Steps logged: {figures['steps_logged']} (last step {figures['last_step']}); "
        f"median seconds per step: {figures['median_step_seconds']}; "
        f"median render seconds per step: {figures['median_render_seconds']}.",
        f"Groups with no reward spread (zero advantage, no gradient): {_figure(figures['groups_without_spread'])}; "
        f"mean entropy of the sampled answers: {_figure(figures['mean_entropy'])}.",
        "",
        "| reward | first logged step | last logged step | mean over the run |",
        "|---|---|---|---|",
    ]
    for name, values in figures["rewards"].items():
        cells = [_figure(values[k]) for k in ("first", "last", "mean")]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    if rows:
        plot_rewards(rows, output_dir / "rewards.png")
        lines += [
            "",
            "![mean reward per step](rewards.png)",
            "",
            "Rollout images of each logged step: `rollouts/step-NNNNNNN.png`.",
        ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path
