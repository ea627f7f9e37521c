"""Inputs: folders of images with same-named `.txt` captions, WebDataset tar shards, and parquet files of
(`path` or `url`, `caption`[, `conditions`, `task`]).

Every input is split into shards, the unit of work and of resume. A shard's id is derived from what it
holds (source path, members or row range, size and mtime), so a rerun finds finished shards by id and a
changed source gets new ids rather than stale results.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from qwen_image2.data.curation.fetch import FetchError, fetch_url
from qwen_image2.data.records import TASKS, task_name
from qwen_image2.errors import UserError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
CAPTION_EXTENSIONS = (".txt", ".caption")
_TAR_IMAGE_EXTENSIONS = frozenset(e.lstrip(".") for e in IMAGE_EXTENSIONS)
URL_SCHEMES = ("http://", "https://", "file://")


@dataclass(frozen=True)
class Shard:
    """A unit of work: part of one source. `members` (folders) or `start`/`stop` (parquet rows)."""

    id: str
    kind: str  # "folder" | "tar" | "parquet"
    source: str
    members: tuple[str, ...] = ()
    start: int = 0
    stop: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Shard:
        data = json.loads(text)
        data["members"] = tuple(data["members"])
        return Shard(**data)


@dataclass
class RawItem:
    """One input row as read from its source, before any decoding."""

    path: str
    caption: str | None
    task: str = "t2i"
    data: bytes | None = None
    read_error: str | None = None
    retryable: bool = False  # the read failed transiently: a rerun reads the row again
    conditions: list[str] = field(default_factory=list)
    condition_data: list[bytes | None] = field(default_factory=list)
    condition_errors: list[str | None] = field(default_factory=list)


def _digest(*parts: object) -> str:
    h = hashlib.blake2b(digest_size=6)
    for part in parts:
        h.update(str(part).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def list_shards(sources: list[str], shard_size: int = 1000) -> list[Shard]:
    """Split `sources` into shards, in a deterministic order (sources as given, files sorted)."""
    if not sources:
        raise UserError("give at least one SOURCE: a folder of images, a .tar shard or a .parquet file")
    shards: list[Shard] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise UserError(f"source {source} does not exist")
        if path.is_dir():
            shards += _folder_shards(path.resolve(), shard_size)
        elif path.suffix == ".tar":
            shards.append(Shard(_digest("tar", path.resolve(), *_stat_key(path)), "tar", str(path.resolve())))
        elif path.suffix == ".parquet":
            shards += _parquet_shards(path.resolve(), shard_size)
        else:
            raise UserError(f"source {source}: expected a folder, a .tar (WebDataset) or a .parquet file")
    ids = [s.id for s in shards]
    if len(set(ids)) != len(ids):
        raise UserError("the same source is given twice; each input must be listed once")
    return shards


def _folder_shards(folder: Path, shard_size: int) -> list[Shard]:
    members = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )
    shards = []
    for index, start in enumerate(range(0, len(members), shard_size)):
        chunk = tuple(members[start : start + shard_size])
        shard_id = f"{_digest('folder', folder)}-{index:06d}-{_digest(*chunk)}"
        shards.append(Shard(shard_id, "folder", str(folder), members=chunk))
    return shards


def _parquet_shards(path: Path, shard_size: int) -> list[Shard]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"source {path}: not a readable parquet file ({err})") from None
    names = set(meta.schema.names)
    if not names & {"path", "url"}:
        raise UserError(
            f"source {path}: a parquet source needs a 'path' or 'url' column, it has {sorted(names)}"
        )
    key = _stat_key(path)
    return [
        Shard(
            _digest("parquet", path, *key, start),
            "parquet",
            str(path),
            start=start,
            stop=min(start + shard_size, meta.num_rows),
        )
        for start in range(0, meta.num_rows, shard_size)
    ]


def read_shard(shard: Shard, max_bytes: int, only: frozenset[int] | None = None) -> Iterator[RawItem]:
    """Yield the shard's rows in a fixed order; unreadable rows come with `read_error`, never skipped.

    `only`: positions within the shard to read, the rest are not fetched; for retrying the retryable
    rows of a parquet shard (the only kind that fetches URLs, so the only kind with such rows).
    """
    if only is not None and shard.kind != "parquet":
        raise ValueError(f"only parquet shards are read in part, not {shard.kind!r}")
    if shard.kind == "folder":
        yield from _read_folder(shard, max_bytes)
    elif shard.kind == "tar":
        yield from _read_tar(shard, max_bytes)
    elif shard.kind == "parquet":
        yield from _read_parquet(shard, max_bytes, only)
    else:
        raise ValueError(f"unknown shard kind {shard.kind!r}")


def _read_caption(image: Path) -> str | None:
    for ext in CAPTION_EXTENSIONS:
        candidate = image.with_suffix(ext)
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8", errors="replace").strip()
    return None


class Read(NamedTuple):
    """The bytes of one image, or why not, and whether trying again later may succeed."""

    data: bytes | None
    error: str | None = None
    retryable: bool = False


def read_bytes(ref: str, base: Path, max_bytes: int) -> Read:
    """Bytes of a local path (relative to `base`) or URL."""
    try:
        if ref.startswith(URL_SCHEMES):
            data = fetch_url(ref, max_bytes)
        else:
            path = Path(ref) if Path(ref).is_absolute() else base / ref
            if path.stat().st_size > max_bytes:
                return Read(None, f"file larger than {max_bytes} bytes")
            data = path.read_bytes()
    except FetchError as err:
        return Read(None, str(err), err.retryable)
    except (OSError, tarfile.TarError, KeyError, ValueError) as err:  # a missing, unreadable or bad member
        return Read(None, f"unreadable: {type(err).__name__}: {err}")
    if len(data) > max_bytes:
        return Read(None, f"file larger than {max_bytes} bytes")
    return Read(data)


def _read_folder(shard: Shard, max_bytes: int) -> Iterator[RawItem]:
    folder = Path(shard.source)
    for member in shard.members:
        read = read_bytes(member, folder, max_bytes)
        yield RawItem(
            str(folder / member), _read_caption(folder / member), data=read.data, read_error=read.error
        )


def _webdataset_key(name: str) -> tuple[str, str]:
    """WebDataset convention: the key is the member path up to the first dot of its basename."""
    directory, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), (dot + ext).lower()


def _read_tar(shard: Shard, max_bytes: int) -> Iterator[RawItem]:
    # Members of one sample are adjacent in a WebDataset shard, so one sequential pass with a one-sample
    # buffer reads it with bounded memory.
    current: dict[str, object] | None = None
    try:
        with tarfile.open(shard.source, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = _webdataset_key(member.name)
                if current is not None and current["key"] != key:
                    if current.get("image") is not None or current.get("error"):
                        yield _tar_item(shard, current)
                    current = None
                current = current or {"key": key}
                if ext.rsplit(".", 1)[-1] in _TAR_IMAGE_EXTENSIONS:
                    if member.size > max_bytes:
                        current["error"] = f"file larger than {max_bytes} bytes"
                        current["image"] = b""
                    else:
                        current["image"] = tar.extractfile(member).read()
                elif ext in CAPTION_EXTENSIONS:
                    current["caption"] = tar.extractfile(member).read().decode("utf-8", "replace").strip()
    except (tarfile.TarError, OSError, EOFError) as err:
        if current is not None and current.get("image") is not None:
            current["error"] = current.get("error") or f"shard truncated: {err}"
            yield _tar_item(shard, current)
            current = None
        # The rest of a truncated shard cannot be listed; what was read is accounted for.
    if current is not None and (current.get("image") is not None or current.get("error")):
        yield _tar_item(shard, current)


def _tar_item(shard: Shard, current: dict[str, object]) -> RawItem:
    error = current.get("error")
    data = None if error else current.get("image")
    return RawItem(f"{shard.source}#{current['key']}", current.get("caption"), data=data, read_error=error)


def _row_groups_in_range(shard: Shard) -> Iterator[tuple[int, list[dict]]]:
    """(index of the first row, rows) for each part of the shard's row range, one row group at a time:
    memory holds one row group, never the whole file."""
    import pyarrow.parquet as pq

    file = pq.ParquetFile(shard.source)
    group_start = 0
    for group in range(file.metadata.num_row_groups):
        group_rows = file.metadata.row_group(group).num_rows
        group_stop = group_start + group_rows
        start, stop = max(shard.start, group_start), min(shard.stop, group_stop)
        if start < stop:
            table = file.read_row_group(group).slice(start - group_start, stop - start)
            yield start, table.to_pylist()
        group_start = group_stop
        if group_start >= shard.stop:
            return


def _read_parquet(shard: Shard, max_bytes: int, only: frozenset[int] | None) -> Iterator[RawItem]:
    base = Path(shard.source).parent
    for first, rows in _row_groups_in_range(shard):
        for offset, row in enumerate(rows):
            if only is None or first + offset - shard.start in only:
                yield _parquet_item(shard, first + offset, row, base, max_bytes)


def _parquet_item(shard: Shard, index: int, row: dict, base: Path, max_bytes: int) -> RawItem:
    ref = row["path"] if "path" in row else row["url"]
    conditions = [str(c) for c in (row.get("conditions") or [])]
    task = task_name(row.get("task") or ("edit" if conditions else "t2i"))
    if ref is None:
        return RawItem(f"{shard.source}#row{index}", row.get("caption"), task, read_error="no path")
    read = read_bytes(str(ref), base, max_bytes)
    if task not in TASKS:
        read = Read(None, f"unknown task {task!r}")
    item = RawItem(
        str(ref),
        row.get("caption"),
        task,
        data=read.data,
        read_error=read.error,
        retryable=read.retryable,
        conditions=conditions,
    )
    for condition in conditions:
        condition_read = read_bytes(condition, base, max_bytes)
        item.condition_data.append(condition_read.data)
        item.condition_errors.append(condition_read.error)
        item.retryable |= condition_read.retryable
    return item
