"""The canvas an aspect ratio stands for: Qwen-Image-2.1's `wh_ratio` size table.

The table is 2.1's README ("Integration with the Pipeline"; reference/serving_enhancer_rl_distill.md §6.1).
Every side in it is already a multiple of 32, which this project's pipeline needs (a 16-pixel VAE cell
times the DiT's 2x2 patch), so it is used unrounded. A smaller `side` (a model trained below 2048 px)
scales the table and rounds each side to the nearest multiple of 32.
"""

import math
import re

# (width, height) at 2.1's native 2048 px scale.
SIZES: dict[str, tuple[int, int]] = {
    "1:1": (2048, 2048),
    "4:3": (2400, 1792),
    "3:4": (1792, 2400),
    "3:2": (2528, 1696),
    "2:3": (1696, 2528),
    "16:9": (2752, 1536),
    "9:16": (1536, 2752),
}
TABLE_SIDE = 2048
DEFAULT_RATIO = "1:1"  # 2.1's fallback: WH_RATIO_TO_SIZE.get(ratio, (2048, 2048))
MULTIPLE = 32


def normalise_ratio(text: object) -> str | None:
    """The table key `text` names, or None. Spaces, `x`, `/` and the full-width colon are accepted.

    >>> normalise_ratio(" 16 : 9 "), normalise_ratio("4x3"), normalise_ratio("9：16"), normalise_ratio("5:4")
    ('16:9', '4:3', '9:16', None)
    """
    if not isinstance(text, str):
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[:xX/：]\s*(\d+)\s*", text)
    if match is None:
        return None
    key = f"{int(match[1])}:{int(match[2])}"
    return key if key in SIZES else None


def size_for(ratio: str, side: int = TABLE_SIDE) -> tuple[int, int]:
    """(width, height) of `ratio` (a table key) at the scale where 1:1 is `side` x `side`.

    >>> size_for("16:9"), size_for("16:9", 512), size_for("1:1", 256)
    ((2752, 1536), (704, 384), (256, 256))
    """
    width, height = SIZES[ratio]
    if side == TABLE_SIDE:
        return width, height
    scale = side / TABLE_SIDE
    return tuple(max(MULTIPLE, round(v * scale / MULTIPLE) * MULTIPLE) for v in (width, height))


def nearest_ratio(width: int, height: int) -> str:
    """The table ratio closest to width/height (compared as log-ratios, so 2:1 and 1:2 are as far from 1:1).

    >>> nearest_ratio(1920, 1080), nearest_ratio(100, 100), nearest_ratio(70, 100)
    ('16:9', '1:1', '2:3')
    """
    target = math.log(width / height)
    return min(SIZES, key=lambda key: abs(math.log(SIZES[key][0] / SIZES[key][1]) - target))
