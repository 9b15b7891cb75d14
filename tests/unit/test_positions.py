"""ralu.positions against ComfyUI's own SD3 position code (mmdit.py), run on the CPU.

Tables are built with ComfyUI's `get_2d_sincos_pos_embed(D, P, scaling_factor, offset)`, the
function SAI's reference ships next to MMDiT. SD3_MEDIUM / SD35_MEDIUM are the layouts public code
gives for the real checkpoints (position = (index - (P - 64) / 2) / 4); the width is cut to 64 / 32
channels to keep the tests fast (the fit reads the same frequencies, fewer of them).
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import pytest
import torch

from ralu.positions import (
    SinCosTable,
    default_tolerance,
    embed_at,
    embed_tokens,
    fit_sincos_table,
    sincos_2d_embedding,
    table_positions,
)
from ralu.tokens import early_upsample, grid_ids

# (P, D, scaling_factor, offset): position = index / scaling_factor - offset
SD3_MEDIUM = (192, 64, 4.0, 16.0)  # origin 64, SD3 Medium / SD3.5 Large table size
SD35_MEDIUM = (384, 32, 4.0, 40.0)  # origin 160
UNIT = (32, 64, None, None)  # scale 1, origin 0: ComfyUI's get_2d_sincos_pos_embed with no scaling or offset


@pytest.fixture(scope="module")
def mmdit(comfy_inprocess):
    from comfy.ldm.modules.diffusionmodules import mmdit

    return mmdit


@functools.cache
def _comfy_table(mmdit, layout) -> torch.Tensor:
    size, dim, factor, offset = layout
    table = mmdit.get_2d_sincos_pos_embed(dim, size, scaling_factor=factor, offset=offset)
    return torch.from_numpy(table).float().unsqueeze(0)


def comfy_table(mmdit, layout, dtype=torch.float32) -> torch.Tensor:
    """(1, P*P, D) as SAI's formula (ComfyUI's copy) writes it, stored in dtype."""
    return _comfy_table(mmdit, layout).to(dtype)


@functools.cache
def fitted(mmdit, layout, dtype=torch.float32) -> SinCosTable:
    fit = fit_sincos_table(comfy_table(mmdit, layout, dtype), layout[0])
    assert fit is not None
    return fit


def comfy_crop(mmdit, table: torch.Tensor, size: int, rows: int, cols: int) -> torch.Tensor:
    """ComfyUI's MMDiT.cropped_pos_embed itself, for a latent of rows x cols tokens."""
    model = SimpleNamespace(
        x_embedder=SimpleNamespace(patch_size=(2, 2)),
        pos_embed=table,
        pos_embed_max_size=size,
        hidden_size=table.shape[-1],
    )
    return mmdit.MMDiT.cropped_pos_embed(model, (2 * rows, 2 * cols))


def half_offset_gap(scale: float) -> float:
    """Largest channel gap between the analytic embedding half-way between entries and the bilinear
    midpoint: sin(x)(1 - cos(w s / 2)) at w = 1. 7.8e-3 at SD3's scale 1/4, 0.122 at scale 1."""
    return 1 - math.cos(scale / 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("rows", "cols"), [(64, 64), (32, 32), (31, 45), (1, 7), (192, 192)])
def test_integer_ids_reproduce_cropped_pos_embed(mmdit, rows, cols, dtype):
    size = SD3_MEDIUM[0]
    table = comfy_table(mmdit, SD3_MEDIUM, dtype)
    expected = comfy_crop(mmdit, table, size, rows, cols)
    ids = grid_ids(rows, cols, batch=2)
    fit = fitted(mmdit, SD3_MEDIUM, dtype)
    for embedding in (
        embed_tokens(table, size, ids, rows, cols),
        embed_tokens(table, size, ids, rows, cols, fit),
    ):
        assert embedding.dtype == dtype and embedding.shape == (2, rows * cols, table.shape[-1])
        assert torch.equal(embedding, expected.expand(2, -1, -1))


@pytest.mark.parametrize("layout", [SD3_MEDIUM, SD35_MEDIUM, UNIT])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fit_reads_scale_and_origin_off_the_table(mmdit, layout, dtype):
    size, dim, factor, offset = layout
    fit = fitted(mmdit, layout, dtype)
    assert fit.dim == dim
    scale = 1.0 if factor is None else 1 / factor
    origin = 0.0 if offset is None else offset * factor
    # float32 tables pin the line to ~1e-9; rounding to 16 bits leaves ~1e-4 of an index
    assert fit.scale == pytest.approx(scale, rel=1e-5)
    assert fit.row_origin == pytest.approx(origin, abs=1e-3)
    assert fit.col_origin == pytest.approx(origin, abs=1e-3)
    assert fit.max_error <= default_tolerance(dtype)
    if dtype == torch.float32:
        assert fit.max_error < 1e-6


