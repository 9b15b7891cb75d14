"""SD3 position embeddings at fractional token positions (plain torch, no ComfyUI imports).

SD3's MMDiT adds a fixed table `pos_embed` of shape (1, P*P, D) to its patch-embedded tokens, P =
pos_embed_max_size, read row-major as a P x P grid; an image of h x w tokens gets the centred crop
`top = (P - h) // 2`, `left = (P - w) // 2` (ComfyUI's and SAI's `cropped_pos_embed`). The table is
stored in the checkpoint. SAI built it as a 2-D sin-cos table: table index i on either axis stands
for the position `scale * (i - origin)`, and an entry is
`[sincos_1d(col position, D/2), sincos_1d(row position, D/2)]` (the column half first), with
`sincos_1d(x, d) = [sin(x w_k), cos(x w_k)]` for `w_k = 10000^(-k / (d/2))`, k < d/2. As far as
public code shows, scale is 1/4 and origin (P - 64) / 2: 64 for SD3 Medium (P = 192; SD3.5 Large has
the same P), 160 for SD3.5 Medium (P = 384). The central 64 x 64 crop (a 1024 x 1024 image) spans
positions 0 .. 15.75. The fit below does not rely on these numbers: it reads them off the table.

RALU's stage 2 mixes low-resolution tokens at integer ids with children at +0.5: those need the
embedding between table entries. `fit_sincos_table` checks, once per model, that the table is that
analytic function and returns its parameters; `SinCosTable.embed` then evaluates it at any position.
A table that is not sin-cos falls back to `embed_at`, bilinear interpolation of the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

FREQ_BASE = 10000.0
# Positions are read off phases from the lowest frequency up; each rung multiplies the frequency by
# at most this, so a rung's position error stays far inside the next rung's unwrapping range.
_LADDER_RATIO = 8.0
_CHUNK_ELEMENTS = 1 << 23  # table entries compared at once when checking a fit


def _compute_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _frequencies(count: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """w_k = 10000^(-k / count), k < count: 1 down to about 1e-4."""
    return FREQ_BASE ** (-torch.arange(count, device=device, dtype=dtype) / count)


def sincos_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(...) positions -> (..., dim): [sin(pos w_k) for k < dim/2, cos(pos w_k) for k < dim/2]."""
    if dim % 2:
        raise ValueError(f"a sin-cos embedding needs an even width, not {dim}")
    angles = pos.unsqueeze(-1) * _frequencies(dim // 2, pos.device, pos.dtype)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def sincos_2d_embedding(rows: torch.Tensor, cols: torch.Tensor, dim: int, scale: float = 1.0) -> torch.Tensor:
    """SD3's 2-D sin-cos embedding at any float (rows, cols): (...) -> (..., dim), float64 (float32 on MPS).

    The position on each axis is `scale * value`; the first dim/2 channels encode the column, the
    last dim/2 the row, as in SAI's `get_2d_sincos_pos_embed` and ComfyUI's copy of it.
    """
    if dim % 4:
        raise ValueError(f"a 2-D sin-cos embedding needs a width divisible by 4, not {dim}")
    rows, cols = torch.broadcast_tensors(rows, cols)
    dtype = _compute_dtype(rows.device)
    half = dim // 2
    return torch.cat(
        [sincos_1d(cols.to(dtype) * scale, half), sincos_1d(rows.to(dtype) * scale, half)], dim=-1
    )


@dataclass(frozen=True)
class SinCosTable:
    """A position table that `fit_sincos_table` found to be analytic.

    Table index i (on either axis) stands for the position `scale * (i - origin)`.
    """

    dim: int
    scale: float
    row_origin: float
    col_origin: float
    max_error: float  # the largest |table - analytic| over the whole table

    def embed(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The embedding at table positions (rows, cols), fractional or not, beyond the table too."""
        dtype = _compute_dtype(rows.device)
        rows, cols = rows.to(dtype) - self.row_origin, cols.to(dtype) - self.col_origin
        return sincos_2d_embedding(rows, cols, self.dim, self.scale)


def _line(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Least-squares slope and intercept of y ~ a x + b."""
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc * xc).sum())
    return slope, float(y.mean()) - slope * float(x.mean())


