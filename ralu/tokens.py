"""Token sequences of a mixed-resolution latent: patchify, ids, early / final upsampling, layouts.

A token is a 2x2 latent patch flattened in (channel, ph, pw) order, exactly as FLUX's
`rearrange(x, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=2, pw=2)`. Ids are float [row, col] in
the units of the grid the token lives on; a low-res token's children sit at +0 / +0.5 offsets.
"""

from __future__ import annotations

import torch

PATCH = 2
# Child order inside a group of 4 (dr, dc): fixed by the reference and by the re-noise grouping.
CHILD_OFFSETS = ((0.0, 0.0), (0.0, 0.5), (0.5, 0.0), (0.5, 0.5))


def downsample_nearest(latent: torch.Tensor) -> torch.Tensor:
    """Every second latent pixel in H and W: noise stays i.i.d. with the same std."""
    return latent[..., ::2, ::2]


def patchify(latent: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, C * 4), raster order over the token grid."""
    b, c, h, w = latent.shape
    if h % PATCH or w % PATCH:
        raise ValueError(f"latent height and width ({h}, {w}) must be even to form 2x2 tokens")
    patches = latent.reshape(b, c, h // PATCH, PATCH, w // PATCH, PATCH)
    return patches.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // PATCH) * (w // PATCH), c * PATCH * PATCH)


def unpatchify(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of patchify: (B, h/2 * w/2, C * 4) -> (B, C, h, w), with h, w in latent pixels."""
    b, length, dim = tokens.shape
    rows, cols = h // PATCH, w // PATCH
    if rows * cols != length or h % PATCH or w % PATCH:
        raise ValueError(f"{length} tokens cannot tile a {h}x{w} latent in 2x2 patches")
    c = dim // (PATCH * PATCH)
    patches = tokens.reshape(b, rows, cols, c, PATCH, PATCH)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def grid_ids(rows: int, cols: int, batch: int) -> torch.Tensor:
    """(B, rows * cols, 2) float32 [row, col] in raster order."""
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    ids = torch.stack([r.reshape(-1), c.reshape(-1)], dim=-1).to(torch.float32)
    return ids.unsqueeze(0).expand(batch, -1, -1).clone()


def _children(tokens: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token becomes 4 copies of itself (token-level nearest) at the CHILD_OFFSETS."""
    offsets = torch.tensor(CHILD_OFFSETS, dtype=ids.dtype, device=ids.device)
    child_tokens = tokens.repeat_interleave(len(CHILD_OFFSETS), dim=1)
    child_ids = (ids.unsqueeze(2) + offsets).reshape(ids.shape[0], -1, 2)
    return child_tokens, child_ids


def _gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values[b, index[b, i]] for (B, L, D) values and (B, K) index."""
    return values.gather(1, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


def early_upsample(
    tokens: torch.Tensor, ids: torch.Tensor, selected: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stage 1 -> 2: replace each selected low-res token by its 4 children.

    Returns the sequence [kept tokens (original order), children (by parent index)] and n_kept.
    Every image must select the same number K of distinct tokens (select_tokens guarantees it).
    """
    b, length, _ = tokens.shape
    parents = selected.to(device=tokens.device, dtype=torch.long).sort(dim=1).values
    is_selected = torch.zeros(b, length, dtype=torch.bool, device=tokens.device)
    is_selected.scatter_(1, parents, True)
    if not bool((is_selected.sum(dim=1) == parents.shape[1]).all()):
        raise ValueError("selected must hold distinct token indices in every row")
    n_kept = length - parents.shape[1]
    positions = torch.arange(length, device=tokens.device).expand(b, length)
    kept = positions[~is_selected].reshape(b, n_kept)
    child_tokens, child_ids = _children(_gather_rows(tokens, parents), _gather_rows(ids, parents))
    new_tokens = torch.cat([_gather_rows(tokens, kept), child_tokens], dim=1)
    new_ids = torch.cat([_gather_rows(ids, kept), child_ids], dim=1)
    return new_tokens, new_ids, n_kept


def final_upsample(
    tokens: torch.Tensor, ids: torch.Tensor, n_coarse: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 2 -> 3: [children of the first n_coarse tokens, the rest], ids doubled to full-res units."""
    child_tokens, child_ids = _children(tokens[:, :n_coarse], ids[:, :n_coarse])
    new_tokens = torch.cat([child_tokens, tokens[:, n_coarse:]], dim=1)
    new_ids = torch.cat([child_ids, ids[:, n_coarse:]], dim=1) * 2
    return new_tokens, new_ids


def sort_raster(tokens: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order every image's tokens by (row, col)."""
    # Two stable sorts, minor key first, give the lexicographic order without assuming a grid width.
    by_col = ids[..., 1].sort(dim=1, stable=True).indices
    by_row = ids[..., 0].gather(1, by_col).sort(dim=1, stable=True).indices
    order = by_col.gather(1, by_row)
    return _gather_rows(tokens, order), _gather_rows(ids, order)


def tokens_to_strip(tokens: torch.Tensor, channels: int = 16) -> torch.Tensor:
    """(B, L, C*4) -> (B, C, 2, 2L): token i is the 2x2 patch at columns 2i, 2i+1.

    Lets a model that only takes latent images run on an arbitrary token sequence, since
    patchify(strip) gives the tokens back in order.
    """
    b, length, dim = tokens.shape
    if dim != channels * PATCH * PATCH:
        raise ValueError(f"token width {dim} does not match {channels} channels of 2x2 patches")
    return unpatchify(tokens, PATCH, PATCH * length)


def strip_to_tokens(strip: torch.Tensor) -> torch.Tensor:
    return patchify(strip)


def scatter_to_grid(
    tokens: torch.Tensor, ids: torch.Tensor, n_coarse: int, full_rows: int, full_cols: int
) -> torch.Tensor:
    """Paint a stage-2 sequence (ids in low-res units) onto the full-res latent, for previews.

    Coarse tokens cover their 2x2 full-res cells with nearest copies; cells nobody covers stay 0.
    """
    full_tokens, full_ids = final_upsample(tokens, ids, n_coarse)
    cell = (full_ids[..., 0] * full_cols + full_ids[..., 1]).round().to(torch.long)
    inside = (full_ids[..., 0] < full_rows) & (full_ids[..., 1] < full_cols) & (full_ids >= 0).all(dim=-1)
    if not bool(inside.all()):
        raise ValueError(f"token ids fall outside the {full_rows}x{full_cols} full-res grid")
    b, _, dim = full_tokens.shape
    grid = full_tokens.new_zeros(b, full_rows * full_cols, dim)
    grid.scatter_(1, cell.unsqueeze(-1).expand(-1, -1, dim), full_tokens)
    return unpatchify(grid, PATCH * full_rows, PATCH * full_cols)
