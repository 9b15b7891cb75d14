"""ralu.canny against cv2.Canny itself (opencv-python-headless, a test-only dependency), pixel for pixel.

Every picture is compared whole: natural-looking ones (smooth fields, shapes, gradients, noise,
text, lines at many angles, circles), synthetic edge cases (flat, one bright pixel, checkerboards,
steps whose magnitude is exactly 100 or 200, long weak spirals and zigzags held by one strong
pixel), sizes from 1x1 to 256x384, odd and non-square, batches of different pictures, other
thresholds, and the uint8 truncation.

Mutations of ralu/canny.py tried, each failing at least one test here (tests/unit/test_canny.py,
test_edges.py and test_edge_map.py run against a mutated copy):
- L2 magnitude (sqrt(dx^2 + dy^2) against the same thresholds);
- quantisation by rounding instead of truncation;
- Sobel with a zero border instead of OpenCV's replicated one, with 1-1-1 instead of 1-2-1
  smoothing, with dy's sign flipped; the magnitude outside the picture replicated instead of 0;
- `>=` instead of `>` at the low threshold, and at the high one; thresholds rounded instead of
  floored, and not swapped when low > high;
- `>=` instead of `>` (and `>` instead of `>=`) in each of the axis bins' neighbour comparisons,
  and `>=` on either side of each diagonal bin;
- the diagonal bins swapped (same-sign gradients compared along the other diagonal), the axis
  bins swapped (left/right for a vertical gradient); TG22 = 13572 or 13574 instead of 13573;
- 4-connected hysteresis (no diagonal neighbour pairs), no hysteresis (strong pixels only);
- labelling without pointer jumping (wrong labels) or hooking only the pair's own nodes instead of
  the nodes their labels name (4880 rounds instead of 16 on a shuffled chain of 16384).
Not detectable with 8-bit input, so not tested: TG22 as a float tan(22.5 deg) (the same bin for
every |dx|, |dy| <= 1020), `<=` instead of `<` at the 22.5-degree limit (differs only at dx = dy =
0, magnitude 0) and `>=` instead of `>` at the 67.5-degree one (|dy| << 15 never equals 79109 |dx|).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
import torch

from ralu.canny import canny_edges, quantise, smallest_in_component


def opencv_canny(gray: np.ndarray, low: float = 100, high: float = 200) -> np.ndarray:
    """cv2.Canny of each (H, W) picture of a (B, 1, H, W) float array, as 0 / 1 uint8."""
    gray_u8 = (np.clip(gray, 0, 1) * 255).astype(np.uint8)
    return np.stack([cv2.Canny(np.ascontiguousarray(g[0]), low, high) for g in gray_u8])[:, None] // 255


def assert_same_as_opencv(gray: np.ndarray, low: float = 100, high: float = 200) -> np.ndarray:
    """Compare canny_edges with cv2.Canny on a (B, 1, H, W) or (H, W) float picture; cv2's answer back."""
    if gray.ndim == 2:
        gray = gray[None, None]
    ours = canny_edges(torch.from_numpy(gray), low, high)
    assert ours.shape == gray.shape and ours.dtype == torch.float32
    expected = opencv_canny(gray, low, high)
    mismatch = ours.numpy().astype(np.uint8) != expected
    where = np.argwhere(mismatch)[:5].tolist()
    assert not mismatch.any(), f"{int(mismatch.sum())} of {mismatch.size} pixels differ, first at {where}"
    return expected


def level(value: float) -> float:
    """The gray that quantises to the integer `value` (the middle of its bin, safe from rounding)."""
    return (value + 0.5) / 255


# --- pictures --------------------------------------------------------------------------------------


