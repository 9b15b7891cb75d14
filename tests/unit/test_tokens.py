import pytest
import torch
from einops import rearrange

from ralu.tokens import (
    downsample_nearest,
    early_upsample,
    final_upsample,
    grid_ids,
    patchify,
    scatter_to_grid,
    sort_raster,
    strip_to_tokens,
    tokens_to_strip,
    unpatchify,
)

C = 16
OFFSETS = [(0.0, 0.0), (0.0, 0.5), (0.5, 0.0), (0.5, 0.5)]


def random_latent(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, C, h, w, generator=torch.Generator().manual_seed(seed))


def token_nearest_upsample(low_latent: torch.Tensor) -> torch.Tensor:
    """Every low-res token copied onto its 2x2 full-res token cells (token-level nearest)."""
    b, _, h, w = low_latent.shape
    grid = patchify(low_latent).reshape(b, h // 2, w // 2, -1)
    grid = grid.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    return unpatchify(grid.reshape(b, h * w, -1), 2 * h, 2 * w)


def test_patchify_matches_flux_rearrange():
    latent = random_latent(2, 6, 10)
    expected = rearrange(latent, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=2, pw=2)
    assert torch.equal(patchify(latent), expected)
    assert torch.equal(unpatchify(patchify(latent), 6, 10), latent)


def test_unpatchify_rejects_a_wrong_grid():
    with pytest.raises(ValueError, match="cannot tile"):
        unpatchify(torch.zeros(1, 6, 64), 4, 4)


def test_downsample_takes_every_second_pixel():
    latent = random_latent(1, 8, 12)
    low = downsample_nearest(latent)
    assert low.shape == (1, C, 4, 6)
    assert low[0, 3, 2, 5] == latent[0, 3, 4, 10]


def test_grid_ids_are_raster_row_col():
    ids = grid_ids(2, 3, batch=2)
    assert ids.shape == (2, 6, 2) and ids.dtype == torch.float32
    assert ids[1].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]


