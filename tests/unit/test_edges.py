import pytest
import torch

from ralu.edges import (
    canny_edges,
    cell_scores,
    edge_gray,
    latent_gradient_scores,
    mask_cells,
    select_tokens,
    selection_mask,
)
from ralu.streams import image_generators

CELL = 16


def rectangle_outline(size: int, top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    """(1, size, size, 3) black image with a 2-pixel white outline from (top, left) to (bottom, right)."""
    image = torch.zeros(1, size, size, 3)
    image[:, top : top + 2, left : right + 1] = 1.0
    image[:, bottom - 1 : bottom + 1, left : right + 1] = 1.0
    image[:, top : bottom + 1, left : left + 2] = 1.0
    image[:, top : bottom + 1, right - 1 : right + 1] = 1.0
    return image


def outline_cells(first: int, last: int, cols: int) -> list[int]:
    """Raster indices of the cells on the border of the square of cells first..last (rows and cols)."""
    span = range(first, last + 1)
    return sorted({r * cols + c for r in span for c in span if r in (first, last) or c in (first, last)})


def test_faithful_gray_clips_the_decoder_range():
    colours = [
        [1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.75, 0.75, 0.75],
        [1.0, 0.0, 0.0],
        [0.4] * 3,
    ]
    image = torch.tensor(colours).reshape(1, 1, -1, 3)
    faithful = edge_gray(image)[0, 0, 0]
    full_range = edge_gray(image, faithful=False)[0, 0, 0]
    assert faithful.tolist() == pytest.approx([1.0, 0.0, 0.0, 0.5, 0.0, 0.0])
    assert full_range.tolist() == pytest.approx([1.0, 0.0, 0.5, 0.75, 0.299, 0.4])
    assert edge_gray(torch.rand(2, 8, 12, 3)).shape == (2, 1, 8, 12)


@pytest.mark.parametrize(("step", "is_edge"), [(45, False), (55, True)])
def test_canny_thresholds_are_opencvs_on_the_255_scale(step, is_edge):
    # Sobel of a vertical step of height d is 4d: 180 is only weak (100 < 180 <= 200) and is dropped,
    # 220 is strong. No blur first, as in cv2.Canny: a Gaussian would pull 220 down to about 142.
    gray = torch.zeros(1, 1, 32, 32)
    gray[..., 16:] = step / 255
    edges = canny_edges(gray)
    assert edges.shape == (1, 1, 32, 32)
    assert set(edges.unique().tolist()) <= {0.0, 1.0}
    assert bool(edges.any()) == is_edge
    if is_edge:
        # one pixel wide, on the left of the step, as cv2.Canny marks it
        assert edges[0, 0, :, 15].all() and edges.sum().item() == 32


def test_cell_scores_count_edge_pixels_per_cell_in_raster_order():
    edges = torch.zeros(2, 1, 32, 48)
    edges[0, 0, 17, 33] = 1  # row 1, col 2
    edges[0, 0, 0:3, 0] = 1  # row 0, col 0
    edges[1, 0, 31, 47] = 1  # last cell
    scores = cell_scores(edges)
    assert scores.tolist() == [[3, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1]]
    with pytest.raises(ValueError, match="multiple of the cell size"):
        cell_scores(torch.zeros(1, 1, 20, 32))


def test_canny_selection_picks_exactly_the_cells_an_outline_crosses():
    # 8x8 cells of 16 px; the outline runs through the middle of cell rows / cols 2 and 5.
    first = rectangle_outline(128, 40, 40, 89, 89)
    second = rectangle_outline(128, 24, 24, 57, 57)  # cells 1..3
    image = torch.cat([first, second])
    scores = cell_scores(canny_edges(edge_gray(image)), CELL)
    expected_first, expected_second = outline_cells(2, 5, 8), outline_cells(1, 3, 8)
    assert torch.equal(scores[0] > 0, torch.isin(torch.arange(64), torch.tensor(expected_first)))
    selected = select_tokens(scores, k=12)
    assert selected[0].tolist() == expected_first
    # the second outline crosses 8 cells; the other 4 picks go to the lowest-index empty cells
    assert set(expected_second) <= set(selected[1].tolist())
    assert selected[1].tolist() == sorted(expected_second + [0, 1, 2, 3])


def test_dark_edges_vanish_in_faithful_mode_only():
    image = rectangle_outline(64, 8, 8, 41, 41) * 0.45  # darker than mid-grey
    assert not canny_edges(edge_gray(image)).any()
    assert canny_edges(edge_gray(image, faithful=False)).any()


def test_select_tokens_ties_go_to_the_lower_index():
    assert select_tokens(torch.zeros(1, 6), 3).tolist() == [[0, 1, 2]]
    assert select_tokens(torch.tensor([[1.0, 2.0, 2.0, 0.0, 2.0]]), 2).tolist() == [[1, 2]]


def test_select_tokens_breaks_ties_at_random_but_repeatably_with_a_generator():
    scores = torch.zeros(2, 64)
    scores[:, 40] = 5.0  # one cell with edges always wins

    def pick(seed):
        return select_tokens(scores, 8, generators=image_generators(seed, range(2)))

    first = pick(0)
    assert torch.equal(first, pick(0))
    assert not torch.equal(first, pick(1))
    assert (first == 40).any(dim=1).all()
    assert first[0].tolist() != list(range(7)) + [40]  # not the lower-index order
    assert not torch.equal(first[0], first[1])  # each image draws its own order


def test_select_tokens_with_forced_cells_and_a_common_count():
    scores = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    forced = torch.tensor([[False, False, False, False, False, True], [False] * 6])
    selected = select_tokens(scores, 2, forced)
    # image 0: top 2 {0, 1} plus forced 5 -> 3 cells, so image 1 takes its next best cell too
    assert selected.dtype == torch.long
    assert selected.tolist() == [[0, 1, 5], [3, 4, 5]]


def test_select_tokens_broadcasts_one_forced_row_and_handles_nothing_to_select():
    scores = torch.tensor([[0.0, 9, 0, 0], [9.0, 0, 0, 0]])
    forced = torch.tensor([False, False, True, False])
    assert select_tokens(scores, 1, forced).tolist() == [[1, 2], [0, 2]]
    assert select_tokens(scores, 0).shape == (2, 0)
    with pytest.raises(ValueError, match="between 0 and the number of cells"):
        select_tokens(scores, 5)


def test_mask_cells_marks_every_cell_a_stroke_touches():
    mask = torch.zeros(64, 64)
    mask[20:22, 40:50] = 1.0  # inside cell row 1, cols 2 and 3 of a 4x4 grid
    cells = mask_cells(mask, 4, 4, batch=2)
    assert cells.shape == (2, 16) and cells.dtype == torch.bool
    assert cells[0].nonzero().flatten().tolist() == [6, 7] and torch.equal(cells[0], cells[1])
    # a mask at another resolution maps onto the same cells
    fine = torch.nn.functional.interpolate(mask[None, None], scale_factor=2, mode="nearest")[0]
    assert torch.equal(mask_cells(fine, 4, 4, batch=1)[0], cells[0])
    with pytest.raises(ValueError, match="mask batch"):
        mask_cells(torch.zeros(3, 64, 64), 4, 4, batch=2)


def test_selection_mask_renders_each_images_cells():
    mask = selection_mask(torch.tensor([[0, 5], [3, 4]]), rows=2, cols=3, cell_h=2, cell_w=4)
    assert mask.shape == (2, 4, 12) and mask.dtype == torch.float32
    assert mask[0].tolist() == [[1.0] * 4 + [0.0] * 8] * 2 + [[0.0] * 8 + [1.0] * 4] * 2
    assert mask[1].tolist() == [[0.0] * 12] * 2 + [[1.0] * 8 + [0.0] * 4] * 2


def test_latent_gradient_scores_mark_the_tokens_beside_a_step_in_any_channel():
    latent = torch.zeros(2, 16, 8, 12)  # a 4 x 6 grid of low-res tokens
    latent[0, 5, :, 6:] = 1.0  # a vertical step between token columns 2 and 3 of image 0
    latent[1, 0, 4:, :] = -2.0  # a horizontal step between token rows 1 and 2 of image 1
    scores = latent_gradient_scores(latent).reshape(2, 4, 6)
    assert scores.shape == (2, 4, 6)
    # Sobel on a unit step: 4 per pixel on both sides of it, each token holds one column of 2 pixels.
    assert scores[0, :, 2:4].flatten().tolist() == [8.0] * 8
    assert scores[0, :, [0, 1, 4, 5]].abs().sum() == 0
    assert scores[1, 1:3].flatten().tolist() == [16.0] * 12
    assert scores[1, [0, 3]].abs().sum() == 0
    assert latent_gradient_scores(torch.full((1, 16, 4, 4), 3.0)).abs().sum() == 0