def test_comfy_linspace_formula_is_the_sd3_crop(mmdit):
    """ComfyUI's get_2d_sincos_pos_embed_torch(D, w, h, centre, magnitude) equals the crop of the SD3
    Medium layout for a square grid of h tokens with centre 7.875 (7.75 when P - h is odd) and
    magnitude (h - 1) / 8: with its defaults (7.5, 7.5) it stretches every size over [0, 15] instead.
    mmdit.py's own note "7.875 ... matches exactly for 1024 res" is the h = 64 case."""
    size, dim = SD3_MEDIUM[:2]
    table = comfy_table(mmdit, SD3_MEDIUM)
    for h in (64, 32, 47, 128):
        centre = 7.875 if (size - h) % 2 == 0 else 7.75
        formula = mmdit.get_2d_sincos_pos_embed_torch(dim, h, h, centre, (h - 1) / 8)
        assert torch.allclose(formula, comfy_crop(mmdit, table, size, h, h)[0], atol=1e-5)
    ours = fitted(mmdit, SD3_MEDIUM)
    rows, cols = table_positions(grid_ids(64, 64, batch=1)[0], 64, 64, size)
    assert torch.allclose(
        ours.embed(rows, cols).float(),
        mmdit.get_2d_sincos_pos_embed_torch(dim, 64, 64, 7.875, 7.875),
        atol=1e-5,
    )


