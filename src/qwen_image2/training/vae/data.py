"""VAE training images: a weighted mixture of sources, drawn into resolution buckets, RGB or RGBA.

A batch is a pure function of (seed, step): the step picks a source by its mixture weight and a bucket by
its probability, then images from that source, each random-cropped to the bucket. Resuming at step k
therefore draws exactly what an uninterrupted run would have drawn (no sampler state to checkpoint).

Sources: `folder` (every image under a path), `manifest` (a parquet/jsonl with a `path` column, or a text
file of paths), and `text` (text-rich scenes from the project's synthetic renderer, `data/synthetic`: posters,
signs, labels, slides and paragraphs in EN and ZH, or the tiny model's word posters — the Qwen-Image-VAE-2.0
recipe's synthetic text stage, reference/vae_eval_perf.md §2.3).
"""

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qwen_image2.data.images import IMAGE_ERRORS, IMAGE_SUFFIXES, failure_reason, open_image
from qwen_image2.data.synthetic.layouts import build_scene
from qwen_image2.data.synthetic.scene import render_scene
from qwen_image2.data.synthetic.writer import STYLES
from qwen_image2.errors import UserError
from qwen_image2.seeding import Stream, step_rng
from qwen_image2.training.vae.config import DataConfig, SourceConfig


def list_source_images(source: SourceConfig) -> list[str]:
    """The image paths of a folder or manifest source, sorted; a UserError when there are none."""
    path = Path(source.path)
    if source.kind == "folder":
        if not path.is_dir():
            raise UserError(f"data source folder {path} does not exist")
        paths = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        paths = [
            str(path.parent / p) for p in pq.read_table(path, columns=["path"]).column("path").to_pylist()
        ]
    elif path.suffix == ".jsonl":
        paths = [
            str(path.parent / json.loads(line)["path"]) for line in path.read_text().splitlines() if line
        ]
    else:
        paths = [str(path.parent / line.strip()) for line in path.read_text().splitlines() if line.strip()]
    if not paths:
        raise UserError(f"data source {path} holds no images")
    return paths


