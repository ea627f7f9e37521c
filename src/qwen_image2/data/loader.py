"""Batches for one training stage: eligible samples grouped by (task, bucket), drawn by the mixture sampler,
decoded on worker threads one step ahead, resized to the bucket (targets and their condition images alike,
so that a batch has one layout), and split into this rank's slice of the global batch.

A row whose image is missing or corrupt is replaced by the next sample of the same pool and reported with
its reason; the run never stops for it. With a cache, a sample it lacks is encoded from its images and
counted as a cache miss.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from qwen_image2.data.buckets import Bucket, MixtureSampler, bucket_size, nearest_bucket
from qwen_image2.data.cache import CacheError, CacheReader, cache_key
from qwen_image2.data.images import IMAGE_ERRORS, failure_reason, open_image
from qwen_image2.data.records import Sample, load_samples
from qwen_image2.errors import UserError
from qwen_image2.models.encoding import SampleEncoding, TrainingSample


@dataclass
class CachedSample:
    """A sample read from the cache: its encoding, and for edits the empty-instruction encoding."""

    encoding: SampleEncoding
    unconditional: SampleEncoding | None


@dataclass
class LoadedBatch:
    """This rank's part of step `step`'s global batch (all one bucket, one task)."""

    step: int
    task: str
    bucket: Bucket
    samples: list[TrainingSample | CachedSample]
    positions: list[int]  # positions in the global batch, for per-sample randomness shared by all ranks
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sample path, reason)
    cache_misses: int = 0  # samples encoded online because the cache lacks them


def read_manifest(path: str) -> list[Sample]:
    """The samples of a manifest: a curated one's passing rows, or every row of one made by `synth`."""
    import pyarrow.parquet as pq

    if not Path(path).exists():
        raise UserError(f"manifest {path} does not exist; make one with `qwen-image2 curate` or `synth`")
    if not Path(path).is_file():
        raise UserError(f"manifest {path} is not a file")
    try:
        curated = "passed" in pq.read_schema(path).names
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(f"manifest {path} is not a parquet file ({err.__class__.__name__})") from None
    return load_samples(path, passed_only=curated)


def fit_to(image: Image.Image, width: int, height: int) -> Image.Image:
    """Cover-resize and centre-crop to exactly (width, height), in RGBA."""
    image = ImageOps.exif_transpose(image).convert("RGBA")
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)


def image_root(manifest: str, root: str | None = None) -> Path:
    """The folder a manifest's relative image paths are read from: `data.root`, else the manifest's own."""
    return Path(root) if root else Path(manifest).parent


def resolve(path: str, root: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate


def load_training_sample(sample: Sample, root: Path, width: int, height: int) -> TrainingSample:
    """Decode a sample's target and condition images fitted to (width, height); raises on a bad file."""
    image = fit_to(open_image(resolve(sample.path, root)), width, height)
    references = [fit_to(open_image(resolve(path, root)), width, height) for path in sample.conditions]
    return TrainingSample(sample.caption or "", image, references)


def build_buckets(resolution: int, specs) -> list[Bucket]:
    buckets = []
    for spec in specs:
        aspect = tuple(int(p) for p in spec.aspect.split(":"))
        buckets.append(Bucket(*bucket_size(resolution, aspect), spec.batch_size, spec.probability))
    return buckets


class StageLoader:
    """Draws, decodes and slices the batches of one stage."""

    def __init__(
        self, samples, root, stage, seed, rank=0, world=1, grad_accum=1, num_workers=2, exclude=(), cache=None
    ):
        self.samples, self.root = samples, Path(root)
        self.cache: CacheReader | None = cache
        self.rank, self.world = rank, world
        self.buckets = build_buckets(stage.resolution, stage.buckets)
        for bucket in self.buckets:
            if bucket.batch_size % (world * grad_accum):
                raise UserError(
                    f"stage {stage.name}: bucket {bucket.width}x{bucket.height} has batch size {bucket.batch_size}, "
                    f"not divisible by {world} ranks x {grad_accum} micro-batches; change its batch_size"
                )
        excluded = set(exclude)
        pools: dict[tuple[str, int], list[int]] = {}
        for index, sample in enumerate(samples):
            if sample.id in excluded or min(sample.width, sample.height) < stage.min_side:
                continue
            bucket = nearest_bucket(sample.width or 1, sample.height or 1, self.buckets)
            pools.setdefault((sample.task, bucket), []).append(index)
        try:
            self.sampler = MixtureSampler(pools, self.buckets, stage.t2i_ratio, seed)
        except ValueError as err:
            raise UserError(f"stage {stage.name}: {err} (check min_side and the manifest)") from None
        self.renormalised = self.sampler.renormalised  # the T2I:edit ratio had to change (a task has no data)
        self.pool = ThreadPoolExecutor(num_workers) if num_workers else None

    def _load_one(
        self, slot: int, bucket: Bucket, pool: np.ndarray
    ) -> tuple[TrainingSample | CachedSample, list, int]:
        """The sample at `slot` of the pool, or if it cannot be read, the next one that can; with the rows
        skipped on the way and the number of cache misses."""
        skipped, misses = [], 0
        for offset in range(len(pool)):
            sample: Sample = self.samples[int(pool[(slot + offset) % len(pool)])]
            key = cache_key(sample.id, bucket.width, bucket.height)
            if self.cache is not None and key in self.cache:
                try:
                    return CachedSample(*self.cache.get(key)), skipped, misses
                except CacheError:
                    skipped.append((sample.path, "corrupt cache shard"))  # fall back to the images
            elif self.cache is not None:
                misses += 1
            try:
                return load_training_sample(sample, self.root, bucket.width, bucket.height), skipped, misses
            except IMAGE_ERRORS as err:
                skipped.append((sample.path, failure_reason(err)))
        raise UserError(f"every sample of bucket {bucket.width}x{bucket.height} failed to load")

    def _load(self, step: int) -> LoadedBatch:
        task, bucket_index, slots = self.sampler.draw_slots(step)
        bucket = self.buckets[bucket_index]
        pool = self.sampler.pools[(task, bucket_index)]
        share = len(slots) // self.world
        positions = list(range(self.rank * share, (self.rank + 1) * share))
        batch = LoadedBatch(step, task, bucket, [], positions)
        for position in positions:
            sample, skipped, misses = self._load_one(int(slots[position]), bucket, pool)
            batch.samples.append(sample)
            batch.skipped.extend(skipped)
            batch.cache_misses += misses
        return batch

    def prefetch(self, step: int) -> Future | LoadedBatch:
        return self.pool.submit(self._load, step) if self.pool else self._load(step)

    @staticmethod
    def result(pending: Future | LoadedBatch) -> LoadedBatch:
        return pending.result() if isinstance(pending, Future) else pending

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown(wait=False, cancel_futures=True)
