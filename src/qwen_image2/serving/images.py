"""Images in and out of the API: uploads read with a pixel cap before decoding, outputs encoded as asked.

PNG output is Pillow's default encoding of the RGBA image, the very bytes `qwen-image2 generate` writes.
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from qwen_image2.models.conditioning import encoder_view
from qwen_image2.serving.errors import ApiError

UPLOAD_FORMATS = {"PNG", "JPEG", "WEBP"}
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def read_upload(data: bytes, param: str, max_pixels: int) -> Image.Image:
    """An uploaded PNG, JPEG or WebP, upright (EXIF), decoded only after its header's size is checked."""
    if not data:
        raise ApiError(400, f"'{param}' is an empty file.", param=param, code="invalid_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in UPLOAD_FORMATS:
                raise ApiError(
                    415,
                    f"'{param}' is {image.format or 'an unknown format'}; send PNG, JPEG or WebP.",
                    param=param,
                    code="unsupported_image_format",
                )
            width, height = image.size
            if width * height > max_pixels:
                raise ApiError(
                    413,
                    f"'{param}' is {width}x{height} pixels; this server reads at most {max_pixels:,}.",
                    param=param,
                    code="image_too_large",
                )
            image.load()
            return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApiError(
            413, f"'{param}' declares too many pixels to decode.", param=param, code="image_too_large"
        ) from None
    except UnidentifiedImageError:
        raise ApiError(
            415,
            f"'{param}' is not an image; send PNG, JPEG or WebP.",
            param=param,
            code="unsupported_image_format",
        ) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ApiError(
            400, f"'{param}' cannot be decoded ({err}).", param=param, code="invalid_image"
        ) from None


def keep_outside_mask(generated: Image.Image, source: Image.Image, mask: Image.Image) -> Image.Image:
    """OpenAI's mask: its fully transparent pixels are the region to change; elsewhere the source stays.
    Source and mask are resized to the generated image first."""
    size = generated.size
    mode = generated.mode
    source = source.convert(mode).resize(size, Image.Resampling.LANCZOS)
    alpha = np.asarray(mask.convert("RGBA").resize(size, Image.Resampling.NEAREST))[..., 3]
    changed = (alpha == 0)[..., None]
    pixels = np.where(changed, np.asarray(generated.convert(mode)), np.asarray(source))
    return Image.fromarray(pixels, mode)


def encode_image(image: Image.Image, output_format: str, background: str, compression: int) -> bytes:
    """PNG, JPEG or WebP bytes. `background`: "opaque" lays the image over white; "transparent" and "auto"
    keep alpha where the format holds it (JPEG never does)."""
    if background == "opaque" or output_format == "jpeg":
        image = encoder_view(image)  # alpha laid over white
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG")
    elif output_format == "jpeg":
        image.save(buffer, format="JPEG", quality=max(1, compression))
    else:
        image.save(buffer, format="WEBP", quality=compression, lossless=compression == 100)
    return buffer.getvalue()
