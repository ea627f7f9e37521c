"""Write a synthetic text-rich dataset: sharded PNGs and a manifest in the shared sample schema.

Sample `i` of seed `s` is drawn from its own generator `default_rng([s, i])`, so any shard can be written
alone, in any order, by any worker, and a rerun skips the shards already written (each shard's rows are
written last, atomically). The manifest's first columns are `records.RECORD_COLUMNS`; after them come
`lang`, `tier`, `layout`, `texts` (every rendered text of the target), `edit` (the edit kind), `mask`
(PNG of the changed region, 255 = changed), and `old_text`/`new_text` for edits that change text.
Paths are relative to the output folder, where the trainer resolves them (data.root defaults to the
manifest's folder).
"""

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qwen_image2.data.records import sample_id
from qwen_image2.data.synthetic.captions import caption
from qwen_image2.data.synthetic.edits import make_edit
from qwen_image2.data.synthetic.fonts import available_fonts
from qwen_image2.data.synthetic.layouts import FULL, TIERS, WORDS, build_scene
from qwen_image2.data.synthetic.scene import render_mask, render_scene
from qwen_image2.errors import UserError

STYLES = {"full": FULL, "words": WORDS}


def manifest_schema():
    """Explicit column types, so that shards whose optional columns are all empty still concatenate."""
    import pyarrow as pa

    text, integer = pa.string(), pa.int64()
    columns = [
        ("id", text),
        ("path", text),
        ("caption", text),
        ("task", text),
        ("conditions", pa.list_(text)),
    ]
    columns += [("width", integer), ("height", integer), ("lang", text), ("tier", integer), ("layout", text)]
    columns += [
        ("edit", text),
        ("mask", text),
        ("old_text", text),
        ("new_text", text),
        ("texts", pa.list_(text)),
    ]
    return pa.schema(columns)


@dataclass(frozen=True)
class TextDataConfig:
    """What to draw. `style`: full (every layout) or words (word posters for a tiny model)."""

    style: str = "full"
    tiers: tuple[int, ...] = TIERS
    langs: tuple[str, ...] = ("en", "zh")
    zh_share: float = 0.3  # of samples, when both languages are asked for
    edit_ratio: float = 0.5  # edit pairs per T2I sample
    shard_size: int = 1000

    def check(self) -> None:
        if self.style not in STYLES:
            raise UserError(f"style {self.style!r}: choose one of {', '.join(STYLES)}")
        if not self.tiers or any(t not in TIERS for t in self.tiers):
            raise UserError(f"tiers {self.tiers}: choose from {', '.join(map(str, TIERS))}")
        if not self.langs or any(lang not in ("en", "zh") for lang in self.langs):
            raise UserError(f"langs {self.langs}: choose en, zh or both")
        if self.shard_size < 1 or self.edit_ratio < 0:
            raise UserError("shard size must be >= 1 and the edit ratio >= 0")
        for lang in self.langs:
            available_fonts(lang)  # a missing font package is a UserError now, not in a worker later


def edit_indices(n_total: int, n_edits: int, seed: int) -> set[int]:
    """Which sample indices are edit pairs: a seeded choice, so that edits are spread over all shards."""
    return {int(i) for i in np.random.default_rng([seed, 2**31]).permutation(n_total)[:n_edits]}


def render_sample(
    seed: int, index: int, is_edit: bool, config: TextDataConfig, out: Path, shard: str
) -> dict:
    """Draw sample `index`, write its PNGs under out/shard, and return its manifest row."""
    rng = np.random.default_rng([seed, index])
    style = STYLES[config.style]
    lang = config.langs[0] if len(config.langs) == 1 else ("zh" if rng.random() < config.zh_share else "en")
    tier = int(config.tiers[int(rng.integers(len(config.tiers)))])
    scene = build_scene(rng, tier, lang, style)
    stem = f"{shard}/{config.style}-s{seed}-{index:07d}"
    row = {"lang": lang, "tier": tier, "layout": scene.layout, "edit": None, "mask": None}
    row |= {"old_text": None, "new_text": None}
    if is_edit:
        edit = make_edit(rng, scene, style)
        render_scene(scene).save(out / f"{stem}-source.png")
        render_mask(scene.size, list(edit.changed)).save(out / f"{stem}-mask.png")
        scene, text, task, conditions = edit.target, edit.instruction, "edit", [f"{stem}-source.png"]
        row |= {"edit": edit.kind, "mask": f"{stem}-mask.png", "old_text": edit.old_text}
        row["new_text"] = edit.new_text
    else:
        text, task, conditions = caption(scene), "t2i", []
    render_scene(scene).save(out / f"{stem}.png")
    path = f"{stem}.png"
    record = {"id": sample_id(path), "path": path, "caption": text, "task": task, "conditions": conditions}
    record |= {"width": scene.size[0], "height": scene.size[1]}
    return record | row | {"texts": scene.texts()}


def write_shard(
    out: Path, shard: int, indices: range, edits: set[int], seed: int, config: TextDataConfig
) -> Path:
    """Write one shard's images and rows (`shards/NNNNN.parquet`, atomically); skip it if it exists."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows_path = out / "shards" / f"{shard:05d}.parquet"
    if rows_path.is_file():
        return rows_path
    name = f"shards/{shard:05d}"
    (out / name).mkdir(parents=True, exist_ok=True)
    rows = [render_sample(seed, i, i in edits, config, out, name) for i in indices]
    partial = rows_path.with_suffix(".parquet.partial")
    pq.write_table(pa.Table.from_pylist(rows, schema=manifest_schema()), partial)
    os.replace(partial, rows_path)
    return rows_path


class _Inline:
    """A stand-in for a process pool with one worker: map in this process (debuggable, no pickling)."""

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    @staticmethod
    def map(function, *iterables):
        return map(function, *iterables)


def _check_settings(out: Path, settings: dict) -> None:
    """A rerun into the same folder resumes only with the same settings (shards would not match)."""
    path = out / "synth.json"
    settings = json.loads(json.dumps(settings))  # tuples as lists, as they come back from disk
    if path.is_file() and json.loads(path.read_text()) != settings:
        raise UserError(f"{out} holds a dataset made with other settings ({path}); choose another --out")
    path.write_text(json.dumps(settings, indent=2))


def write_text_dataset(
    out: str | Path, n: int, seed: int = 0, config: TextDataConfig = TextDataConfig(), workers: int = 1
) -> Path:
    """Write `n` T2I samples and `round(n * edit_ratio)` edit pairs; returns out/manifest.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    config.check()
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    _check_settings(out, {"n": n, "seed": seed, **asdict(config)})
    total = n + round(n * config.edit_ratio)
    edits = edit_indices(total, total - n, seed)
    starts = range(0, total, config.shard_size)
    jobs = [
        (out, k, range(s, min(s + config.shard_size, total)), edits, seed, config)
        for k, s in enumerate(starts)
    ]
    with ProcessPoolExecutor(workers) if workers > 1 else _Inline() as pool:
        paths = list(tqdm(pool.map(write_shard, *zip(*jobs, strict=True)), total=len(jobs), unit="shard"))
    table = pa.concat_tables([pq.read_table(p, schema=manifest_schema()) for p in paths])
    manifest = out / "manifest.parquet"
    pq.write_table(table, manifest.with_suffix(".parquet.partial"))
    os.replace(manifest.with_suffix(".parquet.partial"), manifest)
    return manifest
