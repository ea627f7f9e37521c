"""The cache job: encode every eligible sample at the bucket sizes training will read, once.

The VAE encodes batches of same-size images (`batch_size`), channels-last; samples are independent, so
the job also splits across processes (`workers`): each loads its own encoders and writes its own shards
and index part into the same folder; the parts are merged into one index at the end.
"""

import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from qwen_image2.data.cache import CacheReader, CacheWriter, cache_key, fingerprint, merge_part_indexes
from qwen_image2.data.images import IMAGE_ERRORS, failure_reason
from qwen_image2.data.loader import load_training_sample
from qwen_image2.data.records import Sample
from qwen_image2.models.components import Components
from qwen_image2.models.encoding import TrainingSample, encode_for_cache_batch

Job = tuple[Sample, list[tuple[int, int]]]  # a sample and the bucket sizes to cache it at


@dataclass(frozen=True)
class CacheSettings:
    shard_size: int = 256  # samples per shard file
    batch_size: int = 16  # samples per VAE call (same-size images batch together)
    compile: bool = False  # torch.compile the VAE encoder (pays off on a GPU over many batches)


@torch.no_grad()
def cache_jobs(
    jobs: list[Job],
    root: Path,
    load: Callable[[], Components],
    out: Path,
    settings: CacheSettings,
    part: str | None = None,
    threads: int | None = None,
    buckets: list[tuple[int, int]] = (),
) -> Counter:
    """Encode `jobs` into `out` with the encoders `load()` returns, `settings.batch_size` samples at a time;
    one process's share of the job. `buckets` (every size the job caches) goes into the fingerprint."""
    if threads:
        torch.set_num_threads(threads)
    components = load()
    made_by = fingerprint(components, buckets or {size for _, sizes in jobs for size in sizes})
    components.vae.to(memory_format=torch.channels_last)
    if settings.compile:
        components.vae.encoder = torch.compile(components.vae.encoder)
    batch_size = settings.batch_size
    writer = CacheWriter(out, settings.shard_size, part, made_by)
    counts: Counter = Counter()
    pending: list[tuple[str, TrainingSample]] = []

    def flush() -> None:
        encodings = encode_for_cache_batch(components, [loaded for _, loaded in pending], batch_size)
        for (key, _), (encoding, unconditional) in zip(pending, encodings, strict=True):
            writer.add(key, encoding, unconditional)
        counts["cached"] += len(pending)
        pending.clear()

    desc = f"cache {part}" if part else "cache"
    for sample, sizes in tqdm(jobs, desc=desc, disable=part not in (None, "p0"), mininterval=2):
        for width, height in sizes:
            key = cache_key(sample.id, width, height)
            if key in writer:
                counts["already cached"] += 1
                continue
            try:
                pending.append((key, load_training_sample(sample, root, width, height)))
            except IMAGE_ERRORS as err:
                counts[failure_reason(err)] += 1
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    writer.close()
    return counts


def build_cache(
    samples: list[Sample],
    root: Path,
    load: Callable[[], Components],
    sizes: Callable[[Sample], list[tuple[int, int]]],
    out: Path,
    settings: CacheSettings = CacheSettings(),
    workers: int = 1,
    buckets: list[tuple[int, int]] = (),
) -> dict:
    """Encode each sample at each of `sizes(sample)` into `out`; resumable; returns (and writes) a report.

    `load` builds the encoders; with `workers` > 1 it runs in each worker process, so it must pickle
    (a `functools.partial` of a module-level function does).
    """
    jobs = [(sample, sizes(sample)) for sample in samples]
    buckets = sorted(set(buckets) or {size for _, job_sizes in jobs for size in job_sizes})
    merge_part_indexes(out)  # parts a crashed parallel run left behind count as cached
    if workers == 1:
        counts = cache_jobs(jobs, root, load, out, settings, buckets=buckets)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        # spawn: a forked child would inherit the parent's torch threads and any CUDA state
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            parts = [
                pool.submit(
                    cache_jobs, jobs[k::workers], root, load, out, settings, f"p{k}", threads, buckets
                )
                for k in range(workers)
            ]
            counts = sum((part.result() for part in parts), Counter())
        merge_part_indexes(out)
    report = {"samples": len(samples), "entries": len(CacheReader(out).index), **counts}
    (Path(out) / "cache_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
