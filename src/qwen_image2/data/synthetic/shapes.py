"""A tiny procedural dataset of coloured shapes with captions and edit pairs.

Enough signal for a toy model to learn in minutes on a CPU (colour, shape, position), written in the shared
sample schema so that the trainer reads it like any curated manifest.
"""

import random
from pathlib import Path

from PIL import Image, ImageDraw

from qwen_image2.data.records import sample_id

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 40)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (20, 20, 20), "grey": (128, 128, 128)}
SHAPES = ("circle", "square")


def draw(
    size: tuple[int, int], shape: str, colour: str, background: str, box: tuple[float, ...]
) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size, BACKGROUNDS[background])
    x0, y0, x1, y1 = (int(v * s) for v, s in zip(box, (width, height, width, height), strict=True))
    painter = ImageDraw.Draw(image)
    (painter.ellipse if shape == "circle" else painter.rectangle)((x0, y0, x1, y1), fill=COLOURS[colour])
    return image


def write_shapes_dataset(
    out: str | Path, n: int, seed: int = 0, sizes=((64, 64), (96, 64), (64, 96))
) -> Path:
    """Write `n` T2I samples and `n // 2` edit pairs (recolour the shape) plus `manifest.parquet`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for index in range(n + n // 2):
        size = rng.choice(sizes)
        shape, colour, background = (
            rng.choice(SHAPES),
            rng.choice(list(COLOURS)),
            rng.choice(list(BACKGROUNDS)),
        )
        side = rng.uniform(0.3, 0.6)
        left, top = rng.uniform(0.05, 0.95 - side), rng.uniform(0.05, 0.95 - side)
        box = (left, top, left + side, top + side)
        # Paths relative to the manifest's folder, as every writer stores them and the trainer reads them.
        target = f"images/{index:06d}.png"
        target_path = out / target
        if index < n:
            draw(size, shape, colour, background, box).save(target_path)
            caption, task, conditions = f"a {colour} {shape} on a {background} background", "t2i", []
        else:
            new_colour = rng.choice([c for c in COLOURS if c != colour])
            source = f"images/{index:06d}-source.png"
            draw(size, shape, colour, background, box).save(out / source)
            draw(size, shape, new_colour, background, box).save(target_path)
            caption, task, conditions = f"make the {shape} {new_colour}", "edit", [source]
        rows.append(
            {
                "id": sample_id(target),
                "path": target,
                "caption": caption,
                "task": task,
                "conditions": conditions,
                "width": size[0],
                "height": size[1],
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), out / "manifest.parquet")
    return out / "manifest.parquet"
