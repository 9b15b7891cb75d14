"""From a full-res picture to the mask of the cells RALU upsamples early."""

import torch

from ralu.edge_map import FULL_RES_CELL, early_upsample_mask


def square_picture(size=256):
    """A white square whose sides run through the middles of cells 2 and 5: its edges touch 12 cells."""
    image = torch.zeros(1, size, size, 3)
    image[:, 80:176, 80:176] = 1.0
    return image


def cells_of(mask):
    grid = mask[0].reshape(8, FULL_RES_CELL, 8, FULL_RES_CELL)
    assert torch.equal(grid.amax(dim=(1, 3)), grid.amin(dim=(1, 3))), "the mask is whole cells"
    return {tuple(rc) for rc in grid.amax(dim=(1, 3)).nonzero().tolist()}


RING = {(r, c) for r in range(2, 6) for c in range(2, 6)} - {(r, c) for r in (3, 4) for c in (3, 4)}


def test_the_cells_on_the_edges_are_chosen():
    mask, edges = early_upsample_mask(square_picture(), 12, None, True, [torch.Generator().manual_seed(0)])
    assert mask.shape == (1, 256, 256) and edges.shape == (1, 256, 256, 3)
    assert cells_of(mask) == RING
    assert edges.sum() > 0 and edges[:, :64].sum() == 0  # no edges far from the square


def test_forced_regions_join_the_edge_cells():
    force = torch.zeros(1, 256, 256)
    force[:, 0:10, 250:256] = 1.0  # touches only the top-right cell
    mask, _ = early_upsample_mask(square_picture(), 12, force, True, [torch.Generator().manual_seed(0)])
    assert cells_of(mask) == RING | {(0, 7)}
