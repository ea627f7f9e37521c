"""`broken`: decode every image fully, reject what cannot be decoded, normalise what can.

Rejected: unreadable, zero-byte, non-image and truncated files, and decompression bombs — an image whose
header claims more than `max_pixels` is refused before a single pixel is decoded. Converted, not
rejected: CMYK, 16-bit, palette, transparent (composited on white) and animated (first frame) images.

The decoder also produces what only it can see: the EXIF orientation tag (applied by `orientation`), and
the SHA-256 of the decoded pixels (exact dedup, `duplicate`). Downstream filters see a working copy whose
shorter side is `work_side`: JPEGs are decoded at reduced scale by libjpeg's DCT scaling (`draft`), which
still reads the whole entropy-coded stream, so truncation is still caught.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

EXIF_ORIENTATION_TAG = 0x0112
TRANSPARENT_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


@dataclass
class Decoded:
    """A decoded image: the working copy and what was learned while decoding."""

    image: np.ndarray  # H x W x 3 uint8, shorter side <= work_side, before orientation correction
    width: int  # full size from the header, before orientation correction
    height: int
    orientation: int  # EXIF orientation tag, 1 when absent
    frames: int
    mode: str  # the file's own mode, e.g. "CMYK", "I;16", "P"
    sha256: str  # over the decoded pixels (and orientation), not the file bytes


class DecodeError(Exception):
    """Why an image counts as broken; the message goes to the manifest's `detail`."""


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode.startswith("I;16") or mode in {"I", "F"}:
        # Pillow's own convert("L") clips 16-bit values at 255 instead of scaling them.
        arr = np.asarray(img)
        if mode.startswith("I;16"):
            arr8 = (arr.astype(np.uint32) >> 8).astype(np.uint8)
        else:
            top = float(arr.max()) if arr.size else 0.0
            scale = 255.0 / top if top > 255 else 1.0
            arr8 = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if (mode == "P" and "transparency" in img.info) or mode in TRANSPARENT_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if mode != "RGB" else img


def decode_image(data: bytes | None, max_pixels: int, work_side: int) -> Decoded:
    """Decode `data` or raise `DecodeError` naming why it is broken."""
    if not data:
        raise DecodeError("empty file")
    # Pillow refuses at open above twice its own global cap; make that cap ours for this call, so a
    # configured cap above Pillow's default is honoured (workers decode on one thread).
    previous_cap, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise DecodeError(f"invalid size {width}x{height}")
            if width * height > max_pixels:
                raise DecodeError(f"decompression bomb: header claims {width}x{height} > {max_pixels} pixels")
            mode = img.mode
            frames = int(getattr(img, "n_frames", 1))
            orientation = int(img.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
            shorter = min(width, height)
            if img.format == "JPEG" and shorter > work_side:
                scale = work_side / shorter
                img.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
            img.load()
            rgb = _to_rgb(img)
    except DecodeError:
        raise
    except UnidentifiedImageError:
        raise DecodeError("not an image (format not recognised)") from None
    except Image.DecompressionBombError as err:
        raise DecodeError(f"decompression bomb: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as err:
        raise DecodeError(f"cannot decode: {err}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_cap
    pixels = np.asarray(rgb)
    digest = hashlib.sha256(f"{pixels.shape}{orientation}".encode())
    digest.update(np.ascontiguousarray(pixels).data)
    if min(rgb.size) > work_side:
        scale = work_side / min(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        pixels = np.asarray(rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    if orientation not in range(1, 9):
        orientation = 1
    return Decoded(pixels, width, height, orientation, frames, mode, digest.hexdigest())


class BrokenFilter:
    """Decode the target and condition images of each row.

    Reads `data`, `read_error`, `condition_data`, `condition_errors`; adds `image` (working copy or
    None), `condition_images`, `condition_sizes`, `condition_orientations`, `orig_width`, `orig_height`,
    `exif_orientation`, `frames`, `mode`, `sha256`, `broken_keep` and `broken_detail`.
    """

    name = "broken"

    def __init__(self, max_pixels: int = 100_000_000, work_side: int = 384) -> None:
        self.max_pixels = max_pixels
        self.work_side = work_side

    def _decode_one(self, data: bytes | None, read_error: str | None) -> Decoded:
        if read_error:
            raise DecodeError(read_error)
        return decode_image(data, self.max_pixels, self.work_side)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["data"])
        out = {
            "image": np.empty(n, dtype=object),
            "condition_images": np.empty(n, dtype=object),
            "condition_orientations": np.empty(n, dtype=object),
            "condition_sizes": np.empty(n, dtype=object),
            "orig_width": np.zeros(n, dtype=np.int64),
            "orig_height": np.zeros(n, dtype=np.int64),
            "exif_orientation": np.ones(n, dtype=np.int64),
            "frames": np.zeros(n, dtype=np.int64),
            "mode": np.full(n, None, dtype=object),
            "sha256": np.full(n, None, dtype=object),
            "broken_keep": np.zeros(n, dtype=bool),
            "broken_detail": np.full(n, None, dtype=object),
        }
        for i in range(n):
            try:
                target = self._decode_one(batch["data"][i], batch["read_error"][i])
                conditions = []
                for j, (cdata, cerr) in enumerate(
                    zip(batch["condition_data"][i], batch["condition_errors"][i], strict=True)
                ):
                    try:
                        conditions.append(self._decode_one(cdata, cerr))
                    except DecodeError as err:
                        raise DecodeError(f"condition {j}: {err}") from None
            except DecodeError as err:
                out["broken_detail"][i] = str(err)
                out["condition_images"][i] = []
                out["condition_orientations"][i] = []
                out["condition_sizes"][i] = []
                continue
            out["image"][i] = target.image
            out["condition_images"][i] = [c.image for c in conditions]
            out["condition_orientations"][i] = [c.orientation for c in conditions]
            out["condition_sizes"][i] = [(c.width, c.height) for c in conditions]
            out["orig_width"][i], out["orig_height"][i] = target.width, target.height
            out["exif_orientation"][i] = target.orientation
            out["frames"][i], out["mode"][i] = target.frames, target.mode
            # An edit pair is an exact duplicate only if every image in it is.
            out["sha256"][i] = (
                hashlib.sha256("".join([target.sha256] + [c.sha256 for c in conditions]).encode()).hexdigest()
                if conditions
                else target.sha256
            )
            out["broken_keep"][i] = True
        return {**batch, **out}
