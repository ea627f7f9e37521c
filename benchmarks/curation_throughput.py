"""Curation throughput on a generated corpus: the pipeline's CPU filters vs a plain PIL loop.

    .venv/bin/python benchmarks/curation_throughput.py --count 10000 --out outputs/bench-curation

Corpus: `count` captioned JPEGs of 0.5-1.9 MP (photo-like texture; 5% re-encoded near-copies, 1% each of
broken, too-small and flat images), generated once into OUT/corpus and reused.
Baseline: one process, for each file: PIL full decode with a pixel cap, EXIF transpose, RGB, shorter-side
check, SHA-256 of pixels, `imagehash.phash`, grey-histogram entropy, caption tokens; then exact dedup by
dict and near dedup by comparing each pHash with every kept one (numpy popcount).
Pipeline: `qwen_image2.data.curation.curate` with broken, resolution, duplicate, orientation, entropy,
tokens, on Ray with 1 and 2 workers (draft JPEG decoding, batched pHash, FAISS multi-index dedup), and
in-process (`workers=0`, no Ray) to separate the per-image savings from the parallelism.
Prints one JSON object naming the machine.

Measured 2026-11-27, 2-core AMD EPYC VM (Python 3.11.7), 10,000 images (2.7 GB), one run, shared machine
(1-min load average 4-6 from other jobs during the runs, so absolute numbers are pessimistic):
baseline 35.6 images/s; pipeline in-process 88.0 (2.47x, first pass over a cold page cache), Ray 1 worker
102.1 (2.87x), Ray 2 workers 118.5 (3.33x); scaling 1 -> 2 workers 1.16x (the second core was busy with
other work). Both paths passed the same 9,200 images.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

SIZES = ((800, 600), (1024, 768), (1280, 960), (1600, 1200), (960, 1280))
CAPTION_WORDS = [
    "a",
    "photo",
    "of",
    "boats",
    "harbour",
    "dawn",
    "light",
    "red",
    "poster",
    "with",
    "the",
    "word",
    "hello",
    "city",
    "street",
    "night",
]
FILTERS = ("broken", "resolution", "duplicate", "orientation", "entropy", "tokens")


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = SIZES[seed % len(SIZES)]
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width - 50)), int(rng.integers(0, height - 50))
        box = (x0, y0, x0 + int(rng.integers(30, width // 2)), y0 + int(rng.integers(30, height // 2)))
        draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    noise = rng.integers(-12, 13, (64, 64, 3), dtype=np.int16)
    pixels = (
        np.asarray(img, dtype=np.int16)
        + np.tile(noise, (height // 64 + 1, width // 64 + 1, 1))[:height, :width]
    )
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write_one(args: tuple[Path, int]) -> None:
    folder, k = args
    path = folder / f"{k // 1000:03d}" / f"img_{k:06d}.jpg"
    roll = k % 100
    if 10 <= roll < 15:  # a near-copy of the (plain) image 10 places before, re-encoded at lower quality
        _image(k - 10).save(path, "JPEG", quality=60)
    elif roll == 5:
        buf = io.BytesIO()
        _image(k).save(buf, "JPEG", quality=90)
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    elif roll == 6:
        _image(k).resize((200, 150)).save(path, "JPEG", quality=90)
    elif roll == 7:
        Image.new("RGB", (1024, 768), (30 + k % 200, 90, 120)).save(path, "JPEG", quality=90)
    else:
        _image(k).save(path, "JPEG", quality=90)
    rng = np.random.default_rng(k)
    path.with_suffix(".txt").write_text(" ".join(rng.choice(CAPTION_WORDS, size=int(rng.integers(4, 30)))))


def build_corpus(folder: Path, count: int) -> Path:
    done = folder / ".complete"
    if done.exists() and int(done.read_text()) == count:
        return folder
    for k in range(0, count, 1000):
        (folder / f"{k // 1000:03d}").mkdir(parents=True, exist_ok=True)
    with multiprocessing.Pool(os.cpu_count()) as pool:
        pool.map(_write_one, [(folder, k) for k in range(count)], chunksize=64)
    done.write_text(str(count))
    return folder


def build_tokenizer(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if (folder / "tokenizer.json").exists():
        return folder
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator([" ".join(CAPTION_WORDS)] * 20, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>").save_pretrained(folder)
    return folder


def baseline(files: list[Path], tokenizer_dir: Path, min_side: int = 256, distance: int = 6) -> dict:
    """The straightforward single-process loop doing the same checks."""
    import imagehash
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    start = time.perf_counter()
    passed, seen_sha, kept_hashes = 0, set(), []
    for path in files:
        caption = path.with_suffix(".txt").read_text()
        try:
            img = Image.open(path)
            if img.width * img.height > 100_000_000:
                continue
            img.load()
            img = ImageOps.exif_transpose(img).convert("RGB")
        except Exception:
            continue
        if min(img.size) < min_side:
            continue
        digest = hashlib.sha256(img.tobytes()).hexdigest()
        phash = int(str(imagehash.phash(img)), 16)
        counts = np.bincount(np.asarray(img.convert("L")).ravel(), minlength=256)
        p = counts[counts > 0] / counts.sum()
        entropy = float(-(p * np.log2(p)).sum())
        tokens = len(tokenizer(caption, add_special_tokens=False)["input_ids"])
        if digest in seen_sha:
            continue
        seen_sha.add(digest)
        if kept_hashes:
            xor = np.bitwise_xor(np.array(kept_hashes, dtype=np.uint64), np.uint64(phash))
            if (np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(1) <= distance).any():
                continue
        kept_hashes.append(phash)
        if entropy >= 3.0 and 1 <= tokens <= 1024:
            passed += 1
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "images_per_s": round(len(files) / seconds, 1),
        "passed": passed,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def pipeline(corpus: Path, out: Path, tokenizer_dir: Path, workers: int, shard_size: int) -> dict:
    from qwen_image2.data.curation import RunSettings, curate

    settings = RunSettings(filters=FILTERS, tokenizer=str(tokenizer_dir))
    start = time.perf_counter()
    result = curate(
        [str(corpus)], out, settings=settings, workers=workers, shard_size=shard_size, progress=False
    )
    wall = time.perf_counter() - start
    tp = result.report["throughput"]
    return {
        "workers": workers,
        "engine": "ray" if workers else "in-process",
        "processing_seconds": round(tp["seconds"], 2),
        "images_per_s": round(tp["images_per_s"], 1),
        "wall_seconds_with_merge_and_report": round(wall, 2),
        "passed": result.report["rows_passed"],
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # > cores: other work shared the machine
        "rejected_by": {k: v for k, v in result.report["rejected_by"].items() if v},
    }


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-curation"))
    parser.add_argument("--workers", default="0,1,2", help="pipeline worker counts to run (0: in-process)")
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--baseline-first", action="store_true", help="time the baseline before the pipeline")
    args = parser.parse_args()

    corpus = build_corpus(args.out / "corpus", args.count)
    tokenizer_dir = build_tokenizer(args.out / "tokenizer")
    files = sorted(corpus.rglob("*.jpg"))
    print(
        f"corpus: {len(files)} images, {sum(f.stat().st_size for f in files) / 2**20:.0f} MiB",
        file=sys.stderr,
    )

    base = baseline(files, tokenizer_dir) if args.baseline_first else None
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    runs = []
    for workers in [int(w) for w in args.workers.split(",")]:
        out = args.out / f"run-{workers}w-{time.strftime('%Y%m%d-%H%M%S')}"
        runs.append(pipeline(corpus, out, tokenizer_dir, workers, args.shard_size))
        print(json.dumps(runs[-1]), file=sys.stderr)
    ray.shutdown()
    base = base or baseline(files, tokenizer_dir)
    print(json.dumps({"baseline": base}), file=sys.stderr)
    by_workers = {r["workers"]: r for r in runs}
    result = {
        "benchmark": "curation_throughput",
        "machine": machine(),
        "corpus": {
            "images": len(files),
            "megapixels": "0.48-1.92",
            "format": "JPEG q90 (5% q60 near-copies)",
        },
        "filters": list(FILTERS),
        "baseline_single_process_pil": base,
        "pipeline": runs,
        "speedup_vs_baseline": {
            f"{w}w": round(r["images_per_s"] / base["images_per_s"], 2) for w, r in by_workers.items()
        },
    }
    if 1 in by_workers and 2 in by_workers:
        result["ray_scaling_1_to_2_workers"] = round(
            by_workers[2]["images_per_s"] / by_workers[1]["images_per_s"], 2
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
