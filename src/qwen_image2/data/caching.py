"""The cache job: encode every eligible sample at the bucket sizes training will read, once."""

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from qwen_image2.data.cache import CacheWriter, cache_key
from qwen_image2.data.loader import IMAGE_ERRORS, failure_reason, load_training_sample
from qwen_image2.data.records import Sample
from qwen_image2.diffusion.loss import encode_sample
from qwen_image2.models.components import Components
from qwen_image2.models.conditioning import encode_conditions


def build_cache(
    samples: list[Sample],
    root: Path,
    components: Components,
    sizes: Callable[[Sample], list[tuple[int, int]]],
    out: Path,
    shard_size: int = 256,
) -> dict:
    """Encode each sample at each of `sizes(sample)` into `out`; resumable; returns (and writes) a report."""
    writer = CacheWriter(out, shard_size)
    counts: Counter = Counter()
    for sample in tqdm(samples, desc="cache"):
        for width, height in sizes(sample):
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
    report = {"samples": len(samples), "entries": len(writer.index), **counts}
    (Path(out) / "cache_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
