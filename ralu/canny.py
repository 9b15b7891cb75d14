"""OpenCV's Canny (cv2.Canny with its defaults) in plain torch, pixel for pixel, on any device.

The steps are OpenCV's (imgproc/src/canny.cpp, aperture 3, L1 gradient), in integers where it uses
integers, so there is no rounding to disagree on:
1. 3x3 Sobel dx, dy of the uint8 picture, the border replicated.
2. Magnitude |dx| + |dy|.
3. Non-maximum suppression: the gradient's direction is binned with tan(22.5 deg) as the fixed-point
   constant TG22 (CANNY_SHIFT 15 bits) and the magnitude compared with the two neighbours across the
   edge, strictly on one side and not strictly on the other for the axis bins, strictly on both for
   the diagonals, exactly as OpenCV does; the magnitude outside the picture is 0.
4. Thresholds: a pixel that survives is weak if its magnitude is > low, strong if > high.
5. Hysteresis: the weak pixels 8-connected to a strong one through weak pixels are edges too. Done
   as connected-component labelling of the candidate pixels (hooking and pointer jumping), in a
   number of rounds that grows with the logarithm of the longest chain, not with its length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CANNY_LOW = 100
CANNY_HIGH = 200
CANNY_SHIFT = 15
TG22 = int(0.4142135623730950488016887242097 * (1 << CANNY_SHIFT) + 0.5)  # tan(22.5 deg), 13573
# Hysteresis: labelling rounds between two convergence checks (each check waits for the device).
ROUNDS_PER_CHECK = 4
JUMPS_PER_ROUND = 2


def canny_edges(gray: torch.Tensor, low: float = CANNY_LOW, high: float = CANNY_HIGH) -> torch.Tensor:
    """(B, 1, H, W) gray in [0, 1] -> (B, 1, H, W) float edges as 0 / 1, on gray's device.

    Equal, pixel for pixel, to cv2.Canny(gray_u8, low, high) with OpenCV's defaults (aperture 3,
    L2gradient=False), where gray_u8 = floor(clip(gray, 0, 1) * 255): the quantisation truncates as
    numpy's astype(np.uint8) does (a gray just below k/255 is k - 1), computed in gray's dtype
    (float32 for half types). Thresholds are floored to integers and swapped when low > high, as
    OpenCV does.
    """
    if gray.dim() != 4 or gray.shape[1] != 1:
        raise ValueError(f"gray must be (B, 1, H, W), got {tuple(gray.shape)}")
    low_i, high_i = sorted((math.floor(low), math.floor(high)))
    image = quantise(gray)
    dx, dy = sobel(image)
    candidate, strong = suppress_non_maxima(dx, dy, low_i, high_i)
    return hysteresis(candidate, strong).to(torch.float32)


def quantise(gray: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> int32 0..255, truncating like numpy's astype(np.uint8) of clip(gray, 0, 1) * 255."""
    if gray.dtype not in (torch.float32, torch.float64):
        gray = gray.to(torch.float32)
    scaled = torch.nan_to_num(gray, nan=0.0).clamp(0.0, 1.0) * 255.0
    return scaled.floor().to(torch.int32)


def _replicate_pad(image: torch.Tensor) -> torch.Tensor:
    """One pixel of OpenCV's BORDER_REPLICATE around (B, 1, H, W), for integer tensors too."""
    rows = torch.cat([image[..., :1, :], image, image[..., -1:, :]], dim=-2)
    return torch.cat([rows[..., :1], rows, rows[..., -1:]], dim=-1)


