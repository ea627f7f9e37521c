"""The cache job: encode every eligible sample at the bucket sizes training will read, once.

Samples are independent, so the job splits across processes (`workers`): each loads its own encoders and
writes its own shards and index part into the same folder; the parts are merged into one index at the end.
"""

import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from qwen_image2.data.cache import CacheReader, CacheWriter, cache_key, merge_part_indexes
from qwen_image2.data.loader import IMAGE_ERRORS, failure_reason, load_training_sample
from qwen_image2.data.records import Sample
from qwen_image2.diffusion.loss import encode_sample
from qwen_image2.models.components import Components
from qwen_image2.models.conditioning import encode_conditions

Job = tuple[Sample, list[tuple[int, int]]]  # a sample and the bucket sizes to cache it at


def cache_jobs(
    jobs: list[Job],
    root: Path,
    load: Callable[[], Components],
    out: Path,
    shard_size: int,
    part: str | None = None,
    threads: int | None = None,
) -> Counter:
    """Encode `jobs` into `out` with the encoders `load()` returns; one process's share of the job."""
    if threads:
        torch.set_num_threads(threads)
    components = load()
    writer = CacheWriter(out, shard_size, part)
    counts: Counter = Counter()
    desc = f"cache {part}" if part else "cache"
    for sample, sizes in tqdm(jobs, desc=desc, disable=part not in (None, "p0"), mininterval=2):
        for width, height in sizes:
            key = cache_key(sample.id, width, height)
            if key in writer:
                counts["already cached"] += 1
                continue
            try:
                loaded = load_training_sample(sample, root, width, height)
            except IMAGE_ERRORS as err:
                counts[failure_reason(err)] += 1
                continue
            encoding = encode_sample(components, loaded)
            unconditional = None
            if loaded.condition_images:
                # Caption dropout keeps an edit's images, so its empty-instruction states depend on the sample;
                # the latents do not change, so only the text side is encoded again.
                empty = encode_conditions(
                    components.text_encoder, components.processor, [""], loaded.condition_images
                )
                unconditional = replace(encoding, embeds=empty.embeds[0], slots=empty.image_pad_mask[0])
            writer.add(key, encoding, unconditional)
            counts["cached"] += 1
    writer.close()
    return counts


def build_cache(
    samples: list[Sample],
    root: Path,
    load: Callable[[], Components],
    sizes: Callable[[Sample], list[tuple[int, int]]],
    out: Path,
    shard_size: int = 256,
    workers: int = 1,
) -> dict:
    """Encode each sample at each of `sizes(sample)` into `out`; resumable; returns (and writes) a report.

    `load` builds the encoders; with `workers` > 1 it runs in each worker process, so it must pickle
    (a `functools.partial` of a module-level function does).
    """
    jobs = [(sample, sizes(sample)) for sample in samples]
    merge_part_indexes(out)  # parts a crashed parallel run left behind count as cached
    if workers == 1:
        counts = cache_jobs(jobs, root, load, out, shard_size)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        # spawn: a forked child would inherit the parent's torch threads and any CUDA state
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            parts = [
                pool.submit(cache_jobs, jobs[k::workers], root, load, out, shard_size, f"p{k}", threads)
                for k in range(workers)
            ]
            counts = sum((part.result() for part in parts), Counter())
        merge_part_indexes(out)
    report = {"samples": len(samples), "entries": len(CacheReader(out).index), **counts}
    (Path(out) / "cache_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