def test_early_upsample_layout_with_per_image_selections():
    low = random_latent(2, 8, 8)  # 4x4 low-res tokens
    tokens, ids = patchify(low), grid_ids(4, 4, 2)
    selected = torch.tensor([[1, 6, 15], [0, 2, 3]])
    new_tokens, new_ids, n_kept = early_upsample(tokens, ids, selected)
    assert n_kept == 13 and new_tokens.shape == (2, 13 + 12, 4 * C) and new_ids.shape == (2, 25, 2)
    for b in range(2):
        kept = [i for i in range(16) if i not in selected[b].tolist()]
        assert torch.equal(new_tokens[b, :13], tokens[b, kept])
        assert torch.equal(new_ids[b, :13], ids[b, kept])
        for j, parent in enumerate(selected[b].tolist()):
            for o, (dr, dc) in enumerate(OFFSETS):
                child = 13 + 4 * j + o
                assert torch.equal(new_tokens[b, child], tokens[b, parent])
                assert new_ids[b, child].tolist() == [parent // 4 + dr, parent % 4 + dc]


def test_early_upsample_orders_children_by_parent_and_rejects_duplicates():
    tokens, ids = patchify(random_latent(1, 8, 8)), grid_ids(4, 4, 1)
    forward = early_upsample(tokens, ids, torch.tensor([[2, 9]]))
    backward = early_upsample(tokens, ids, torch.tensor([[9, 2]]))
    assert torch.equal(forward[0], backward[0]) and torch.equal(forward[1], backward[1])
    with pytest.raises(ValueError, match="distinct"):
        early_upsample(tokens, ids, torch.tensor([[3, 3]]))


def test_round_trip_through_all_stages_gives_the_full_grid():
    low = random_latent(2, 8, 12)  # 4x6 low-res tokens
    tokens, ids = patchify(low), grid_ids(4, 6, 2)
    selected = torch.tensor([[0, 5, 7, 23], [4, 10, 11, 12]])
    tokens, ids, n_kept = early_upsample(tokens, ids, selected)
    tokens, ids = final_upsample(tokens, ids, n_kept)
    tokens, ids = sort_raster(tokens, ids)
    assert torch.equal(ids, grid_ids(8, 12, 2))
    assert torch.equal(unpatchify(tokens, 16, 24), token_nearest_upsample(low))


def test_upsampling_every_token_early_gives_the_nearest_upsampled_latent():
    low = random_latent(1, 8, 8)
    tokens, ids, n_kept = early_upsample(patchify(low), grid_ids(4, 4, 1), torch.arange(16)[None])
    assert n_kept == 0
    tokens, ids = sort_raster(*final_upsample(tokens, ids, n_kept))
    assert torch.equal(ids, grid_ids(8, 8, 1))
    assert torch.equal(unpatchify(tokens, 16, 16), token_nearest_upsample(low))


def test_no_selection_keeps_the_sequence():
    tokens, ids = patchify(random_latent(2, 4, 4)), grid_ids(2, 2, 2)
    new_tokens, new_ids, n_kept = early_upsample(tokens, ids, torch.zeros(2, 0, dtype=torch.long))
    assert n_kept == 4 and torch.equal(new_tokens, tokens) and torch.equal(new_ids, ids)


def test_final_upsample_puts_children_first_and_doubles_ids():
    tokens = torch.arange(3 * 64, dtype=torch.float32).reshape(1, 3, 64)
    ids = torch.tensor([[[1.0, 2.0], [0.5, 0.0], [0.5, 0.5]]])
    new_tokens, new_ids = final_upsample(tokens, ids, n_coarse=1)
    assert new_ids[0].tolist() == [[2, 4], [2, 5], [3, 4], [3, 5], [1, 0], [1, 1]]
    assert torch.equal(new_tokens[0, :4], tokens[0, :1].expand(4, -1))
    assert torch.equal(new_tokens[0, 4:], tokens[0, 1:])


def test_sort_raster_is_row_then_column():
    ids = torch.tensor([[[1.0, 0.5], [0.5, 2.0], [1.0, 0.0], [0.0, 3.0], [0.5, 1.0]]])
    tokens = torch.arange(5, dtype=torch.float32).reshape(1, 5, 1)
    sorted_tokens, sorted_ids = sort_raster(tokens, ids)
    expected = sorted(range(5), key=lambda i: tuple(ids[0, i].tolist()))
    assert sorted_tokens[0, :, 0].tolist() == expected
    assert sorted_ids[0].tolist() == sorted(ids[0].tolist())


def test_strip_layout():
    tokens = patchify(random_latent(2, 6, 8))  # 12 tokens
    strip = tokens_to_strip(tokens)
    assert strip.shape == (2, C, 2, 24)
    assert torch.equal(patchify(strip), tokens)
    assert torch.equal(strip_to_tokens(strip), tokens)
    # token 5 is the 2x2 patch at columns 10, 11, in (channel, ph, pw) order
    assert torch.equal(strip[1, :, :, 10:12].reshape(-1), tokens[1, 5])
    with pytest.raises(ValueError, match="channels"):
        tokens_to_strip(tokens, channels=4)


def test_scatter_to_grid_places_coarse_and_fine_tokens():
    low = random_latent(2, 8, 8)  # 4x4 low-res tokens, 8x8 full-res
    selected = torch.tensor([[5, 10], [0, 15]])
    tokens, ids, n_kept = early_upsample(patchify(low), grid_ids(4, 4, 2), selected)
    tokens = tokens.clone()
    tokens[:, n_kept:] = torch.randn(2, 8, 64)  # children evolve on their own in stage 2
    grid = scatter_to_grid(tokens, ids, n_kept, 8, 8)
    assert grid.shape == (2, C, 16, 16)
    cells = patchify(grid).reshape(2, 8, 8, 64)
    for b in range(2):
        for i in range(n_kept):
            r, c = (int(v) for v in ids[b, i].tolist())
            for dr in (0, 1):
                for dc in (0, 1):
                    assert torch.equal(cells[b, 2 * r + dr, 2 * c + dc], tokens[b, i])
        for i in range(n_kept, tokens.shape[1]):
            r, c = (int(2 * v) for v in ids[b, i].tolist())
            assert torch.equal(cells[b, r, c], tokens[b, i])


def test_scatter_to_grid_rejects_ids_off_the_grid():
    with pytest.raises(ValueError, match="outside"):
        scatter_to_grid(torch.zeros(1, 1, 64), torch.tensor([[[2.0, 0.0]]]), 1, 4, 4)
