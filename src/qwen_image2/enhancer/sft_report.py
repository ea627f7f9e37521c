"""The SFT run's report: report.json, report.md and loss.png (training and eval loss per step), and what
the exported model answers on held-out rows.

The held-out check sends each row's chat (the one it was trained on) to the exported model, greedy, and
reads the answer as `PromptEnhancer.rewrite` does: the share that parsed and kept the rules (parse_ok), the
share that kept every requested text, the share equal to the reference rewrite, and the latency. These are
rows of the data's own held-out split; the colloquial sets of `eval enhancer` are the real test.
"""

import json
import statistics
import time
from pathlib import Path

from qwen_image2.enhancer.rows import EnhancerRow, row_messages
from qwen_image2.enhancer.trainer_run import read_metrics

CHECK_ROWS = 64


def held_out_check(model_dir: Path, rows: list[EnhancerRow]) -> dict:
    from qwen_image2.enhancer.answer import parse_answer
    from qwen_image2.enhancer.backend import DEFAULT_SAMPLING
    from qwen_image2.enhancer.constraints import broken_rule
    from qwen_image2.enhancer.loading import load_enhancer

    backend = load_enhancer(str(model_dir)).backend
    parsed, kept, exact, latency, examples = 0, 0, 0, [], []
    for row in rows:
        start = time.perf_counter()
        completion = backend.complete(row_messages(row), DEFAULT_SAMPLING[row.task])
        latency.append(time.perf_counter() - start)
        answer = parse_answer(completion.text).prompt
        ok = answer is not None and broken_rule(row.prompt, answer) is None
        parsed += ok
        kept += ok and all(text in answer for text in row.texts)
        exact += ok and answer == row.rewrite
        if len(examples) < 8:
            examples.append({"prompt": row.prompt, "answer": completion.text, "reference": row.rewrite})
    count = max(1, len(rows))
    return {
        "rows": len(rows),
        "parse_ok": parsed / count,
        "texts_kept": kept / count,
        "exact": exact / count,
        "median_latency_s": statistics.median(latency) if latency else None,
        "examples": examples,
    }


def plot_loss(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for key, label in (("loss", "training"), ("eval_loss", "held-out")):
        points = [(row["step"], row[key]) for row in rows if key in row]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o" if key == "eval_loss" else None, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy on the answer (nats per token)")
    axes.set_yscale("log")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_report(out: Path, model_dir: Path, held: list[EnhancerRow], wall_seconds: float) -> Path:
    """report.json, report.md and loss.png in the run's folder `out`; returns report.md. The held-out check
    reads the exported `model_dir` back, as a user of it would."""
    rows = read_metrics(out)
    train = [row for row in rows if "loss" in row]
    evals = [row for row in rows if "eval_loss" in row]
    check = held_out_check(model_dir, held[:CHECK_ROWS]) if held else None
    step_times = [row["step_seconds"] for row in train if row.get("step_seconds") is not None]
    figures = {
        "last_step": train[-1]["step"] if train else None,
        "wall_seconds_this_run": round(wall_seconds, 1),
        "median_step_seconds": statistics.median(step_times) if step_times else None,
        "loss": {"first": train[0]["loss"], "last": train[-1]["loss"]} if train else None,
        "token_accuracy_last": train[-1].get("mean_token_accuracy") if train else None,
        "eval_loss": [{"step": row["step"], "eval_loss": row["eval_loss"]} for row in evals],
        "held_out_check": check,
    }
    (out / "report.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    lines = [
        "# Enhancer SFT run",
        "",
        f"Last step {figures['last_step']}; median seconds per step {figures['median_step_seconds']}; "
        f"wall seconds this run {figures['wall_seconds_this_run']}.",
    ]
    if train:
        lines.append(
            f"Training loss {train[0]['loss']:.4f} (first logged step) -> {train[-1]['loss']:.4f} (last); "
            f"token accuracy at the end {figures['token_accuracy_last']}."
        )
    if evals:
        lines.append(f"Held-out loss at step {evals[-1]['step']}: {evals[-1]['eval_loss']:.4f}.")
    if check:
        lines += [
            "",
            f"Greedy answers on {check['rows']} held-out rows: parse_ok {check['parse_ok']:.3f}, "
            f"every requested text kept {check['texts_kept']:.3f}, equal to the reference rewrite "
            f"{check['exact']:.3f}, median latency {check['median_latency_s']:.3f} s.",
        ]
    if rows:
        plot_loss(rows, out / "loss.png")
        lines += ["", "![loss per step](loss.png)"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path