def _fit_axis(halves: torch.Tensor) -> tuple[float, float]:
    """(n, d) 1-D sin-cos rows for indices 0..n-1 -> (a, b) with position(i) = a i + b.

    The lowest frequency gives every position without wrapping (|position| < pi / w_min, about 3e4);
    each higher rung only corrects that line by its wrapped phase residuals, and the top rung (w = 1)
    pins it to the table's precision.
    """
    n, d = halves.shape
    count = d // 2
    phase = torch.atan2(halves[:, :count], halves[:, count:])
    freqs = _frequencies(count, halves.device, halves.dtype)
    index = torch.arange(n, device=halves.device, dtype=halves.dtype)
    slope, intercept = _line(index, phase[:, -1] / freqs[-1])
    step = max(1, int(count * math.log(_LADDER_RATIO) / math.log(FREQ_BASE)))
    for k in [*range(count - 1 - step, 0, -step), 0]:
        d_slope, d_intercept = _line(index, _wrapped(phase[:, k], freqs[k], slope, intercept) / freqs[k])
        slope, intercept = slope + d_slope, intercept + d_intercept
    # Last, all frequencies at once: least squares in phase, so each weighs by its w^2.
    residual = _wrapped(phase, freqs, slope, intercept)
    d_slope, d_intercept = _line(index, (residual * freqs).sum(-1) / (freqs * freqs).sum())
    return slope + d_slope, intercept + d_intercept


def _wrapped(phase: torch.Tensor, freqs: torch.Tensor, slope: float, intercept: float) -> torch.Tensor:
    """phase - w * (slope i + intercept), wrapped into [-pi, pi); phase is (n, ...) over index i."""
    index = torch.arange(phase.shape[0], device=phase.device, dtype=phase.dtype)
    position = (slope * index + intercept).reshape(-1, *([1] * (phase.dim() - 1)))
    return torch.remainder(phase - freqs * position + math.pi, 2 * math.pi) - math.pi