def natural(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth random field, a gradient, shapes of random grey, noise; a little outside [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 16 + 3, w // 16 + 3)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w]
    picture = 0.5 * field + 0.3 * (xx / max(w, 1) * rng.uniform(-1, 1) + yy / max(h, 1) * rng.uniform(-1, 1))
    for _ in range(6):
        shape = np.zeros((h, w), np.float32)
        x0, y0 = int(rng.integers(0, max(w, 1))), int(rng.integers(0, max(h, 1)))
        size = int(rng.integers(2, max(h, w) // 3 + 3))
        line_type = [cv2.LINE_8, cv2.LINE_AA][int(rng.integers(0, 2))]
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(shape, (x0, y0), size, 1.0, -1, line_type)
        elif kind == 1:
            cv2.rectangle(shape, (x0, y0), (x0 + size, y0 + size // 2), 1.0, -1)
        else:
            points = rng.integers(-size, size, (3, 2)) + np.array([x0, y0])
            cv2.fillPoly(shape, [points.astype(np.int32)], 1.0, line_type)
        picture = picture * (1 - shape) + rng.uniform(0, 1) * shape
    picture = picture + rng.normal(0, rng.uniform(0.0, 0.03), (h, w))
    return (picture * 1.1 - 0.05).astype(np.float32)


def text(seed: int, h: int = 96, w: int = 320) -> np.ndarray:
    """Anti-aliased words in several fonts and sizes on a random background, sometimes blurred."""
    rng = np.random.default_rng(seed)
    picture = np.full((h, w), rng.uniform(0.2, 0.8), np.float32)
    fonts = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX]
    for row in range(3):
        word = "".join(chr(int(c)) for c in rng.integers(ord("A"), ord("z") + 1, 12))
        font = fonts[row % len(fonts)]
        ink = np.zeros((h, w), np.uint8)  # putText draws on 8-bit pictures only
        cv2.putText(ink, word, (4, 28 + 30 * row), font, 0.5 + 0.3 * row, 255, 1 + row % 2, cv2.LINE_AA)
        cover = ink.astype(np.float32) / 255
        picture = picture * (1 - cover) + rng.uniform(0, 1) * cover
    if seed % 2:
        picture = cv2.GaussianBlur(picture, (3, 3), 0.8)
    return picture


def lines_at_angles(size: int = 160, anti_aliased: bool = True) -> np.ndarray:
    """Lines from the middle every 7 degrees, in greys from faint (weak edges) to white."""
    picture = np.zeros((size, size), np.float32)
    centre = size // 2
    for i, angle in enumerate(range(0, 360, 7)):
        end = (
            round(centre + 0.48 * size * math.cos(math.radians(angle))),
            round(centre + 0.48 * size * math.sin(math.radians(angle))),
        )
        grey = 0.1 + 0.9 * (i % 8) / 7
        cv2.line(picture, (centre, centre), end, grey, 1, cv2.LINE_AA if anti_aliased else cv2.LINE_8)
    return picture


def circles(size: int = 150) -> np.ndarray:
    """Concentric circles of several widths and contrasts, some filled."""
    picture = np.full((size, size), 0.3, np.float32)
    for i, radius in enumerate(range(size // 2, 2, -6)):
        grey = [0.05, 0.2, 0.35, 0.6, 0.9][i % 5]
        thickness = -1 if i % 4 == 3 else 1 + i % 3
        cv2.circle(picture, (size // 2 + 1, size // 2), radius, grey, thickness, cv2.LINE_AA)
    return picture


def square_spiral(size: int, gap: int) -> list[tuple[int, int]]:
    """The (row, col) pixels of a square spiral from the border inwards, `gap` pixels between turns."""
    path = []
    top, left, bottom, right = 1, 1, size - 2, size - 2
    while top <= bottom and left <= right:
        path += [(top, c) for c in range(left, right + 1)]
        path += [(r, right) for r in range(top + 1, bottom + 1)]
        if top + gap > bottom or left + gap > right:
            break
        path += [(bottom, c) for c in range(right - 1, left - 1, -1)]
        path += [(r, left) for r in range(bottom - 1, top + gap - 1, -1)]
        top, left, bottom, right = top + gap, left + gap, bottom - gap, right - gap
        path += [(top, c) for c in range(left - gap + 1, left)]
    return path


# --- natural-looking pictures ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_natural_pictures(seed):
    expected = assert_same_as_opencv(natural(seed, 128, 192))
    assert expected.sum() > 100  # the picture has edges to get right
    # and hysteresis matters on it: strong pixels alone are fewer
    assert opencv_canny(natural(seed, 128, 192)[None, None], 200, 200).sum() < expected.sum()


@pytest.mark.parametrize("seed", range(4))
def test_text(seed):
    assert assert_same_as_opencv(text(seed)).sum() > 200


@pytest.mark.parametrize("anti_aliased", [True, False])
def test_lines_at_many_angles(anti_aliased):
    assert assert_same_as_opencv(lines_at_angles(anti_aliased=anti_aliased)).sum() > 500


def test_circles():
    assert assert_same_as_opencv(circles()).sum() > 500


@pytest.mark.parametrize(
    ("h", "w"), [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (5, 3), (17, 31), (64, 64), (256, 384)]
)
def test_sizes(h, w):
    rng = np.random.default_rng(h * 1000 + w)
    assert_same_as_opencv(natural(h + w, h, w))
    assert_same_as_opencv(rng.random((h, w), dtype=np.float32))
    assert_same_as_opencv((rng.random((h, w)) > 0.5).astype(np.float32) * 0.3)


def test_a_batch_of_different_pictures():
    batch = np.stack([natural(10, 96, 80), natural(11, 96, 80), text(3, 96, 80), circles(96)[:, 8:88]])
    expected = assert_same_as_opencv(batch[:, None])
    assert all(not np.array_equal(expected[0], e) for e in expected[1:])
    alone = canny_edges(torch.from_numpy(batch[2:3, None]))
    assert torch.equal(canny_edges(torch.from_numpy(batch[:, None]))[2:3], alone)


@pytest.mark.parametrize(
    ("low", "high"), [(50, 150), (0, 0), (0, 80), (200, 100), (100.7, 200.2), (99.6, 199.6), (20, 400)]
)
def test_other_thresholds(low, high):
    picture = np.stack([natural(20, 64, 96), text(5, 64, 96)])[:, None]
    assert_same_as_opencv(picture, low, high)


# --- synthetic edge cases ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0, -3.0, 7.0])
def test_flat_pictures_have_no_edges(value):
    assert assert_same_as_opencv(np.full((20, 24), value, np.float32)).sum() == 0


@pytest.mark.parametrize(("row", "col"), [(10, 12), (0, 0), (0, 7), (19, 23), (10, 0)])
@pytest.mark.parametrize("grey", [1.0, level(30), level(60)])
def test_a_single_bright_pixel(row, col, grey):
    picture = np.zeros((20, 24), np.float32)
    picture[row, col] = grey
    assert_same_as_opencv(picture)


@pytest.mark.parametrize("cell", [1, 2, 3])
@pytest.mark.parametrize("contrast", [1.0, level(40), level(26)])
def test_checkerboards(cell, contrast):
    yy, xx = np.mgrid[0:33, 0:40]
    board = ((yy // cell + xx // cell) % 2).astype(np.float32) * contrast
    assert_same_as_opencv(board)
    assert_same_as_opencv(board[1:, 2:])  # the other phase at the border


@pytest.mark.parametrize(
    ("step", "edges_expected"), [(25, False), (26, True), (50, False), (51, True)]
)  # Sobel magnitudes 100, 104, 200, 204
def test_steps_at_exactly_the_thresholds(step, edges_expected):
    vertical = np.zeros((24, 30), np.float32)
    vertical[:, 15:] = level(step)
    horizontal = vertical.T.copy()
    # a weak step (26) only counts where it touches a strong one: put a short strong step below it
    if step == 26:
        vertical[20:, 15:] = level(60)
        horizontal[:, 20:] = np.where(np.arange(30)[:, None] >= 15, level(60), 0)
    assert bool(assert_same_as_opencv(vertical).any()) == edges_expected
    assert bool(assert_same_as_opencv(horizontal).any()) == edges_expected


@pytest.mark.parametrize("step", [25, 26, 50, 51, 100])
def test_diagonal_and_plateau_steps(step):
    yy, xx = np.mgrid[0:40, 0:40]
    for picture in [
        (xx > yy).astype(np.float32),  # 45 degrees down-right
        (xx + yy > 40).astype(np.float32),  # 45 degrees up-right
        (2 * xx > yy + 10).astype(np.float32),  # steeper
        (xx > 3 * yy).astype(np.float32),  # shallower
        np.clip((xx - 15) / 4, 0, 1).astype(np.float32),  # a ramp: a plateau of equal magnitudes
        np.clip((xx + yy - 30) / 6, 0, 1).astype(np.float32),  # a diagonal ramp
    ]:
        assert_same_as_opencv(picture * level(step))
        assert_same_as_opencv(picture * level(step) + level(60) * (yy > 34))  # strong at the bottom


# 7x7 pictures (0..255) whose middle pixel has a gradient (dx, dy) that the 22.5-degree limit bins
# across with OpenCV's TG22 = 13573 but diagonally with 13572 (first two), or the other way round with
# 13574 (last two), and where that changes the result. Found by a search; such (dx, dy) are rare.
NEAR_TAN_22_5 = [
    [[0, 193, 243, 8, 0, 210, 242], [0, 0, 0, 0, 69, 211, 65], [104, 0, 0, 0, 0, 0, 192],
     [214, 0, 0, 228, 108, 0, 31], [0, 31, 0, 9, 122, 0, 103], [231, 52, 0, 0, 0, 192, 15],
     [0, 0, 0, 29, 251, 0, 246]],  # (338, 140)
    [[0, 0, 202, 0, 0, 222, 0], [0, 0, 0, 0, 208, 42, 0], [0, 0, 0, 0, 0, 0, 0],
     [188, 0, 0, 238, 227, 0, 188], [230, 33, 0, 29, 222, 71, 0], [29, 0, 152, 0, 0, 164, 0],
     [0, 0, 0, 136, 18, 211, 87]],  # (676, 280)
    [[0, 113, 0, 197, 233, 106, 0], [0, 180, 150, 16, 145, 0, 216], [48, 237, 0, 0, 0, 253, 131],
     [0, 153, 0, 190, 180, 238, 0], [0, 182, 0, 40, 118, 0, 36], [0, 0, 232, 50, 0, 0, 222],
     [200, 0, 0, 0, 44, 250, 16]],  # (478, 198)
    [[0, 0, 166, 0, 211, 6, 0], [0, 18, 236, 88, 24, 95, 0], [249, 75, 0, 0, 0, 0, 60],
     [0, 0, 0, 242, 240, 223, 0], [0, 228, 0, 59, 138, 0, 187], [101, 0, 194, 0, 0, 0, 0],
     [0, 0, 125, 0, 0, 0, 0]],  # (618, 256)
]  # fmt: skip


@pytest.mark.parametrize("picture", NEAR_TAN_22_5)
def test_gradients_next_to_the_22_5_degree_limit(picture):
    picture = np.array(picture, np.float32)
    assert_same_as_opencv(level(picture))
    assert_same_as_opencv(level(picture[::-1].copy()))  # the other diagonal
    assert_same_as_opencv(level(picture.T.copy()))  # the 67.5-degree limit


def test_a_long_weak_spiral_held_by_one_strong_pixel():
    size = 128
    path = square_spiral(size, gap=4)
    picture = np.zeros((size, size), np.float32)
    rows, cols = np.array(path).T
    picture[rows, cols] = level(30)  # a 1-pixel line of 30: Sobel 120 beside it, 180 at most: weak
    assert assert_same_as_opencv(picture).sum() == 0
    picture[rows[2000], cols[2000]] = level(80)  # one strong spot half way along
    edges = assert_same_as_opencv(picture)
    assert len(path) > 4000 and edges.sum() > len(path) - 100  # one side of the line, its whole length


@pytest.mark.parametrize("period", [40, 16])
def test_long_weak_zigzags_held_by_one_strong_pixel(period):
    # the boundary of a region of 30 under 45-degree zigzags: a weak chain of diagonal steps that only
    # 8-connected hysteresis follows
    yy, xx = np.mgrid[0:48, 0:384]
    below = yy > 8 + np.abs(xx % period - period / 2)
    picture = below.astype(np.float32) * level(30)
    assert assert_same_as_opencv(picture).sum() == 0
    picture[below & (xx < 3)] = level(40)  # strong where it meets the zigzag, at the left end only
    assert assert_same_as_opencv(picture).sum() > 700


# --- quantisation, dtypes, devices ---------------------------------------------------------------


def test_quantisation_truncates_like_astype_uint8():
    k = torch.arange(1, 256, dtype=torch.float32)
    assert torch.equal(quantise((k - 0.01) / 255), (k - 1).to(torch.int32))
    assert torch.equal(quantise(k / 255), k.to(torch.int32))
    assert torch.equal(quantise((k - 0.5) / 255), (k - 1).to(torch.int32))
    assert quantise(torch.tensor([-0.5, 1.5, float("nan")])).tolist() == [0, 255, 0]
    # through the whole Canny: a step just below 51 / 255 is 50 (Sobel 200, not strong)
    step = torch.zeros(1, 1, 16, 16)
    step[..., 8:] = (51 - 0.01) / 255
    assert not canny_edges(step).any()
    step[..., 8:] = 51 / 255
    assert canny_edges(step).any()


def test_float64_and_half_inputs():
    picture = natural(30, 48, 64)[None, None]
    assert_same_as_opencv(picture.astype(np.float64))
    half = torch.from_numpy(picture).half()
    expected = opencv_canny(half.float().numpy())
    assert np.array_equal(canny_edges(half).numpy().astype(np.uint8), expected)


def test_rejects_a_gray_that_is_not_one_channel():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        canny_edges(torch.zeros(1, 3, 8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda():
    picture = np.stack([natural(40, 200, 240), text(7, 200, 240)])[:, None]
    edges = canny_edges(torch.from_numpy(picture).cuda())
    assert edges.device.type == "cuda"
    assert np.array_equal(edges.cpu().numpy().astype(np.uint8), opencv_canny(picture))


# --- the labelling under hysteresis --------------------------------------------------------------


def test_labelling_finds_each_components_smallest_id():
    rng = np.random.default_rng(0)
    count = 3000
    u, v = rng.integers(0, count, (2, 2400))
    graph = scipy.sparse.coo_matrix((np.ones(len(u)), (u, v)), shape=(count, count))
    _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
    smallest = np.full(component.max() + 1, count)
    np.minimum.at(smallest, component, np.arange(count))
    labels, _ = smallest_in_component(torch.from_numpy(u), torch.from_numpy(v), count)
    assert np.array_equal(labels.numpy(), smallest[component])


@pytest.mark.parametrize("order", ["forward", "backward", "shuffled"])
def test_labelling_a_long_chain_takes_about_log2_rounds(order):
    count = 1 << 14
    nodes = torch.arange(count)
    if order == "backward":
        nodes = nodes.flip(0)
    elif order == "shuffled":
        nodes = torch.randperm(count, generator=torch.Generator().manual_seed(0))
    labels, rounds = smallest_in_component(nodes[:-1], nodes[1:], count)
    assert (labels == 0).all()
    assert rounds <= 2 * math.log2(count)  # one pass per link would be 16383
