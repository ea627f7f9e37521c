"""The run's report: `report.json` (counts per filter, score summaries and histograms, throughput) and
`report.png` (the same, drawn), written beside the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from qwen_image2.data.curation.config import FILTER_ORDER, StageThresholds

SCORES = {
    "resolution_score": ("resolution", "shorter side (px)"),
    "entropy_score": ("entropy", "grey entropy (bits)"),
    "nsfw_score": ("nsfw", "NSFW score"),
    "clip_score": ("clip", "CLIP similarity"),
    "tokens_score": ("tokens", "caption tokens"),
    "pair_score": ("pair", "pair similarity"),
    "pair_change": ("pair", "pair pixel change (levels)"),
}


def _threshold_lines(t: StageThresholds) -> dict[str, list[float]]:
    return {
        "resolution_score": [t.resolution.min_side],
        "entropy_score": [t.entropy.min_score],
        "nsfw_score": [t.nsfw.max_score],
        "clip_score": [t.clip.min_score],
        "tokens_score": [t.tokens.min_tokens, t.tokens.max_tokens],
        "pair_score": [t.pair.min_similarity],
        "pair_change": [t.pair.min_change],
    }


def build_report(
    manifest: pd.DataFrame,
    stage: str,
    filters: tuple[str, ...],
    thresholds: StageThresholds,
    throughput: dict,
) -> dict:
    rejected = manifest.loc[~manifest["passed"], "reason"].value_counts()
    report = {
        "stage": stage,
        "filters": list(filters),
        "thresholds": thresholds.model_dump(),
        "rows_in": int(len(manifest)),
        "rows_passed": int(manifest["passed"].sum()),
        "rows_rejected": int((~manifest["passed"]).sum()),
        "rejected_by": {name: int(rejected.get(name, 0)) for name in FILTER_ORDER},
        "failed_any": {name: int((~manifest[f"{name}_keep"]).sum()) for name in FILTER_ORDER},
        "rotated": int(manifest["rotated"].fillna(False).sum()),
        "scores": {},
        "throughput": throughput,
    }
    for column in SCORES:
        values = manifest[column].dropna().to_numpy(dtype=np.float64)
        if len(values) == 0:
            continue
        counts, edges = np.histogram(values, bins=20)
        report["scores"][column] = {
            "count": int(len(values)),
            "min": float(values.min()),
            "mean": float(values.mean()),
            "max": float(values.max()),
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        }
    return report


def plot_report(report: dict, path: Path, thresholds: StageThresholds) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [c for c in SCORES if c in report["scores"]]
    cols = 3
    rows = 1 + (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    bar = axes[0][0]
    names = list(report["rejected_by"])
    bar.barh(names, [report["rejected_by"][n] for n in names], color="tab:red")
    bar.invert_yaxis()
    bar.set_title(f"rejected by (first failure), {report['rows_rejected']}/{report['rows_in']}")
    info = axes[0][1]
    info.axis("off")
    tp = report["throughput"]
    info.text(
        0,
        0.9,
        "\n".join(
            [
                f"stage {report['stage']}",
                f"passed {report['rows_passed']} of {report['rows_in']}",
                f"throughput {tp.get('images_per_s', 0):.1f} images/s",
                f"workers {tp.get('workers')}, {tp.get('seconds', 0):.1f} s",
                f"shards {tp.get('shards_processed', 0)} run, {tp.get('shards_skipped', 0)} resumed",
            ]
        ),
        va="top",
        family="monospace",
    )
    axes[0][2].axis("off")
    lines = _threshold_lines(thresholds)
    for k, column in enumerate(panels):
        ax = axes[1 + k // cols][k % cols]
        hist = report["scores"][column]["histogram"]
        edges = np.array(hist["edges"])
        ax.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", color="tab:blue")
        for x in lines[column]:
            ax.axvline(x, color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(SCORES[column][1])
    for k in range(len(panels), (rows - 1) * cols):
        axes[1 + k // cols][k % cols].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(
    manifest: pd.DataFrame,
    out: Path,
    stage: str,
    filters: tuple[str, ...],
    thresholds: StageThresholds,
    throughput: dict,
) -> dict:
    report = build_report(manifest, stage, filters, thresholds, throughput)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    plot_report(report, out / "report.png", thresholds)
    return report
