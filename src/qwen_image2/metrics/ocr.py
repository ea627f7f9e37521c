"""OCR with Tesseract (Debian's tesseract-ocr, eng and chi_sim) and the text-matching scores built on it.

Scores compare normalised text: Unicode NFKC, case folded, punctuation and symbols dropped, whitespace
collapsed; Chinese also drops every space, because Tesseract's chi_sim puts spaces between characters.
Word accuracy counts the expected words found in the reading (EN: whole tokens, each used once; ZH: each
expected phrase as a substring), so a reading with extra noise around the right word still counts.
"""

import unicodedata
from collections import Counter
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps
from rapidfuzz.distance import Levenshtein

from qwen_image2.errors import UserError

TESSERACT_LANGS = {"en": "eng", "zh": "chi_sim"}
PACKAGES = {"eng": "tesseract-ocr-eng", "chi_sim": "tesseract-ocr-chi-sim"}
# Small images are enlarged until their short side is at least this. Measured on the 16 held-out ZH
# words rendered at 64 px: eng reads best enlarged (cap height ~40 px), chi_sim best unenlarged
# (word accuracy 0.88 at 64 px, 0.75 at 128, 0.56 at 192, 0.31 at 640).
MIN_OCR_SIDE = {"en": 384, "zh": 64}


@lru_cache(maxsize=1)
def installed_languages() -> frozenset[str]:
    """Tesseract's language packs; a UserError naming the Debian package when the binary is missing."""
    import pytesseract

    try:
        return frozenset(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractNotFoundError, FileNotFoundError):
        raise UserError(
            "the tesseract binary is not installed: apt-get install tesseract-ocr tesseract-ocr-eng "
            "tesseract-ocr-chi-sim (or `make install`)"
        ) from None


def check_tesseract(langs: list[str] | tuple[str, ...]) -> None:
    """Fail early, before any model loads, when Tesseract or a language pack is missing."""
    installed = installed_languages()
    for lang in langs:
        if lang not in TESSERACT_LANGS:
            raise UserError(f"language {lang!r}: choose one of {', '.join(TESSERACT_LANGS)}")
        code = TESSERACT_LANGS[lang]
        if code not in installed:
            raise UserError(f"Tesseract has no {code!r} language data: apt-get install {PACKAGES[code]}")


def prepare_for_ocr(image: Image.Image, lang: str = "en") -> Image.Image:
    """Grey, dark text on light, enlarged to MIN_OCR_SIDE[lang], with a margin: what Tesseract reads best.

    Transparent pixels count as white. Which side is text is decided by Otsu's threshold: the smaller
    class is the text (a poster's word covers less area than its background).
    """
    from skimage.filters import threshold_otsu

    if image.mode in ("RGBA", "LA", "P"):
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    grey = image.convert("L")
    scale = max(1.0, MIN_OCR_SIDE[lang] / min(grey.size))
    if scale > 1:
        grey = grey.resize((round(grey.width * scale), round(grey.height * scale)), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey)
    if np.ptp(pixels) > 0 and (pixels > threshold_otsu(pixels)).mean() < 0.5:
        grey = ImageOps.invert(grey)
    return ImageOps.expand(grey, border=max(grey.size) // 10, fill=int(np.percentile(np.asarray(grey), 90)))


def read_text(image: Image.Image, lang: str = "en", single_line: bool = False) -> str:
    """What Tesseract reads in `image` (`single_line`: page segmentation mode 7, one text line)."""
    import pytesseract

    psm = 7 if single_line else 3
    return pytesseract.image_to_string(
        prepare_for_ocr(image, lang), lang=TESSERACT_LANGS[lang], config=f"--psm {psm}"
    ).strip()


# --------------------------------------------------------------------------------------------- scoring


def normalise(text: str, lang: str = "en") -> str:
    """>>> normalise('  Hello,  WORLD! ')
    'hello world'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in text)
    words = kept.split()
    return "".join(words) if lang == "zh" else " ".join(words)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute: cost 1), rapidfuzz's."""
    return Levenshtein.distance(a, b)


def expected_units(text: str, lang: str) -> list[str]:
    """The words to look for: EN tokens; ZH phrases (the expected text split at spaces/punctuation)."""
    if lang == "zh":
        return [normalise(part, "zh") for part in normalise(text, "en").split() if part]
    return normalise(text, "en").split()


def found(units: list[str], reading: str, lang: str) -> int:
    """How many of `units` the reading contains (EN tokens are matched once each)."""
    if lang == "zh":
        flat = normalise(reading, "zh")
        return sum(unit in flat for unit in units)
    available = Counter(normalise(reading, "en").split())
    hits = 0
    for unit in units:
        if available[unit] > 0:
            available[unit] -= 1
            hits += 1
    return hits


def score_reading(expected: str, reading: str, lang: str) -> dict:
    """word_accuracy (share of expected words read), exact (normalised equality), ned (0 = identical).

    >>> score_reading("HELLO", "hello.", "en")
    {'word_accuracy': 1.0, 'exact': True, 'ned': 0.0}
    """
    units = expected_units(expected, lang)
    a, b = normalise(expected, lang), normalise(reading, lang)
    return {
        "word_accuracy": found(units, reading, lang) / len(units) if units else 0.0,
        "exact": a == b,
        "ned": Levenshtein.normalized_distance(a, b),  # distance / longer length; 0 for two empties
    }
