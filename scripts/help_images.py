"""Draws the pictures of the node help (web/docs/RALUEdgeMask.png, web/docs/RALUKSampler.png) from a
synthetic test picture, with the function RALU Edge Mask and RALU KSampler choose their cells with
(ralu.edge_map.early_upsample_mask). The Stage Planner's picture is the browser test's chart screenshot
(RALU_UPDATE_SCREENSHOTS=1, see tests/browser/test_planner_chart.py).

    .comfy/venv/bin/python scripts/help_images.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ralu.edge_map import FULL_RES_CELL, early_upsample_mask  # noqa: E402
from ralu.sampler import early_upsample_count  # noqa: E402
from ralu.streams import image_generators  # noqa: E402

SIZE = 256
UP_RATIO = 0.3  # flux_4x's
TOKEN = FULL_RES_CELL // 2  # one full-resolution token: 16x16 pixels
HIGHLIGHT = (232, 163, 61)


def test_picture() -> Image.Image:
    """A bright sky over a dark field, a sun and a house: flat regions and a few sharp edges."""
    picture = Image.new("RGB", (SIZE, SIZE), (150, 190, 235))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 176, SIZE, SIZE), fill=(70, 120, 60))
    draw.ellipse((170, 24, 226, 80), fill=(250, 230, 120))
    draw.rectangle((48, 120, 128, 184), fill=(200, 200, 190))
    draw.polygon([(40, 122), (88, 84), (136, 122)], fill=(160, 60, 50))
    draw.rectangle((76, 148, 98, 184), fill=(90, 60, 40))
    return picture


def early_mask(picture: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    image = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]
    cells = (SIZE // FULL_RES_CELL) ** 2
    mask, edges = early_upsample_mask(
        image, early_upsample_count(UP_RATIO, cells), None, True, image_generators(0, [0])
    )
    return mask[0].numpy() > 0.5, edges[0, ..., 0].numpy() > 0.5


def overlay(picture: Image.Image, mask: np.ndarray) -> Image.Image:
    pixels = np.asarray(picture, dtype=np.float32)
    tinted = np.where(mask[..., None], 0.45 * pixels + 0.55 * np.array(HIGHLIGHT), 0.6 * pixels)
    return Image.fromarray(tinted.astype(np.uint8))


def grid(picture: Image.Image, fine: np.ndarray) -> Image.Image:
    """The tokens of one stage over the picture: 32-pixel cells, 16-pixel ones where `fine` holds."""
    out = Image.fromarray((np.asarray(picture, dtype=np.float32) * 0.7).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for top in range(0, SIZE, FULL_RES_CELL):
        for left in range(0, SIZE, FULL_RES_CELL):
            step = TOKEN if fine[top, left] else FULL_RES_CELL
            color = HIGHLIGHT if fine[top, left] else (235, 235, 235)
            for y in range(top, top + FULL_RES_CELL, step):
                for x in range(left, left + FULL_RES_CELL, step):
                    draw.rectangle((x, y, x + step - 1, y + step - 1), outline=color)
    return out


def side_by_side(*panels: Image.Image, gap: int = 8) -> Image.Image:
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    out = Image.new("RGB", (width, SIZE), (32, 32, 32))
    x = 0
    for panel in panels:
        out.paste(panel, (x, 0))
        x += panel.width + gap
    return out


def main() -> None:
    picture = test_picture()
    mask, edges = early_mask(picture)
    docs = ROOT / "web" / "docs"
    edge_image = Image.fromarray((edges * 255).astype(np.uint8)).convert("RGB")
    side_by_side(picture, edge_image, overlay(picture, mask)).save(docs / "RALUEdgeMask.png", optimize=True)
    none = np.zeros_like(mask)
    stages = (grid(picture, none), grid(picture, mask), grid(picture, ~none))
    side_by_side(*stages).save(docs / "RALUKSampler.png", optimize=True)
    for name in ("RALUEdgeMask.png", "RALUKSampler.png"):
        print(docs / name, (docs / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
