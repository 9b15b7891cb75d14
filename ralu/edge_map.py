"""From a picture to per-token edge scores, the one path both the sampler and the Edge Mask use."""

from __future__ import annotations

import torch

from .edges import canny_edges, cell_scores, edge_gray

LOW_RES_CELL = 16  # pixels of the half-resolution image covered by one low-res token


def half_resolution(image: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) -> (B, H/2, W/2, 3): what a low-res latent decodes to, for a full-res picture."""
    return torch.nn.functional.avg_pool2d(image.movedim(-1, 1), 2).movedim(1, -1)


def edge_map_and_scores(low_res_image: torch.Tensor, faithful: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Canny edges (B, 1, h, w) of a half-resolution picture and edge pixels per low-res token."""
    edges = canny_edges(edge_gray(low_res_image.float(), faithful=faithful))
    return edges, cell_scores(edges, cell=LOW_RES_CELL)
