"""The chat an enhancer is sent: the 2.1 contract as a system prompt, then the user's request.

T2I: the prompt is the user message, as in 2.1. Edit: the source images come first, named <image1>..N
in order (2.1's convention), then the instruction. A vision-language backend gets the images as base64
PNG data URLs, capped at 1024x1024 px as 2.1 caps them; a text-only backend gets the text Tesseract reads
in each image instead, so it can still restate (or change) the words already on it.
"""

import base64
import io

from PIL import Image

from qwen_image2.enhancer.backend import Task
from qwen_image2.enhancer.canvas import SIZES
from qwen_image2.metrics.ocr import read_text

MAX_IMAGE_PIXELS = 1024 * 1024
_RATIOS = ", ".join(SIZES)

SYSTEM_PROMPTS: dict[Task, str] = {
    "t2i": (
        "You rewrite a user's request for a text-to-image model into one detailed prompt: the subject, "
        "its attributes, the layout, the style, the lighting, and any text to render. Keep the user's "
        "language (English stays English, Chinese stays Chinese). Copy every quoted text exactly as "
        "written, inside double quotes. Do not add text the user did not ask for.\n"
        'Answer with one JSON object and nothing else: {"rewritten_prompt": "...", "aspect_ratio": "W:H"}, '
        f"where aspect_ratio is one of {_RATIOS}."
    ),
    "edit": (
        "You rewrite a user's instruction for an image-editing model into one precise instruction: what "
        "to change in the source image(s) <image1>, <image2>, ..., where, and what stays the same. Keep the "
        "user's language (English stays English, Chinese stays Chinese). Copy every quoted text exactly "
        "as written, inside double quotes.\n"
        'Answer with one JSON object and nothing else: {"rewritten_prompt": "...", "aspect_ratio": "W:H"}, '
        f'where aspect_ratio is one of {_RATIOS}, or "" to keep the shape of <image1>.'
    ),
}


def data_url(image: Image.Image) -> str:
    """A PNG data URL of `image`, shrunk (aspect kept) to at most MAX_IMAGE_PIXELS."""
    if image.width * image.height > MAX_IMAGE_PIXELS:
        scale = (MAX_IMAGE_PIXELS / (image.width * image.height)) ** 0.5
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def ocr_lines(readings: list[str]) -> str:
    """One line per source image: the text on it (SFT rows give the text the image was rendered with).

    >>> ocr_lines(["REEF", ""])
    'Text read from <image1>: "REEF"\nText read from <image2>: (none)'
    """
    lines = []
    for index, reading in enumerate(readings, start=1):
        reading = " ".join(reading.split())
        lines.append(f"Text read from <image{index}>: " + (f'"{reading}"' if reading else "(none)"))
    return "\n".join(lines)


def ocr_context(images: list[Image.Image], lang: str) -> str:
    """`ocr_lines` of what Tesseract reads on each image (in the instruction's language)."""
    return ocr_lines([read_text(image, lang) for image in images])


def build_messages(
    prompt: str, images: list[Image.Image], task: Task, vision: bool, lang: str = "en"
) -> list[dict]:
    """OpenAI-style chat messages; image parts only when `vision`, else the OCR'd text (`lang`: en, zh)."""
    system = {"role": "system", "content": SYSTEM_PROMPTS[task]}
    if not images:
        return [system, {"role": "user", "content": prompt}]
    if not vision:
        return [system, {"role": "user", "content": f"{prompt}\n\n{ocr_context(images, lang)}"}]
    parts: list[dict] = []
    for index, image in enumerate(images, start=1):
        parts.append({"type": "text", "text": f"<image{index}>:"})
        parts.append({"type": "image_url", "image_url": {"url": data_url(image)}})
    parts.append({"type": "text", "text": prompt})
    return [system, {"role": "user", "content": parts}]
