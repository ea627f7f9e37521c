"""One contact sheet for every picture of samples: validation grids, worst reconstructions, OCR sheets.

A sheet is a grid of cells; a cell is a row of images (e.g. reference | output) with text lines under it.
"""

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

GAP = 4  # pixels between images and between cells


def contact_sheet(
    cells: list[list[Image.Image]],
    labels: list[list[str]] | None = None,
    columns: int = 1,
    tile: int | None = None,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont | None = None,
    background: str | tuple[int, int, int] = "white",
) -> Image.Image:
    """The cells laid out `columns` to a row. `tile` fits every image into tile² with nearest-neighbour
    resampling (the pixels a metric saw, not a smoothed copy); without it images keep their size."""
    if tile is not None:
        cells = [
            [ImageOps.contain(im, (tile, tile), Image.Resampling.NEAREST) for im in cell] for cell in cells
        ]
    font = font or ImageFont.load_default()
    line = int(getattr(font, "size", 10)) + 4
    lines = max((len(cell_labels) for cell_labels in labels or []), default=0)
    image_w = max((im.width for cell in cells for im in cell), default=1)
    image_h = max((im.height for cell in cells for im in cell), default=1)
    per_cell = max((len(cell) for cell in cells), default=1)
    cell_w = per_cell * (image_w + GAP) + GAP
    cell_h = image_h + lines * line + 2 * GAP
    rows = max(1, math.ceil(len(cells) / columns))
    sheet = Image.new("RGB", (min(columns, max(1, len(cells))) * cell_w, rows * cell_h), background)
    draw = ImageDraw.Draw(sheet)
    for index, cell in enumerate(cells):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        for k, image in enumerate(cell):
            sheet.paste(image.convert("RGB"), (x + GAP + k * (image_w + GAP), y + GAP))
        for k, text in enumerate((labels or [])[index] if labels else []):
            draw.text((x + GAP, y + GAP + image_h + 2 + k * line), text, fill=(20, 20, 20), font=font)
    return sheet


def comparison_grid(pairs: list[tuple[str, torch.Tensor, torch.Tensor]], max_side: int = 256) -> Image.Image:
    """One row per (name, reference, reconstruction) of uint8 (C, H, W): reference | reconstruction |
    |difference| x4, the name under it."""
    cells = []
    for _, reference, reconstruction in pairs:
        ref, rec = reference.permute(1, 2, 0).numpy(), reconstruction.permute(1, 2, 0).numpy()
        # x4 so that the typical few-level errors of a good VAE are visible at all.
        diff = np.clip(np.abs(ref.astype(np.int16) - rec.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
        cells.append([Image.fromarray(a.squeeze()) for a in (ref, rec, diff)])
    return contact_sheet(
        cells,
        [[name] for name, _, _ in pairs],
        tile=max_side if cells and max(im.height for im in cells[0]) > max_side else None,
    )
