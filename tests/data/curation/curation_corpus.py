"""Generated test inputs: textured images, the hostile files of issue 6, edit pairs, a small tokenizer."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def textured(seed: int, width: int = 400, height: int = 360) -> Image.Image:
    """A photo-like RGB image: smooth colour fields, shapes and noise (entropy ~7 bits, distinct pHash)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    base = np.asarray(
        Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float64
    )
    base += rng.normal(0, 12, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, width - 40), rng.integers(0, height - 40)
        x1, y1 = x0 + rng.integers(20, width // 2), y0 + rng.integers(20, height // 2)
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


def jpeg_bytes(img: Image.Image, quality: int = 92, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def png_bomb_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG whose header claims width x height; its tiny IDAT would inflate to ~30 GB."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )


def cmyk_jpeg(seed: int) -> bytes:
    return jpeg_bytes(textured(seed).convert("CMYK"))


def gray16_png(seed: int) -> bytes:
    grey = np.asarray(textured(seed).convert("L"), dtype=np.uint16) * 257
    return png_bytes(Image.fromarray(grey))  # uint16 -> mode I;16


def palette_transparent_png(seed: int) -> bytes:
    img = textured(seed).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return png_bytes(img, transparency=0)


def animated_gif(seed: int) -> bytes:
    frames = [textured(seed + k).convert("P", palette=Image.Palette.ADAPTIVE) for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def exif_rotated_jpeg(seed: int, orientation: int = 6) -> bytes:
    """Stored 400x300 (landscape); EXIF says rotate, so it displays 300x400 (portrait)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(textured(seed, 400, 300), exif=exif)


def solid_png(color=(40, 90, 200)) -> bytes:
    return png_bytes(Image.new("RGB", (320, 320), color))


def near_uniform_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.clip(128 + rng.integers(-2, 3, (320, 320, 3)), 0, 255).astype(np.uint8)
    return png_bytes(Image.fromarray(arr))


CAPTION = "a photograph of a quiet harbour with boats at dawn"


# name -> (file bytes, caption or None for no .txt, expected reason or None for passed)
def hostile_corpus(folder: Path) -> dict[str, str | None]:
    """Write the hostile corpus into `folder` and return the expected `reason` per file name."""
    original = textured(1)
    original_jpeg = jpeg_bytes(original)
    files: dict[str, tuple[bytes, str | None, str | None]] = {
        "good_b.jpg": (jpeg_bytes(textured(2)), CAPTION, None),
        "good_c.png": (png_bytes(textured(3)), CAPTION, None),
        "dup_a0_original.jpg": (original_jpeg, CAPTION, None),
        "dup_a1_copy.jpg": (original_jpeg, CAPTION, "duplicate"),
        "dup_a2_reencoded.jpg": (jpeg_bytes(original, quality=55), CAPTION, "duplicate"),
        "dup_a3_resized.png": (
            png_bytes(original.resize((320, 288), Image.Resampling.LANCZOS)),
            CAPTION,
            "duplicate",
        ),
        "truncated.jpg": (jpeg_bytes(textured(4))[:6000], CAPTION, "broken"),
        "truncated_large.jpg": (jpeg_bytes(textured(16, 1600, 1200))[:60000], CAPTION, "broken"),
        "truncated.png": (png_bytes(textured(5))[:9000], CAPTION, "broken"),
        "zero_bytes.jpg": (b"", CAPTION, "broken"),
        "text_named.jpg": (b"this is not an image, only text pretending to be one\n" * 20, CAPTION, "broken"),
        "bomb.png": (png_bomb_header(), CAPTION, "broken"),
        "cmyk.jpg": (cmyk_jpeg(6), CAPTION, None),
        "gray16.png": (gray16_png(7), CAPTION, None),
        "palette_transparent.png": (palette_transparent_png(8), CAPTION, None),
        "animated.gif": (animated_gif(9), CAPTION, None),
        "exif_rotated.jpg": (exif_rotated_jpeg(10), CAPTION, None),
        "small.png": (png_bytes(textured(11, 200, 180)), CAPTION, "resolution"),
        "solid.png": (solid_png(), CAPTION, "entropy"),
        "near_uniform.png": (near_uniform_png(12), CAPTION, "entropy"),
        "caption_empty.jpg": (jpeg_bytes(textured(13)), "", "tokens"),
        "caption_missing.jpg": (jpeg_bytes(textured(14)), None, "tokens"),
        "caption_long.jpg": (
            jpeg_bytes(textured(15)),
            " ".join(["harbour boats dawn light"] * 400),
            "tokens",
        ),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, caption, _) in files.items():
        (folder / name).write_bytes(data)
        if caption is not None:
            (folder / name).with_suffix(".txt").write_text(caption)
    return {name: expected for name, (_, _, expected) in files.items()}


def build_tokenizer(folder: Path) -> Path:
    """A small BPE tokenizer saved as a `PreTrainedTokenizerFast` folder (AutoTokenizer loads it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    sentences = [
        CAPTION,
        "a red poster with the word HELLO",
        "boats in a harbour",
        "light at dawn over water",
    ]
    tokenizer.train_from_iterator(sentences * 10, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<|endoftext|>")
    fast.save_pretrained(folder)
    return folder


TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def plain_corpus(folder: Path, count: int, sizes=((400, 360),), seed: int = 100) -> list[str]:
    """`count` distinct captioned textured images (cycling through `sizes`); returns their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(count):
        width, height = sizes[k % len(sizes)]
        name = f"img_{k:04d}.jpg"
        (folder / name).write_bytes(jpeg_bytes(textured(seed + k, width, height)))
        (folder / name).with_suffix(".txt").write_text(CAPTION)
        names.append(name)
    return names
