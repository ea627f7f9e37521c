"""The cache job: encode every eligible sample at the bucket sizes training will read, once."""

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from PIL import UnidentifiedImageError
from tqdm import tqdm

from qwen_image2.data.cache import CacheWriter, cache_key
from qwen_image2.data.loader import fit_to, open_image, resolve
from qwen_image2.data.records import Sample
from qwen_image2.diffusion.loss import TrainingSample, encode_sample
from qwen_image2.models.components import Components


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
                image = fit_to(open_image(resolve(sample.path, root)), width, height)
                references = [fit_to(open_image(resolve(p, root)), width, height) for p in sample.conditions]
            except FileNotFoundError:
                counts["missing image"] += 1
                continue
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
                counts[f"corrupt image ({err.__class__.__name__})"] += 1
                continue
            encoding = encode_sample(components, TrainingSample(sample.caption or "", image, references))
            # Caption dropout keeps an edit's images, so its empty-instruction states depend on the sample.
            unconditional = (
                encode_sample(components, TrainingSample("", image, references)) if references else None
            )
            writer.add(key, encoding, unconditional)
            counts["cached"] += 1
    writer.close()
    report = {"samples": len(samples), "entries": len(writer.index), **counts}
    (Path(out) / "cache_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
