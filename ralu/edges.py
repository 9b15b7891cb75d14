"""Which low-res tokens to upsample early: Canny edge density per token cell, top-k, forced cells."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .canny import canny_edges as canny_edges  # re-exported: the edge scoring's Canny

LUMA = (0.299, 0.587, 0.114)


def edge_gray(image: torch.Tensor, faithful: bool = True) -> torch.Tensor:
    """(B, H, W, 3) image in [0, 1] -> (B, 1, H, W) gray for Canny.

    faithful: the reference takes the gray of the decoder's raw [-1, 1] output and clips it to
    [0, 1], which is clip(2 g - 1, 0, 1) of the [0, 1] image: everything darker than mid-grey is flat.
    Otherwise the whole [0, 1] range is kept, so edges in dark regions count too.
    """
    luma = torch.tensor(LUMA, dtype=image.dtype, device=image.device)
    gray = (image[..., :3] * luma).sum(dim=-1).unsqueeze(1)
    return (2.0 * gray - 1.0).clamp(0.0, 1.0) if faithful else gray


def cell_scores(edges: torch.Tensor, cell: int = 16) -> torch.Tensor:
    """(B, 1, H, W) edges -> (B, rows * cols) edge pixels per cell x cell block, cells in raster order."""
    b, _, h, w = edges.shape
    if h % cell or w % cell:
        raise ValueError(f"image size ({h}, {w}) must be a multiple of the cell size {cell}")
    blocks = edges.reshape(b, h // cell, cell, w // cell, cell)
    return blocks.sum(dim=(2, 4)).reshape(b, -1)


def latent_gradient_scores(latent: torch.Tensor) -> torch.Tensor:
    """(B, C, 2 rows, 2 cols) low-res latent estimate -> (B, rows * cols) edge scores with no decode.

    The paper's cheap variant: a 3x3 Sobel on every latent channel (replicated border), |gx| + |gy|
    summed over channels, summed over each token's 2x2 latent pixels. Scores are continuous, so the
    top-k rarely meets a tie.
    """
    channels = latent.shape[1]
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=latent.device)
    # Two filters per channel (x, then y), applied channel by channel.
    weight = torch.stack([sobel_x, sobel_x.T]).unsqueeze(1).repeat(channels, 1, 1, 1)
    padded = F.pad(latent.float(), (1, 1, 1, 1), mode="replicate")
    magnitude = F.conv2d(padded, weight, groups=channels).abs().sum(dim=1, keepdim=True)
    return cell_scores(magnitude, cell=2)


def mask_cells(mask: torch.Tensor, rows: int, cols: int, batch: int) -> torch.Tensor:
    """(B, H, W) or (H, W) mask -> bool (batch, rows * cols): cells that any mask pixel > 0.5 touches."""
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"mask batch ({mask.shape[0]}) must be 1 or the image batch ({batch})")
    marked = (mask > 0.5).to(torch.float32).unsqueeze(1)
    # Max pooling: a cell the mask only partly covers is still forced, so a thin stroke is never lost.
    cells = F.adaptive_max_pool2d(marked, (rows, cols)).reshape(mask.shape[0], rows * cols) > 0
    return cells.expand(batch, -1).clone()


def select_tokens(
    scores: torch.Tensor,
    k: int,
    forced: torch.Tensor | None = None,
    generators: Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """(B, n) scores -> (B, K) long ascending: the top k cells of each image plus its forced cells.

    Ties go to a random order drawn from generators[b] for image b (the reference's tiny jitter, made
    repeatable and independent of the other images), or to the lower cell index without them. Ties
    matter when few cells have edges: by index, the spare cells would all come from the top rows. The
    sampler needs one sequence length for the batch, so K is the largest |forced | top-k| over the
    images, and an image with fewer takes its next best cells.
    """
    b, n = scores.shape
    if not 0 <= k <= n:
        raise ValueError(f"k ({k}) must be between 0 and the number of cells ({n})")
    if forced is None:
        forced = torch.zeros(n, dtype=torch.bool)
    forced = forced.to(device=scores.device, dtype=torch.bool).expand(b, n)

    if generators is None:
        tie_order = torch.arange(n, device=scores.device).expand(b, n)
    else:
        if len(generators) != b:
            raise ValueError(f"one generator per image is needed: {len(generators)} for a batch of {b}")
        tie_order = torch.stack([torch.rand(n, generator=g).argsort() for g in generators]).to(scores.device)
    # A stable sort by score over cells in tie order keeps that order among equal scores.
    by_score = tie_order.gather(
        1, scores.gather(1, tie_order).sort(dim=1, descending=True, stable=True).indices
    )
    top_k = torch.zeros(b, n, dtype=torch.bool, device=scores.device)
    top_k.scatter_(1, by_score[:, :k], True)
    count = int((top_k | forced).sum(dim=1).max())
    # Forced cells first, then by score: a stable sort on "forced" keeps the score order within each part.
    forced_in_score_order = forced.gather(1, by_score).to(torch.uint8)
    priority = by_score.gather(1, forced_in_score_order.sort(dim=1, descending=True, stable=True).indices)
    return priority[:, :count].sort(dim=1).values


def selection_mask(selected: torch.Tensor, rows: int, cols: int, cell_h: int, cell_w: int) -> torch.Tensor:
    """(B, K) cell indices -> (B, rows * cell_h, cols * cell_w) float mask, 1 on the selected cells."""
    b = selected.shape[0]
    cells = torch.zeros(b, rows * cols, dtype=torch.float32, device=selected.device)
    cells.scatter_(1, selected.to(torch.long), 1.0)
    grid = cells.reshape(b, rows, cols)
    return grid.repeat_interleave(cell_h, dim=1).repeat_interleave(cell_w, dim=2)
