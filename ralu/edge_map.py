"""From a picture to per-token edge scores, the one path both the sampler and the Edge Mask use."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .edges import canny_edges, cell_scores, edge_gray, mask_cells, select_tokens, selection_mask

LOW_RES_CELL = 16  # pixels of the half-resolution image covered by one low-res token
FULL_RES_CELL = 2 * LOW_RES_CELL  # the same token's pixels in the full-resolution picture


def half_resolution(image: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) -> (B, H/2, W/2, 3): what a low-res latent decodes to, for a full-res picture."""
    return torch.nn.functional.avg_pool2d(image.movedim(-1, 1), 2).movedim(1, -1)


def edge_map_and_scores(low_res_image: torch.Tensor, faithful: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Canny edges (B, 1, h, w) of a half-resolution picture and edge pixels per low-res token."""
    edges = canny_edges(edge_gray(low_res_image.float(), faithful=faithful))
    return edges, cell_scores(edges, cell=LOW_RES_CELL)


def early_upsample_mask(
    image: torch.Tensor,
    k: int,
    force_mask: torch.Tensor | None,
    faithful: bool,
    generators: Sequence[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """For a full-res picture (B, H, W, 3), the (B, H, W) mask of the cells RALU would upsample early
    (the k with the most edges, plus the forced ones) and the edge map (B, H, W, 3) they were scored on.
    """
    batch, height, width = image.shape[:3]
    rows, cols = height // FULL_RES_CELL, width // FULL_RES_CELL
    edges, scores = edge_map_and_scores(half_resolution(image), faithful)
    forced = None if force_mask is None else mask_cells(force_mask, rows, cols, batch)
    selected = select_tokens(scores, k, forced, generators)
    mask = selection_mask(selected, rows, cols, FULL_RES_CELL, FULL_RES_CELL)
    edge_image = torch.nn.functional.interpolate(edges.float(), scale_factor=2, mode="nearest")
    return mask, edge_image.movedim(1, -1).expand(-1, -1, -1, 3)
