"""The three RALU stages as one Euler loop over token sets, independent of any host.

The host supplies the model as `predict_x0(tokens, ids, grid, sigma)`: `grid` is `(rows, cols)` when
the tokens are a whole grid in raster order (stages 1 and 3, which a stock model call handles), and
None for stage 2's mixed-resolution set, which only makes sense with its ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .edges import select_tokens
from .plan import Plan, plan_sigmas
from .renoise import draw_renoise, renoise
from .tokens import (
    downsample_nearest,
    early_upsample,
    final_upsample,
    grid_ids,
    patchify,
    scatter_to_grid,
    sort_raster,
    unpatchify,
)

PredictX0 = Callable[[torch.Tensor, torch.Tensor, "tuple[int, int] | None", float], torch.Tensor]
# (x0 tokens of the low-res grid, rows, cols) -> edge score per low-res token, (B, rows * cols)
EdgeScores = Callable[[torch.Tensor, int, int], torch.Tensor]
# (step index over all stages, a function that builds that step's x0 as a full-res latent) -> None.
# Building the full-res grid costs a scatter per step, so only a previewer that shows it calls it.
OnStep = Callable[[int, Callable[[], torch.Tensor]], None]
# (stage index 0, 1 or 2) -> None, called before each stage's first model call: the token layout
# changes there, so whatever the host keeps per layout (a step cache) starts afresh.
OnStage = Callable[[int], None]


@dataclass
class RaluResult:
    latent: torch.Tensor
    selected: torch.Tensor  # (B, K) low-res token indices upsampled early
    low_res_grid: tuple[int, int]
    tokens_per_stage: tuple[int, int, int]
    calls_per_stage: list[int]
    # Steps a host's step cache answered from its cache instead of the model, per stage (None: no cache).
    steps_skipped: list[int] | None = None
    # What scored the edges instead of the host's VAE decode after it ran out of memory (None: it did not).
    edge_fallback: str | None = None


def early_upsample_count(up_ratio: float, low_res_tokens: int) -> int:
    return math.floor(low_res_tokens * up_ratio)


def _euler_stage(
    tokens: torch.Tensor,
    ids: torch.Tensor,
    grid: tuple[int, int] | None,
    sigmas: torch.Tensor,
    predict_x0: PredictX0,
    after_step: Callable[[torch.Tensor], None],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs `len(sigmas) - 1` Euler steps; returns the final tokens and the last x0 (Tweedie)."""
    x0 = tokens
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        x0 = predict_x0(tokens, ids, grid, sigma)
        velocity = (tokens - x0) / sigma
        tokens = tokens + (sigma_next - sigma) * velocity
        after_step(x0)
    return tokens, x0


def sample_ralu(
    noise: torch.Tensor,
    plan: Plan,
    predict_x0: PredictX0,
    edge_scores: EdgeScores,
    generators: Sequence[torch.Generator],
    forced: torch.Tensor | None = None,
    on_step: OnStep | None = None,
    on_stage: OnStage | None = None,
) -> RaluResult:
    """Denoises `noise` (B, C, H, W) at sigma 1 into a full-res latent with the plan's three stages.

    `forced` (B, rows * cols) bool marks low-res tokens that must be upsampled early whatever their
    edge score. Image b's tie-breaks between equal edge scores and its re-noise are drawn from
    generators[b] (ralu.streams.image_generators), so seeded generators make the run repeatable and
    each image independent of its batch.
    """
    batch, _, height, width = noise.shape
    if height % 4 or width % 4:
        raise ValueError(f"latent height and width must be multiples of 4, got {height}x{width}")
    rows, cols = height // 4, width // 4
    sigmas = plan_sigmas(plan)
    steps_done = 0
    calls_per_stage = [0, 0, 0]

    def stage_hooks(stage: int, to_full_grid: Callable[[torch.Tensor], torch.Tensor]):
        if on_stage is not None:
            on_stage(stage)

        def call(tokens, ids, grid, sigma):
            calls_per_stage[stage] += 1
            return predict_x0(tokens, ids, grid, sigma)

        def after_step(x0: torch.Tensor) -> None:
            nonlocal steps_done
            if on_step is not None:
                on_step(steps_done, lambda: to_full_grid(x0))
            steps_done += 1

        return call, after_step

    # Stage 1: the whole image at half resolution, a plain grid.
    ids = grid_ids(rows, cols, batch).to(noise.device)
    tokens = patchify(downsample_nearest(noise))
    l1 = tokens.shape[1]
    all_coarse = rows * cols
    tokens, x0 = _euler_stage(
        tokens,
        ids,
        (rows, cols),
        sigmas[0],
        *stage_hooks(0, lambda t: scatter_to_grid(t, ids, all_coarse, 2 * rows, 2 * cols)),
    )

    # 1 -> 2: upsample the tokens around edges (and the forced ones) early.
    k = early_upsample_count(plan.up_ratio, rows * cols)
    if k > 0 or (forced is not None and bool(forced.any())):
        scores = edge_scores(x0, rows, cols)
    else:
        scores = torch.zeros(batch, rows * cols, device=noise.device)
    selected = select_tokens(scores, k, forced, generators)
    tokens, ids, n_coarse = early_upsample(tokens, ids, selected.to(tokens.device))
    noise_2 = draw_renoise(tuple(tokens.shape), (n_coarse, tokens.shape[1]), plan.gamma, generators)
    tokens = renoise(tokens, plan.betas[0], plan.alphas[0], noise_2.to(tokens))
    l2 = tokens.shape[1]
    tokens, _ = _euler_stage(
        tokens,
        ids,
        None,
        sigmas[1],
        *stage_hooks(1, lambda t: scatter_to_grid(t, ids, n_coarse, 2 * rows, 2 * cols)),
    )

    # 2 -> 3: everything still coarse is upsampled; from here on it is the full-res grid.
    tokens, ids = final_upsample(tokens, ids, n_coarse)
    noise_3 = draw_renoise(tuple(tokens.shape), (0, 4 * n_coarse), plan.gamma, generators)
    tokens = renoise(tokens, plan.betas[1], plan.alphas[1], noise_3.to(tokens))
    tokens, ids = sort_raster(tokens, ids)
    tokens, _ = _euler_stage(
        tokens,
        ids,
        (2 * rows, 2 * cols),
        sigmas[2],
        *stage_hooks(2, lambda t: unpatchify(t, height, width)),
    )

    return RaluResult(
        unpatchify(tokens, height, width), selected, (rows, cols), (l1, l2, tokens.shape[1]), calls_per_stage
    )