def render_text_image(rng: np.random.Generator, width: int, height: int, source: SourceConfig, rgba: bool):
    """A text-rich image from the synthetic renderer (`qwen-image2 synth`): a scene of the source's style
    and tier, ZH with probability `zh_share`, random-cropped to (width, height)."""
    lang = "zh" if rng.random() < source.zh_share else "en"
    scene = build_scene(rng, source.tier, lang, STYLES[source.style])
    image = random_crop(render_scene(scene), width, height, rng)
    if rgba:  # a transparent surround half the time: text layers are where RGBA matters
        alpha = np.full((height, width), 255, np.uint8)
        if rng.random() < 0.5:
            alpha[:] = 0
            top, left = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
            alpha[top : top + height // 2, left : left + width // 2] = 255
        image.putalpha(Image.fromarray(alpha))
    return image


def random_crop(image: Image.Image, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Scale between 'just covers the bucket' and native size (never below cover), crop at a random place."""
    cover = max(width / image.width, height / image.height)
    scale = rng.uniform(cover, max(cover, 1.0))
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = int(rng.integers(0, size[0] - width + 1)), int(rng.integers(0, size[1] - height + 1))
    return image.crop((left, top, left + width, top + height))


def to_pixels(image: Image.Image, channels: int) -> torch.Tensor:
    """PIL image -> float (C, H, W) in [-1, 1]; C is 3 (RGB) or 4 (RGBA; opaque where the file has none)."""
    array = np.asarray(image.convert("RGBA" if channels == 4 else "RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1


MAX_DRAWS = 32  # redraws after unreadable files before a source is called broken


class VAEData:
    """Batches for step k, drawn from the configured mixture; `holdout` fixed images for validation."""

    def __init__(self, config: DataConfig, channels: int, seed: int):
        self.config, self.channels, self.seed = config, channels, seed
        images = {s.name: list_source_images(s) for s in config.sources if s.kind != "text"}
        for name, paths in images.items():
            if config.holdout and len(paths) <= config.holdout:
                raise UserError(
                    f"data source {name} has {len(paths)} images, not more than data.holdout={config.holdout}: "
                    "nothing would be left to train on but the held-out images; add images or lower data.holdout"
                )
        self.held_out = {name: paths[: config.holdout] for name, paths in images.items()}
        self.train_images = {name: paths[config.holdout :] for name, paths in images.items()}
        held = {str(Path(p).resolve()) for paths in self.held_out.values() for p in paths}
        shared = held & {str(Path(p).resolve()) for paths in self.train_images.values() for p in paths}
        if shared:
            raise UserError(
                f"{len(shared)} held-out images are also training images of another source "
                f"(e.g. {min(shared)}): give the sources disjoint images"
            )
        self.pool = ThreadPoolExecutor(config.num_workers) if config.num_workers else None
        # Unreadable files are skipped and counted by reason (the run's report), as the DiT loader does.
        self.skipped: Counter = Counter()
        self._skipped_lock = threading.Lock()

    def batch(self, step: int, mixture: dict[str, float] | None = None, buckets=None) -> torch.Tensor:
        """Pixels (B, C, H, W) of step `step`; `mixture` and `buckets` override the data config (a phase's)."""
        rng = step_rng(self.seed, step, Stream.BATCH)
        sources = self.config.sources
        weights = np.array([(mixture or {}).get(s.name, s.weight) for s in sources], dtype=np.float64)
        source = sources[rng.choice(len(sources), p=weights / weights.sum())]
        buckets = buckets or self.config.buckets
        probabilities = np.array([b.probability for b in buckets], dtype=np.float64)
        bucket = buckets[rng.choice(len(buckets), p=probabilities / probabilities.sum())]
        seeds = rng.integers(0, 2**63 - 1, bucket.batch_size)
        jobs = [(source, bucket.width, bucket.height, int(s)) for s in seeds]
        images = (self.pool.map if self.pool else map)(lambda job: self._image(*job), jobs)
        return torch.stack(list(images))

    def _image(self, source: SourceConfig, width: int, height: int, seed: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        if source.kind == "text":
            return to_pixels(render_text_image(rng, width, height, source, self.channels == 4), self.channels)
        paths = self.train_images[source.name]
        for _ in range(MAX_DRAWS):
            image = self._open(Path(paths[int(rng.integers(len(paths)))]))
            if image is not None:
                return to_pixels(random_crop(image, width, height, rng), self.channels)
        raise UserError(
            f"data source {source.name}: {MAX_DRAWS} images drawn in a row could not be read "
            f"({dict(self.skipped)}); check its files"
        )

    def _open(self, path: Path) -> Image.Image | None:
        """The image, or None (counted by reason) when the file is missing or cannot be decoded."""
        try:
            return open_image(path)
        except IMAGE_ERRORS as err:
            with self._skipped_lock:
                self.skipped[failure_reason(err)] += 1
            return None

    def holdout(self, size: int) -> torch.Tensor:
        """Fixed validation pixels (N, C, size, size): held-out files, plus text images from a separate seed.
        `holdout_sources` names each image's source (validation reports PSNR per source)."""
        rng = np.random.default_rng([self.seed, 2**31])  # a stream no training step draws from
        images, names = [], []
        for source in self.config.sources:
            if source.kind == "text":
                images += [
                    to_pixels(render_text_image(rng, size, size, source, self.channels == 4), self.channels)
                    for _ in range(self.config.holdout)
                ]
                names += [source.name] * self.config.holdout
            else:
                for path in self.held_out[source.name]:
                    image = self._open(Path(path))
                    if image is None:
                        continue
                    images.append(to_pixels(random_crop(image, size, size, rng), self.channels))
                    names.append(source.name)
        if not images:
            raise UserError("data.holdout is 0 or no source has images: nothing to validate on")
        self.holdout_sources = names
        return torch.stack(images)