def _max_error(grid: torch.Tensor, fit: SinCosTable) -> float:
    """max |grid - analytic| over a (P, P, D) grid, a block of rows at a time."""
    size, _, dim = grid.shape
    index = torch.arange(size, device=grid.device, dtype=_compute_dtype(grid.device))
    col_part = sincos_1d((index - fit.col_origin) * fit.scale, dim // 2).float()  # (P, D/2)
    row_part = sincos_1d((index - fit.row_origin) * fit.scale, dim // 2).float()  # (P, D/2)
    worst = torch.zeros((), device=grid.device)
    block = max(1, _CHUNK_ELEMENTS // (size * dim))
    for start in range(0, size, block):
        chunk = grid[start : start + block].float()
        worst = torch.maximum(worst, (chunk[..., : dim // 2] - col_part).abs().amax())
        rows = row_part[start : start + block].unsqueeze(1)
        worst = torch.maximum(worst, (chunk[..., dim // 2 :] - rows).abs().amax())
    return float(worst)


def default_tolerance(dtype: torch.dtype) -> float:
    """Largest |table - analytic| a stored sin-cos table may show: its rounding, with margin.

    Entries lie in [-1, 1], so storage rounds them by at most eps / 2: 2 eps allows four times that
    (1e-4 for float32 and wider, 2e-3 for float16, 1.6e-2 for bfloat16). A table that is not sin-cos
    misses by order 1.
    """
    return max(1e-4, 2 * torch.finfo(dtype).eps)


def fit_sincos_table(table: torch.Tensor, size: int, tol: float | None = None) -> SinCosTable | None:
    """The SinCosTable that reproduces `table` ((1, P*P, D) or (P*P, D)) within `tol`, else None.

    Scale and origins are fitted from the centre row and column of the table; the whole table is then
    checked against them. None when D is not divisible by 4, the table holds NaN / inf (ComfyUI's
    buffer before a checkpoint fills it), or any entry misses by more than `tol`
    (default: `default_tolerance(table.dtype)`).
    """
    dim = table.shape[-1]
    if table.numel() != size * size * dim or dim % 4 or size < 2:
        return None
    grid = table.detach().reshape(size, size, dim)
    work = _compute_dtype(grid.device)
    half = dim // 2
    col_slope, col_intercept = _fit_axis(grid[size // 2, :, :half].to(work))
    row_slope, row_intercept = _fit_axis(grid[:, size // 2, half:].to(work))
    scale = (col_slope + row_slope) / 2
    if not math.isfinite(scale) or abs(scale) < 1e-12:
        return None
    fit = SinCosTable(dim, scale, -row_intercept / row_slope, -col_intercept / col_slope, max_error=math.inf)
    if not (math.isfinite(fit.row_origin) and math.isfinite(fit.col_origin)):
        return None
    error = _max_error(grid, fit)
    limit = default_tolerance(table.dtype) if tol is None else tol
    if not error <= limit:  # also False for NaN
        return None
    return replace(fit, max_error=error)


def embed_at(table: torch.Tensor, size: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of the table at table positions: (...) -> (..., D) in the table's dtype.

    `align_corners=True` semantics: integer positions return table entries exactly, a position
    between entries weighs its neighbours linearly. Positions must lie in [0, P - 1].
    """
    rows, cols = torch.broadcast_tensors(rows, cols)
    if rows.numel() and (
        bool((rows < 0).any() | (rows > size - 1).any() | (cols < 0).any() | (cols > size - 1).any())
    ):
        raise ValueError(f"positions must lie inside the {size}x{size} position table")
    grid = table.reshape(size * size, -1)
    work = torch.float64 if table.dtype == torch.float64 else torch.float32
    rows = rows.to(device=table.device, dtype=work)
    cols = cols.to(device=table.device, dtype=work)
    r0 = rows.floor().clamp(0, size - 1)
    c0 = cols.floor().clamp(0, size - 1)
    wr = (rows - r0).unsqueeze(-1)
    wc = (cols - c0).unsqueeze(-1)
    r0, c0 = r0.long(), c0.long()
    r1, c1 = (r0 + 1).clamp(max=size - 1), (c0 + 1).clamp(max=size - 1)

    def entry(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return grid[r * size + c].to(work)

    top = entry(r0, c0) * (1 - wc) + entry(r0, c1) * wc
    bottom = entry(r1, c0) * (1 - wc) + entry(r1, c1) * wc
    return (top * (1 - wr) + bottom * wr).to(table.dtype)


def table_positions(
    ids: torch.Tensor, grid_rows: int, grid_cols: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """RALU token ids (..., 2) [row, col] on a grid_rows x grid_cols grid -> table (rows, cols).

    ComfyUI's centred crop: integer ids of that grid land on exactly the entries `cropped_pos_embed`
    gives an image of that many tokens (grid_rows = (latent_h + 1) // 2). Fractional ids (stage-2
    children at +0.5) land between entries.
    """
    if not (0 < grid_rows <= size and 0 < grid_cols <= size):
        raise ValueError(
            f"a {grid_rows}x{grid_cols} token grid does not fit the {size}x{size} position table"
        )
    top = (size - grid_rows) // 2
    left = (size - grid_cols) // 2
    return ids[..., 0] + top, ids[..., 1] + left


def embed_tokens(
    table: torch.Tensor,
    size: int,
    ids: torch.Tensor,
    grid_rows: int,
    grid_cols: int,
    fit: SinCosTable | None = None,
) -> torch.Tensor:
    """Position embeddings (..., D), in the table's dtype, for RALU token ids on the given grid.

    With a fit: the analytic embedding, except that integer positions take the table's own entries,
    so tokens at integer ids get exactly what SD3's forward adds to them. Without: `embed_at`.
    """
    rows, cols = table_positions(ids.to(table.device), grid_rows, grid_cols, size)
    if fit is None:
        return embed_at(table, size, rows, cols)
    out = fit.embed(rows, cols).to(table.dtype)
    on_entry = (rows == rows.round()) & (cols == cols.round())
    on_entry &= (rows >= 0) & (rows <= size - 1) & (cols >= 0) & (cols <= size - 1)
    if bool(on_entry.any()):
        flat = (rows[on_entry] * size + cols[on_entry]).long()
        out[on_entry] = table.reshape(size * size, -1)[flat]
    return out