def sobel(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int (B, 1, H, W) -> OpenCV's aperture-3 Sobel dx and dy (int32), border replicated."""
    h, w = image.shape[-2:]
    padded = _replicate_pad(image)
    smooth_down = padded[..., 0:h, :] + 2 * padded[..., 1 : h + 1, :] + padded[..., 2 : h + 2, :]
    smooth_across = padded[..., 0:w] + 2 * padded[..., 1 : w + 1] + padded[..., 2 : w + 2]
    dx = smooth_down[..., 2 : w + 2] - smooth_down[..., 0:w]
    dy = smooth_across[..., 2 : h + 2, :] - smooth_across[..., 0:h, :]
    return dx, dy


def suppress_non_maxima(
    dx: torch.Tensor, dy: torch.Tensor, low: int, high: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's L1 magnitude, non-maximum suppression and thresholds: bool (candidate, strong).

    candidate: the local maxima with magnitude > low (OpenCV's map value 0 or 2); strong: those > high.
    """
    h, w = dx.shape[-2:]
    magnitude = dx.abs() + dy.abs()
    ring = F.pad(magnitude, (1, 1, 1, 1))  # the magnitude outside the picture is 0

    def neighbour(row: int, col: int) -> torch.Tensor:
        return ring[..., 1 + row : 1 + row + h, 1 + col : 1 + col + w]

    x = dx.abs()
    y = dy.abs() << CANNY_SHIFT
    tg22x = x * TG22
    tg67x = tg22x + (x << (CANNY_SHIFT + 1))
    across = y < tg22x  # gradient within 22.5 deg of the x axis: compare left and right
    down = ~across & (y > tg67x)  # within 22.5 deg of the y axis: compare above and below
    same_sign = (dx < 0) == (dy < 0)  # OpenCV's (xs ^ ys) >= 0: the diagonal runs top-left to bottom-right
    m = magnitude
    across_max = (m > neighbour(0, -1)) & (m >= neighbour(0, 1))
    down_max = (m > neighbour(-1, 0)) & (m >= neighbour(1, 0))
    diagonal_max = torch.where(
        same_sign,
        (m > neighbour(-1, -1)) & (m > neighbour(1, 1)),
        (m > neighbour(-1, 1)) & (m > neighbour(1, -1)),
    )
    is_max = torch.where(across, across_max, torch.where(down, down_max, diagonal_max))
    candidate = is_max & (m > low)
    return candidate, candidate & (m > high)


def _neighbour_pairs(node: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8-connected pairs of candidates, each once, as node ids (u, v), from the (B, 1, H, W) map
    of node ids (-1 where there is no candidate)."""
    h, w = node.shape[-2:]
    us, vs = [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # right, down-left, down, down-right
        first = node[..., 0 : h - dr, max(0, -dc) : w - max(0, dc)]
        second = node[..., dr:h, max(0, dc) : w - max(0, -dc)]
        both = (first >= 0) & (second >= 0)
        us.append(first[both])
        vs.append(second[both])
    return torch.cat(us), torch.cat(vs)


def hysteresis(candidate: torch.Tensor, strong: torch.Tensor) -> torch.Tensor:
    """bool (B, 1, H, W): the candidates 8-connected through candidates to a strong pixel.

    Connected components of the graph of the candidates (a thin set after non-maximum suppression)
    and their 8-neighbour pairs. The nodes are numbered strong pixels first, so a component holds a
    strong pixel exactly when its smallest node id is below the number of strong pixels.
    """
    flat_candidate, flat_strong = candidate.flatten(), strong.flatten()
    strong_pixels = flat_strong.nonzero().squeeze(1)
    pixels = torch.cat([strong_pixels, (flat_candidate & ~flat_strong).nonzero().squeeze(1)])
    edges = torch.zeros_like(flat_candidate)
    if strong_pixels.numel() == 0:
        return edges.view(candidate.shape)
    node = torch.full(candidate.shape, -1, dtype=torch.int64, device=candidate.device)
    node.view(-1)[pixels] = torch.arange(pixels.numel(), device=pixels.device)
    labels, _ = smallest_in_component(*_neighbour_pairs(node), pixels.numel())
    edges[pixels] = labels < strong_pixels.numel()
    return edges.view(candidate.shape)


def smallest_in_component(u: torch.Tensor, v: torch.Tensor, count: int) -> tuple[torch.Tensor, int]:
    """For nodes 0..count-1 joined by the pairs (u[i], v[i]): each node's smallest connected node id,
    and the rounds it took.

    Every label names a node of its own component, at first the node itself. A round hooks, for each
    pair, the nodes that the two labels name onto the smaller label (scatter amin), then jumps
    pointers (label <- label of the labelled node): a label travels along a chain of length L in
    about log2(L) rounds, not L. Labels only decrease, so a batch of rounds that changes nothing
    means every component carries its smallest id; convergence is checked once per batch (the check
    waits for the device).
    """
    labels = torch.arange(count, device=u.device)
    rounds = 0
    while True:
        before = labels
        for _ in range(ROUNDS_PER_CHECK):
            label_u, label_v = labels[u], labels[v]
            smaller = torch.minimum(label_u, label_v)
            labels = labels.scatter_reduce(0, label_u, smaller, reduce="amin")
            labels = labels.scatter_reduce(0, label_v, smaller, reduce="amin")
            for _ in range(JUMPS_PER_ROUND):
                labels = labels[labels]
        rounds += ROUNDS_PER_CHECK
        if torch.equal(labels, before):
            return labels, rounds
