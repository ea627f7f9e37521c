"""Image files: the one opener every reader uses, the suffixes we look for, and the errors of a bad file."""

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from qwen_image2.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# What decoding a bad or missing file raises (PIL reports truncation as OSError, bad headers as SyntaxError).
IMAGE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


def open_image(path: Path, mode: str | None = None) -> Image.Image:
    """Decode an image file fully, upright (EXIF orientation applied), optionally converted to `mode`.
    Raises one of IMAGE_ERRORS for a missing or bad file."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        return image.convert(mode) if mode else image.copy()


def read_image(path: Path, mode: str | None = None) -> Image.Image:
    """`open_image` for a file a user named: a UserError with one clear line when it cannot be read."""
    if not Path(path).is_file():
        raise UserError(
            f"image {path} does not exist" if not Path(path).exists() else f"{path} is not a file"
        )
    try:
        return open_image(path, mode)
    except IMAGE_ERRORS as err:
        raise UserError(f"cannot read {path} as an image ({err.__class__.__name__})") from None


def failure_reason(err: Exception) -> str:
    """The reason a row is skipped, as reports count it."""
    return (
        "missing image" if isinstance(err, FileNotFoundError) else f"corrupt image ({err.__class__.__name__})"
    )


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; a UserError if there are none."""
    if not Path(folder).is_dir():
        raise UserError(f"{folder} is not a folder" if Path(folder).exists() else f"{folder} does not exist")
    paths = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths
