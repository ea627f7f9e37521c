"""The OCR reward: the texts the request asks for, read back from the image with Tesseract.

Per text: 1 when all its words are found in the reading (noise around them does not count against it,
as Flow-GRPO's substring rule, reference §2.7), else 1 - the normalised edit distance between the text
and the reading, so a near miss ("HELO") still outranks a blank. A row without texts gives None (the
reward does not apply to it); an image that was not drawn (no usable answer) gives 0.
"""

from PIL import Image

from qwen_image2.metrics.ocr import read_text, score_reading


def text_score(image: Image.Image, texts: list[str], lang: str) -> float:
    """The mean over `texts` of 1 (found) or 1 - NED against what Tesseract reads in `image`."""
    single_line = all("\n" not in text for text in texts) and len(texts) == 1
    reading = read_text(image.convert("RGB"), lang if lang in ("en", "zh") else "en", single_line)
    scores = []
    for text in texts:
        score = score_reading(text, reading, lang)
        scores.append(1.0 if score["word_accuracy"] == 1.0 else max(0.0, 1.0 - score["ned"]))
    return sum(scores) / len(scores)


def ocr_reward(
    images: list[Image.Image | None], texts: list[list[str]], langs: list[str]
) -> list[float | None]:
    """One score per image: `text_score`, 0 for a missing image, None for a row that asks for no text."""
    scores: list[float | None] = []
    for image, wanted, lang in zip(images, texts, langs, strict=True):
        if not wanted:
            scores.append(None)
        elif image is None:
            scores.append(0.0)
        else:
            scores.append(text_score(image, wanted, lang))
    return scores
