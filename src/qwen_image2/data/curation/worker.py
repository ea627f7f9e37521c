"""One shard, start to finish, in one process: read rows, run the filters batch by batch, write the
shard's score part atomically. Plain Python — the Ray runner wraps it in an actor; tests call it directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from qwen_image2.data.curation.broken import BrokenFilter
from qwen_image2.data.curation.config import RunSettings
from qwen_image2.data.curation.duplicate import DuplicateFilter
from qwen_image2.data.curation.entropy import EntropyFilter
from qwen_image2.data.curation.manifest import PART_SCHEMA, batch_to_part_table, read_part, write_atomic
from qwen_image2.data.curation.orientation import OrientationFilter
from qwen_image2.data.curation.pair import PairFilter
from qwen_image2.data.curation.resolution import ResolutionFilter
from qwen_image2.data.curation.sources import RawItem, Shard, read_shard
from qwen_image2.data.records import sample_id


def build_filters(settings: RunSettings) -> list:
    """The selected filters, in the order they compute (decisions follow the report's order instead:
    `decide.py`). Orientation runs right after decoding so every scorer sees the upright image."""
    chosen = set(settings.filters)
    filters: list = [BrokenFilter(settings.max_pixels, settings.work_side), OrientationFilter()]
    if "resolution" in chosen:
        filters.append(ResolutionFilter())
    if "pair" in chosen:
        filters.append(PairFilter())
    if "duplicate" in chosen:
        filters.append(DuplicateFilter())
    if "nsfw" in chosen:
        from qwen_image2.data.curation.nsfw import NsfwFilter, NudeNetModel

        filters.append(NsfwFilter(NudeNetModel(settings.nsfw_model)))
    if "entropy" in chosen:
        filters.append(EntropyFilter())
    if "clip" in chosen:
        from qwen_image2.data.curation.clip import ClipFilter

        filters.append(ClipFilter(settings.clip_model, settings.clip_weights))
    if "tokens" in chosen:
        from qwen_image2.data.curation.tokens import TokenFilter

        filters.append(TokenFilter(settings.tokenizer))
    return filters


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        array[i] = value
    return array


def items_to_batch(items: list[RawItem]) -> dict[str, np.ndarray]:
    """Raw rows -> the batch dict every filter reads (`dict[str, np.ndarray]`, object columns)."""
    return {
        "id": _objects([sample_id(it.path) for it in items]),
        "path": _objects([it.path for it in items]),
        "caption": _objects([it.caption for it in items]),
        "task": _objects([it.task for it in items]),
        "conditions": _objects([it.conditions for it in items]),
        "data": _objects([it.data for it in items]),
        "read_error": _objects([it.read_error for it in items]),
        "retryable": np.array([it.retryable for it in items], dtype=bool),
        "condition_data": _objects([it.condition_data for it in items]),
        "condition_errors": _objects([it.condition_errors for it in items]),
    }


class ShardCurator:
    """Callable on a batch of shard descriptors (JSON); writes `parts_dir/<shard id>.parquet` for each.

    Returns, per shard, the rows written and the seconds spent, for progress and throughput.
    """

    def __init__(self, settings_json: str, parts_dir: str, batch_size: int = 32, threads: int = 1) -> None:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
        self.settings = RunSettings.model_validate_json(settings_json)
        self.filters = build_filters(self.settings)
        self.parts_dir = Path(parts_dir)
        self.batch_size = batch_size

    def process(self, shard: Shard) -> int:
        part = self.parts_dir / f"{shard.id}.parquet"
        previous = read_part(part) if part.exists() else None
        if previous is None:
            table = self._curate(read_shard(shard, self.settings.max_file_bytes))
        else:
            table = self._retry(shard, previous)
        write_atomic(table, part)
        return table.num_rows

    def _curate(self, items: Iterator[RawItem]) -> pa.Table:
        tables = []
        batch: list[RawItem] = []
        for item in items:
            batch.append(item)
            if len(batch) == self.batch_size:
                tables.append(self._run_batch(batch))
                batch = []
        if batch:
            tables.append(self._run_batch(batch))
        return pa.concat_tables(tables) if tables else PART_SCHEMA.empty_table()

    def _retry(self, shard: Shard, previous: pa.Table) -> pa.Table:
        """Redo only the rows of a finished shard whose read failed transiently; keep the others as they
        were, so a permanent failure (404, an undecodable file) is not fetched again."""
        retry = np.flatnonzero(previous.column("retryable").to_numpy(zero_copy_only=False))
        kept = np.setdiff1d(np.arange(previous.num_rows), retry)
        redone = self._curate(read_shard(shard, self.settings.max_file_bytes, frozenset(retry.tolist())))
        merged = pa.concat_tables([previous.take(kept), redone])
        return merged.take(np.argsort(np.concatenate([kept, retry]), kind="stable"))

    def _run_batch(self, items: list[RawItem]):
        batch = items_to_batch(items)
        for f in self.filters:
            batch = f(batch)
        return batch_to_part_table(batch)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, rows, seconds = [], [], []
        for text in batch["shard"]:
            shard = Shard.from_json(str(text))
            start = time.perf_counter()
            rows.append(self.process(shard))
            seconds.append(time.perf_counter() - start)
            ids.append(shard.id)
        return {"shard": np.array(ids), "rows": np.array(rows), "seconds": np.array(seconds)}
