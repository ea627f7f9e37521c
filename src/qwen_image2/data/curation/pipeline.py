"""`curate` and `rethreshold`: the library functions behind `qwen-image2 curate`.

OUT/run.json          what changes the scores (filters, models, decode size): a resume must match it
OUT/parts/<id>.parquet one per finished shard, written atomically: the resume points
OUT/manifest.parquet  every input row, in source order: record fields, scores, decisions
OUT/report.json/.png  counts per filter, score histograms, throughput
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qwen_image2.data.curation.config import RunSettings, StageThresholds, stage_thresholds
from qwen_image2.data.curation.decide import clip_embeddings, decide
from qwen_image2.data.curation.manifest import DECISION_FIELDS, read_metadata, read_part, write_atomic
from qwen_image2.data.curation.report import write_report
from qwen_image2.data.curation.sources import list_shards
from qwen_image2.errors import UserError


@dataclass
class CurationResult:
    manifest: Path
    report: dict


def _check_run_file(out: Path, settings: RunSettings) -> None:
    """A resume must use the settings the folder's run was started with."""
    run_file = out / "run.json"
    current = json.loads(settings.model_dump_json())
    if run_file.exists():
        previous = json.loads(run_file.read_text())
        if previous != current:
            changed = sorted(k for k in current if previous.get(k) != current.get(k))
            raise UserError(
                f"{out} holds a run with other settings ({', '.join(changed)} differ); resume with the same "
                "settings, use another --out, or apply new thresholds with --rethreshold"
            )


def _write_run_file(out: Path, settings: RunSettings) -> None:
    """Written only once the settings are accepted (models load), so a rejected run leaves nothing."""
    run_file = out / "run.json"
    if run_file.exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = run_file.with_name(".run.json.tmp")
    tmp.write_text(settings.model_dump_json(indent=2))
    os.replace(tmp, run_file)


def _finished(part: Path) -> bool:
    """A shard is done once its part exists, unless a row of it failed to read transiently: then the
    whole shard is redone, so the retried rows take their place in source order."""
    if not part.exists():
        return False
    if "retryable" not in pq.read_schema(part).names:  # written before reads were retried: final
        return True
    retryable = pq.read_table(part, columns=["retryable"]).column("retryable")
    return not pc.any(retryable).as_py()


def check_models(settings: RunSettings) -> None:
    """Load every selected model once, here, so a missing one stops the run before any work starts;
    the settings a user most often forgets are checked first, before anything slow loads."""
    from qwen_image2.data.curation.clip import check_clip_settings
    from qwen_image2.data.curation.tokens import check_tokenizer_settings
    from qwen_image2.data.curation.worker import build_filters

    if "tokens" in settings.filters:
        check_tokenizer_settings(settings.tokenizer)
    if "clip" in settings.filters:
        check_clip_settings(settings.clip_model, settings.clip_weights)
    build_filters(settings)


def _finish(
    table: pa.Table,
    out: Path,
    stage: str,
    thresholds: StageThresholds,
    filters: tuple[str, ...],
    throughput: dict,
) -> CurationResult:
    # Embeddings stay in Arrow: pandas would hold each row's vector as a Python object.
    df = table.drop_columns(["clip_embedding"]).to_pandas()
    semantic = thresholds.duplicate.semantic_similarity is not None
    decisions = decide(df, thresholds, filters, clip_embeddings(table) if semantic else None)
    manifest = table
    for field in DECISION_FIELDS:
        manifest = manifest.append_column(field, pa.Array.from_pandas(decisions[field.name], type=field.type))
    decided = pd.concat([df, decisions], axis=1)
    meta = {"stage": stage, "filters": list(filters), "thresholds": thresholds.model_dump()}
    write_atomic(manifest, out / "manifest.parquet", metadata=meta)
    report = write_report(decided, out, stage, filters, thresholds, throughput)
    return CurationResult(out / "manifest.parquet", report)


def curate(
    sources: list[str],
    out: str | Path,
    stage: str = "s1-256p",
    settings: RunSettings | None = None,
    stages_file: str | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    shard_size: int = 1000,
    batch_size: int = 32,
    progress: bool = True,
) -> CurationResult:
    """Curate `sources` into `out`; resumable: finished shards (their part files) are not redone,
    except those holding a row whose read failed transiently (`retryable`)."""
    from tqdm import tqdm

    from qwen_image2.data.curation.runner import run_shards

    settings = settings or RunSettings()
    thresholds = stage_thresholds(stage, stages_file)
    out = Path(out)
    existing = out / "manifest.parquet"
    decided_for = read_metadata(existing).get("stage") if existing.exists() else stage
    if decided_for != stage:
        raise UserError(
            f"{existing} was decided for stage {decided_for!r}; use --rethreshold "
            f"{existing} --stage {stage}, or another --out"
        )
    shards = list_shards(sources, shard_size)
    _check_run_file(out, settings)
    parts = out / "parts"
    todo = [s for s in shards if not _finished(parts / f"{s.id}.parquet")]
    if todo:
        check_models(settings)
    _write_run_file(out, settings)
    parts.mkdir(exist_ok=True)
    workers = (os.cpu_count() or 1) if workers is None else workers
    bar = tqdm(
        total=len(shards), initial=len(shards) - len(todo), unit="shard", disable=not progress, desc="curate"
    )
    processed = {"rows": 0}

    def on_done(shard_id: str, rows: int, seconds: float) -> None:
        processed["rows"] += rows
        bar.update(1)
        bar.set_postfix(images=processed["rows"])

    start = time.perf_counter()
    used = run_shards(todo, settings.model_dump_json(), str(parts), workers, batch_size, on_done, ray_address)
    seconds = time.perf_counter() - start
    bar.close()
    table = pa.concat_tables([read_part(parts / f"{s.id}.parquet") for s in shards])
    throughput = {
        "seconds": seconds,
        "rows_processed": processed["rows"],
        "images_per_s": processed["rows"] / seconds if seconds > 0 and processed["rows"] else 0.0,
        "workers": used,
        "shards_processed": len(todo),
        "shards_skipped": len(shards) - len(todo),
    }
    return _finish(table, out, stage, thresholds, settings.filters, throughput)


def rethreshold(
    manifest: str | Path, stage: str, out: str | Path | None = None, stages_file: str | None = None
) -> CurationResult:
    """Re-decide `passed`/`reason` of an existing manifest for `stage`, from its stored scores alone."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise UserError(f"--rethreshold {manifest}: no such manifest")
    meta = read_metadata(manifest)
    if "filters" not in meta:
        raise UserError(f"--rethreshold {manifest}: not a curation manifest (no curation metadata)")
    thresholds = stage_thresholds(stage, stages_file)
    out = Path(out) if out else manifest.parent / f"stage-{stage}"
    if out.resolve() == manifest.parent.resolve():
        raise UserError(f"--out {out} holds the manifest being re-thresholded; choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    table = read_part(manifest)
    throughput = {"rethreshold_of": str(manifest), "rows_processed": 0, "workers": 0}
    return _finish(table, out, stage, thresholds, tuple(meta["filters"]), throughput)
