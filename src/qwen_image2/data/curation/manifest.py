"""The columns curation writes: per-shard score parts, and the manifest (scores + decisions).

A part holds, for every row of one shard, the record fields (`qwen_image2.data.records`) and every raw
score; nothing in it depends on a stage's thresholds. The manifest is all parts in shard order plus the
decision columns `passed`, `reason`, `detail` and one `<filter>_keep` per filter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qwen_image2.data.curation.config import FILTER_ORDER
from qwen_image2.data.records import RECORD_COLUMNS

PART_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("path", pa.string()),
        ("caption", pa.string()),
        ("task", pa.string()),
        ("conditions", pa.list_(pa.string())),
        ("width", pa.int64()),  # after orientation correction
        ("height", pa.int64()),
        ("rotated", pa.bool_()),
        ("exif_orientation", pa.int64()),
        ("frames", pa.int64()),
        ("mode", pa.string()),  # the file's pixel mode before conversion to RGB
        ("sha256", pa.string()),  # of decoded pixels
        ("phash", pa.string()),  # 64-bit pHash, 16 hex digits; null for flat or broken images
        ("phash_dihedral", pa.string()),  # pHashes of the 7 other rotations/mirror images, 7 x 16 hex digits
        ("broken_detail", pa.string()),  # why decoding failed; null if it did not
        ("retryable", pa.bool_()),  # reading failed transiently (a URL timed out, 5xx): a rerun retries
        ("resolution_score", pa.float64()),  # shorter side, px
        ("aspect", pa.float64()),
        ("pair_score", pa.float64()),
        ("pair_change", pa.float64()),  # largest cell-mean change from the closest condition, grey levels
        ("pair_aspect_change", pa.float64()),
        ("nsfw_score", pa.float64()),
        ("entropy_score", pa.float64()),
        ("clip_score", pa.float64()),
        ("tokens_score", pa.float64()),
        ("clip_embedding", pa.list_(pa.float16())),
    ]
)
assert tuple(PART_SCHEMA.names[: len(RECORD_COLUMNS)]) == RECORD_COLUMNS

DECISION_FIELDS = [
    pa.field("passed", pa.bool_()),
    pa.field("reason", pa.string()),  # the first filter, in report order, that rejected the row
    pa.field("detail", pa.string()),
    pa.field("duplicate_of", pa.string()),  # path of the kept member of the row's duplicate group
] + [pa.field(f"{name}_keep", pa.bool_()) for name in FILTER_ORDER]

METADATA_KEY = b"qwen_image2.curation"


def _column(batch: dict[str, np.ndarray], name: str, n: int) -> list:
    if name == "conditions":
        return [list(c) for c in batch["conditions"]]
    if name == "clip_embedding":
        values = batch.get("clip_embedding")
        return [None if v is None else v.tolist() for v in values] if values is not None else [None] * n
    values = batch.get(name)
    if values is None:
        return [None] * n
    return [None if (isinstance(v, float) and np.isnan(v)) else v for v in values.tolist()]


def batch_to_part_table(batch: dict[str, np.ndarray]) -> pa.Table:
    n = len(batch["id"])
    return pa.table(
        {f.name: pa.array(_column(batch, f.name, n), type=f.type) for f in PART_SCHEMA}, schema=PART_SCHEMA
    )


def write_atomic(table: pa.Table, path: Path, metadata: dict | None = None) -> None:
    """Write parquet so that `path` either holds the whole table or does not exist (kill -9 safe)."""
    if metadata is not None:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata)}
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_part(path: Path) -> pa.Table:
    """A part or manifest as PART_SCHEMA: the columns a file written by an older release lacks (scores
    added since, `retryable`) come back as nulls, which every filter keeps and no rerun retries."""
    present = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[name for name in PART_SCHEMA.names if name in present])
    for field in PART_SCHEMA:
        if field.name not in present:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(PART_SCHEMA.names).cast(PART_SCHEMA)


def read_metadata(path: Path) -> dict:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}