@pytest.mark.parametrize("layout", [SD3_MEDIUM, UNIT])
def test_analytic_is_the_table_at_integer_positions(mmdit, layout):
    size = layout[0]
    table = comfy_table(mmdit, layout)
    fit = fitted(mmdit, layout)
    index = torch.arange(size, dtype=torch.float64)
    rows, cols = torch.meshgrid(index, index, indexing="ij")
    analytic = fit.embed(rows.reshape(-1), cols.reshape(-1))
    assert analytic.dtype == torch.float64
    assert torch.allclose(analytic.float(), table[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("layout", [SD3_MEDIUM, UNIT])
def test_half_positions_are_the_table_at_double_resolution(mmdit, layout):
    """The analytic embedding at index + 0.5 is the entry SAI's formula gives a table twice as fine
    (2P entries, scaling factor doubled, same offset) at its odd index."""
    size, dim, factor, offset = layout
    fine = comfy_table(mmdit, (2 * size, dim, 2 * (factor or 1.0), offset)).reshape(2 * size, 2 * size, dim)
    fit = fitted(mmdit, layout)
    half = torch.arange(size - 1, dtype=torch.float64) + 0.5
    rows, cols = torch.meshgrid(half, half, indexing="ij")
    analytic = fit.embed(rows, cols).float()
    assert torch.allclose(analytic, fine[1:-1:2, 1:-1:2], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("layout", "scale"), [(SD3_MEDIUM, 0.25), (UNIT, 1.0)])
def test_bilinear_is_the_midpoint_and_misses_the_analytic_by_the_known_gap(mmdit, layout, scale):
    size = layout[0]
    table = comfy_table(mmdit, layout)
    fit = fitted(mmdit, layout)
    reach = min(16, (size - 1) // 2)  # up to 32 steps around the centre: turns of the w = 1 channel
    lo, hi = size // 2 - reach, size // 2 + reach
    g = table.reshape(size, size, -1)[lo : hi + 1, lo : hi + 1]
    start = torch.arange(lo, hi, dtype=torch.float64)
    midpoints = {
        (0.0, 0.5): (g[:-1, :-1] + g[:-1, 1:]) / 2,
        (0.5, 0.0): (g[:-1, :-1] + g[1:, :-1]) / 2,
        (0.5, 0.5): (g[:-1, :-1] + g[:-1, 1:] + g[1:, :-1] + g[1:, 1:]) / 4,
    }
    for (dr, dc), midpoint in midpoints.items():
        rows, cols = torch.meshgrid(start + dr, start + dc, indexing="ij")
        bilinear = embed_at(table, size, rows, cols)
        assert torch.allclose(bilinear, midpoint, atol=1e-6)
        gap = (fit.embed(rows, cols).float() - bilinear).abs().amax().item()
        # the w = 1 channel sits near sin(x) = +-1 somewhere on the grid: the bound is nearly reached
        assert 0.9 * half_offset_gap(scale) < gap <= half_offset_gap(scale) + 1e-6


def test_stage2_children_sit_half_way(mmdit):
    """RALU stage 2 on an 8 x 12 low-res grid: kept tokens get their cropped_pos_embed entry, each
    child the double-resolution table entry at parent * 2 + (0 | 1)."""
    size, dim, factor, offset = SD3_MEDIUM
    table = comfy_table(mmdit, SD3_MEDIUM)
    fit = fitted(mmdit, SD3_MEDIUM)
    rows, cols = 8, 12
    ids = grid_ids(rows, cols, batch=1)
    selected = torch.tensor([[0, 5, 13, 50, 95]])
    tokens = torch.zeros(1, rows * cols, 4)
    _, new_ids, n_kept = early_upsample(tokens, ids, selected)
    embedding = embed_tokens(table, size, new_ids, rows, cols, fit)[0]
    crop = comfy_crop(mmdit, table, size, rows, cols)[0]
    kept = (new_ids[0, :n_kept, 0] * cols + new_ids[0, :n_kept, 1]).long()
    assert torch.equal(embedding[:n_kept], crop[kept])
    fine = comfy_table(mmdit, (2 * size, dim, 2 * factor, offset)).reshape(2 * size, 2 * size, dim)
    top, left = (size - rows) // 2, (size - cols) // 2
    child = new_ids[0, n_kept:]
    fine_rows = (2 * (child[:, 0] + top)).long()
    fine_cols = (2 * (child[:, 1] + left)).long()
    assert torch.allclose(embedding[n_kept:], fine[fine_rows, fine_cols], atol=1e-5)
    bilinear = embed_tokens(table, size, new_ids, rows, cols)[0]
    assert torch.equal(bilinear[:n_kept], crop[kept])
    assert 0 < (bilinear[n_kept:] - embedding[n_kept:]).abs().amax() <= half_offset_gap(0.25) + 1e-6


def test_fit_refuses_tables_that_are_not_this_sincos(mmdit):
    size, dim = 48, 64
    generator = torch.Generator().manual_seed(0)
    assert fit_sincos_table(torch.randn(1, size * size, dim, generator=generator), size) is None
    assert fit_sincos_table(torch.rand(1, size * size, dim, generator=generator) * 2 - 1, size) is None
    assert fit_sincos_table(torch.full((1, size * size, dim), float("nan")), size) is None
    assert fit_sincos_table(torch.zeros(1, size * size, dim), size) is None
    table = comfy_table(mmdit, (size, dim, 4.0, 4.0))
    assert fit_sincos_table(table, size) is not None
    swapped = torch.cat([table[..., dim // 2 :], table[..., : dim // 2]], dim=-1)  # row half first
    assert fit_sincos_table(swapped, size) is None
    noisy = table + 1e-2 * torch.randn(table.shape, generator=generator)
    assert fit_sincos_table(noisy, size) is None
    assert fit_sincos_table(noisy, size, tol=0.1) is not None
    assert fit_sincos_table(table[..., :-2], size) is None  # width not divisible by 4


def test_sincos_2d_embedding_layout():
    """Column half first, sin before cos, w_k = 10000^(-k / (D/4)), any float position."""
    rows, cols = torch.tensor([0.3, -2.0]), torch.tensor([1.7, 5.25])
    emb = sincos_2d_embedding(rows, cols, 8, scale=0.5)
    freqs = torch.tensor([1.0, 0.01], dtype=torch.float64)
    for half, pos in ((emb[:, :4], cols), (emb[:, 4:], rows)):
        angles = (pos.double() * 0.5)[:, None] * freqs
        assert torch.allclose(half, torch.cat([angles.sin(), angles.cos()], dim=-1))
    fit = SinCosTable(dim=8, scale=0.5, row_origin=1.0, col_origin=-1.0, max_error=0.0)
    assert torch.allclose(fit.embed(rows.double() + 1.0, cols.double() - 1.0), emb, atol=1e-12)


def test_positions_outside_the_table_are_refused():
    table = torch.zeros(1, 16 * 16, 8)
    with pytest.raises(ValueError, match="inside"):
        embed_at(table, 16, torch.tensor([15.5]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="does not fit"):
        table_positions(grid_ids(17, 4, batch=1), 17, 4, 16)
    rows, cols = table_positions(torch.tensor([[0.0, 0.5], [15.0, 3.0]]), 16, 4, 16)
    assert rows.tolist() == [0.0, 15.0] and cols.tolist() == [6.5, 9.0]
