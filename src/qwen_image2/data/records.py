"""The sample schema shared by curation, caching, training and evaluation.

A sample is one training example: a target image with its caption (`t2i`), or a target image with an
instruction and 1..10 condition images (`edit`; the report's TI2I). Curation writes one manifest row per input with
these fields first, then its scores; caching and training read the rows that passed back as `Sample`s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Task = Literal["t2i", "edit"]
TASKS: tuple[str, ...] = ("t2i", "edit")
# Manifests and stores written before the edit task had one name call it `ti2i`; they read as `edit`.
OLD_TASK_NAMES = {"ti2i": "edit"}


def task_name(task: str) -> str:
    """The task's name today, for a name read from a file of any age."""
    return OLD_TASK_NAMES.get(task, task)


def sample_id(path: str) -> str:
    """Stable id of a sample: 16 hex digits of BLAKE2b over its source path (file path or `shard.tar#key`).

    >>> sample_id("a/b.jpg") == sample_id("a/b.jpg") and len(sample_id("a/b.jpg")) == 16
    True
    """
    return hashlib.blake2b(path.encode("utf-8"), digest_size=8).hexdigest()


@dataclass
class Sample:
    """One sample as curation, caching and training see it.

    Attributes:
        id: stable id, `sample_id(path)`.
        path: where the target image comes from: a file path, a URL, or `shard.tar#key`.
        caption: the prompt (t2i) or the edit instruction (edit); None when the source had none.
        task: "t2i" or "edit" (`ti2i` is read as "edit").
        conditions: the condition (source) images of an edit, same addressing as `path`; empty for t2i.
        width, height: the target's size in pixels after EXIF orientation correction (0 if unknown).
        scores: every score curation computed, by column name (`entropy_score`, `clip_score`, ...).
    """

    id: str
    path: str
    caption: str | None = None
    task: Task = "t2i"
    conditions: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.task = task_name(self.task)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "edit" and not self.conditions:
            raise ValueError(f"sample {self.path}: an edit sample needs at least one condition image")


# The record fields in manifest column order; curation appends its own columns after these.
RECORD_COLUMNS: tuple[str, ...] = ("id", "path", "caption", "task", "conditions", "width", "height")


def load_samples(manifest: str | Path, passed_only: bool = True) -> list[Sample]:
    """Read a curation manifest (parquet) back as `Sample`s; by default only the rows that passed."""
    import pyarrow.parquet as pq

    table = pq.read_table(manifest)
    if passed_only:
        import pyarrow.compute as pc

        table = table.filter(pc.equal(table["passed"], True))
    score_columns = [c for c in table.column_names if c.endswith("_score")]
    samples = []
    for row in table.to_pylist():
        scores = {c: row[c] for c in score_columns if row[c] is not None}
        samples.append(
            Sample(
                id=row["id"],
                path=row["path"],
                caption=row["caption"],
                task=row["task"],
                conditions=list(row["conditions"] or []),
                width=int(row["width"] or 0),
                height=int(row["height"] or 0),
                scores=scores,
            )
        )
    return samples
