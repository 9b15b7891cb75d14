"""How often ComfyUI's per-channel clamp of the VAE decode changes RALU's early-upsampled cells.

The reference takes the luma of the decoder's raw output (about [-1, 1]) and clips that to [0, 1];
ComfyUI's VAE.decode clamps each colour channel to [-1, 1] (as [0, 1]) before we see it, so the two
grays differ wherever a channel overshoots and the pixel is not black or white either way. No real
VAE weights can be had here, so the raw decodes are synthetic: smooth colour fields with shapes and
fine texture, scaled so that a chosen share of channel values overshoots [-1, 1].

    python scripts/measure_gray_clamp.py            (from the repository root, with torch installed)
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ralu.edge_map import LOW_RES_CELL  # noqa: E402
from ralu.edges import LUMA, canny_edges, cell_scores, edge_gray, select_tokens  # noqa: E402
from ralu.streams import image_generators  # noqa: E402


def synthetic_raw_decode(batch: int, size: int, gain: float, generator: torch.Generator) -> torch.Tensor:
    """(B, size, size, 3) 'raw decoder output': low-frequency colour, discs, texture; times gain."""
    coarse = torch.randn(batch, 3, size // 32, size // 32, generator=generator)
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False) * 0.6
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for _ in range(6):
        cy, cx, r = (torch.rand(3, generator=generator) * torch.tensor([size, size, size / 5])).tolist()
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < (r + 4) ** 2).float()
        field = field + disc * (torch.rand(batch, 3, 1, 1, generator=generator) * 2 - 1)
    field = field + 0.05 * torch.randn(batch, 3, size, size, generator=generator)
    return (field * gain).movedim(1, -1)


def reference_gray(raw: torch.Tensor) -> torch.Tensor:
    luma = torch.tensor(LUMA, dtype=raw.dtype)
    return (raw * luma).sum(-1).unsqueeze(1).clamp(0.0, 1.0)


def comfyui_gray(raw: torch.Tensor) -> torch.Tensor:
    return edge_gray(((raw + 1.0) / 2.0).clamp(0.0, 1.0), faithful=True)


def selected_cells(gray: torch.Tensor, up_ratio: float, seed: int) -> torch.Tensor:
    scores = cell_scores(canny_edges(gray), cell=LOW_RES_CELL)
    k = int(scores.shape[1] * up_ratio)
    chosen = select_tokens(scores, k, None, image_generators(seed, range(gray.shape[0])))
    mask = torch.zeros_like(scores, dtype=torch.bool)
    return mask.scatter_(1, chosen, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=512, help="half-resolution picture size (stage 1)")
    parser.add_argument("--up-ratio", type=float, default=0.3)
    args = parser.parse_args()
    columns = ("gain", "channel values outside [-1, 1]", "pixels whose gray differs", "cells that differ")
    print("| " + " | ".join(columns) + " |")
    print("| --- | --- | --- | --- |")
    for gain in (0.8, 1.0, 1.2, 1.5):
        generator = torch.Generator().manual_seed(0)
        raw = synthetic_raw_decode(args.images, args.size, gain, generator)
        ours, theirs = comfyui_gray(raw), reference_gray(raw)
        outside = (raw.abs() > 1.0).float().mean().item()
        differ = ((ours * 255).floor() != (theirs * 255).floor()).float().mean().item()
        a, b = selected_cells(ours, args.up_ratio, 0), selected_cells(theirs, args.up_ratio, 0)
        changed = (a & ~b).sum().item() / max(1, a.sum().item())
        print(f"| {gain} | {outside:.1%} | {differ:.1%} | {changed:.1%} |")


if __name__ == "__main__":
    main()
