"""The leaderboard as a PNG: one panel per board and category, each model's rating with its 95% interval."""

from __future__ import annotations

import io
import math
from pathlib import Path

from qwen_image2.evaluation.arena.ratings import Rating


def render_leaderboard_png(slices: dict[str, list[Rating]], title: str = "Arena ratings") -> bytes:
    """PNG bytes: a horizontal interval plot per slice name, best model on top.

    Uses `matplotlib.figure.Figure` directly (no pyplot), so it needs no display and holds no global state
    in a web server.
    """
    from matplotlib.figure import Figure

    names = [name for name, rows in slices.items() if rows] or ["(no votes yet)"]
    columns = min(3, len(names))
    grid_rows = math.ceil(len(names) / columns)
    tallest = max((len(slices.get(name, [])) for name in names), default=1)
    figure = Figure(figsize=(5.2 * columns, (0.9 + 0.38 * max(tallest, 2)) * grid_rows + 0.6), dpi=110)
    figure.suptitle(title, fontsize=13)
    for position, name in enumerate(names, start=1):
        axis = figure.add_subplot(grid_rows, columns, position)
        rows = list(reversed(slices.get(name, [])))  # matplotlib draws y=0 at the bottom
        _draw_slice(axis, name, rows)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _draw_slice(axis, name: str, rows: list[Rating]) -> None:
    axis.set_title(name, fontsize=11)
    if not rows:
        axis.text(0.5, 0.5, "no votes", ha="center", va="center", transform=axis.transAxes)
        axis.set_axis_off()
        return
    ys = list(range(len(rows)))
    ratings = [row.rating for row in rows]
    # A percentile interval from few bootstrap rounds need not contain the point estimate: no negative bar.
    errors = [
        [max(0.0, row.rating - row.ci_low) for row in rows],
        [max(0.0, row.ci_high - row.rating) for row in rows],
    ]
    axis.errorbar(ratings, ys, xerr=errors, fmt="o", color="#1f5fa8", ecolor="#7aa6d6", capsize=4)
    for y, row in zip(ys, rows, strict=True):
        axis.annotate(
            f"{row.rating:.0f}",
            (row.rating, y),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    axis.set_yticks(ys, [f"{row.model} ({row.votes})" for row in rows], fontsize=9)
    axis.set_ylim(-0.7, len(rows) - 0.3)
    axis.set_xlabel("Elo (Bradley-Terry), 95% bootstrap interval", fontsize=8)
    axis.grid(axis="x", alpha=0.3)


def save_leaderboard_png(slices: dict[str, list[Rating]], path: Path, title: str = "Arena ratings") -> Path:
    """Write `render_leaderboard_png` to `path` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_leaderboard_png(slices, title))
    return path
