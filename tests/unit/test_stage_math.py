"""Each stage of sample_ralu starts where flow matching says, checked with an exact denoiser.

With the oracle of test_sampler (its x0 is the target whatever the input), an Euler step keeps
x = (1 - sigma) x0 + sigma eps with eps unchanged, so each model call shows what the stage
transitions made of the latent:

- the signal: a run on a target minus the same run (same noise, same streams) on target 0 is exactly
  (1 - sigma) x0 at every call (docs/algorithm.md: beta_k e_k = s_k, the next stage's start progress);
- the noise, on target 0, as eps = x / sigma at a stage's first call. After a transition the 4
  children of a parent share beta_k (1 - e_k) eps = alpha_k eps / Z, and the re-noise n' (covariance
  I + gamma 11^T per group, gamma = -1/Z^2) cancels that sharing ("Why the re-noise works"): the
  children's eps has covariance I. A token not upsampled at a transition gets independent n' on top
  of its eps / Z: variance 1 + var(eps) / Z^2, as the reference does it. So a token that stays coarse
  through stage 2 carries 1 + 1/Z^2 into stage 3, and its children keep a covariance of 1/Z^4.

Z = 2.5 (gamma = -0.16) makes every correlation the re-noise has to cancel large. The smallest sample
is stage 2's kept tokens, 432 4-vectors x 64 channels x 2 images: a diagonal covariance entry has a
standard error of about 0.007. Over seeds 0-19 a correct run stays within 0.019 of every expected
covariance; each mutation below moves the one that catches it by 0.12 or more. TOL sits between.

Mutations tried in a scratch worktree, and the tests here that fail on each:
- alpha and beta swapped at 1 -> 2 (renoise(tokens, alphas[0], betas[0], ...)): signal, stage 2 and
  stage 3 noise; swapped at 2 -> 3: signal, stage 3 noise
- stage 3 re-noised with stage 2's betas[0] / alphas[0]: signal, stage 3 noise
- gamma 0 (i.i.d. re-noise) at both transitions, at 1 -> 2 only, at 2 -> 3 only: the noise test of
  that stage
- stage 2's grouped range (0, L) instead of (n_coarse, L) (kept tokens correlated in fours) or
  (0, 4 k) (groups out of step with the children): stage 2 noise
- stage 3's grouped range (L - 4 n_coarse, L) instead of (0, 4 n_coarse), or its re-noise added after
  sort_raster (groups of 4 raster neighbours instead of 2x2 children): stage 3 noise
- edge_scores(tokens, ...) instead of edge_scores(x0, ...): the edge scorer's input
"""

import pytest
import torch

from ralu.plan import make_plan
from ralu.sampler import sample_ralu
from ralu.streams import image_generators
from ralu.tokens import patchify, unpatchify
from tests.unit.test_sampler import edge_scores_top_left, oracle

BATCH, CHANNELS, SIZE = 2, 16, 192  # a 48 x 48 low-res grid, 96 x 96 at full res
Z = 2.5
PLAN = make_plan((2, 2, 2), (0.3, 0.5, 1.0), 0.25, shifts=(3.0, 3.0, 3.0), z=Z)
TOL = 0.05
EYE = torch.eye(4, dtype=torch.float64)
ONES = torch.ones(4, 4, dtype=torch.float64)


def latent(seed: int) -> torch.Tensor:
    return torch.randn(BATCH, CHANNELS, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def blocky_target(seed: int) -> torch.Tensor:
    """A target whose 4 full-res tokens under each low-res token are equal, so that the oracle's x0 of
    a child is its parent's: the nearest copy carries the signal over exactly."""
    low_res = patchify(latent(seed)[..., ::2, ::2]).reshape(BATCH, SIZE // 4, SIZE // 4, -1)
    full = low_res.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    return unpatchify(full.reshape(BATCH, (SIZE // 2) ** 2, -1), SIZE, SIZE)


def recorded_run(target: torch.Tensor, noise: torch.Tensor, seed: int, edge_scores=edge_scores_top_left):
    """(calls as (tokens, ids, sigma, x0), result) of one run with the oracle."""
    calls = []
    predict = oracle(target, [])

    def record(tokens, ids, grid, sigma):
        x0 = predict(tokens, ids, grid, sigma)
        calls.append((tokens.clone(), ids.clone(), sigma, x0))
        return x0

    result = sample_ralu(noise, PLAN, record, edge_scores, image_generators(seed, range(BATCH)))
    return calls, result


def stage_entries(calls):
    n1, n2, _ = PLAN.steps
    return calls[0], calls[n1], calls[n1 + n2]


def groups_cov(groups: torch.Tensor) -> torch.Tensor:
    """(B, G, 4, D) zero-mean values -> the 4x4 covariance of a group, pooled over B, G and D."""
    samples = groups.permute(0, 1, 3, 2).reshape(-1, 4).double()
    return samples.T @ samples / samples.shape[0]


def eps_at_entry(entry) -> torch.Tensor:
    tokens, _, sigma, _ = entry
    return tokens / sigma


def stage2_groups(calls, result):
    """eps at stage 2's start: (kept tokens as consecutive 4-vectors, children by parent)."""
    eps = eps_at_entry(stage_entries(calls)[1])
    k = result.selected.shape[1]
    n_kept = eps.shape[1] - 4 * k
    kept = eps[:, : n_kept - n_kept % 4].reshape(BATCH, -1, 4, eps.shape[-1])
    return kept, eps[:, n_kept:].reshape(BATCH, k, 4, eps.shape[-1])


def stage3_groups(calls, result):
    """eps at stage 3's start as 2x2 full-res blocks: (blocks of coarse parents, of early parents)."""
    tokens, ids, sigma, _ = stage_entries(calls)[2]
    rows, cols = result.low_res_grid
    cell = (ids[..., 0] * 2 * cols + ids[..., 1]).round().long()
    grid = torch.zeros_like(tokens).scatter_(1, cell[..., None].expand_as(tokens), tokens / sigma)
    blocks = grid.reshape(BATCH, rows, 2, cols, 2, -1).permute(0, 1, 3, 2, 4, 5)
    blocks = blocks.reshape(BATCH, rows * cols, 4, grid.shape[-1])
    early = torch.zeros(BATCH, rows * cols, dtype=torch.bool).scatter_(1, result.selected, True)
    k = result.selected.shape[1]
    coarse = blocks[~early].reshape(BATCH, rows * cols - k, 4, -1)
    return coarse, blocks[early].reshape(BATCH, k, 4, -1)


@pytest.fixture(scope="module", params=[0, 1])
def pure_noise_run(request):
    """A run on target 0: every latent is sigma * eps."""
    seed = request.param
    return recorded_run(torch.zeros(BATCH, CHANNELS, SIZE, SIZE), latent(100 + seed), seed)


def test_every_call_holds_the_signal_at_one_minus_its_sigma():
    target, noise = blocky_target(1), latent(2)
    with_signal, _ = recorded_run(target, noise, 3)
    without, _ = recorded_run(torch.zeros_like(target), noise, 3)
    assert len(with_signal) == PLAN.total_steps
    for (tokens, _, sigma, x0), (zero_target_tokens, _, _, _) in zip(with_signal, without):
        assert torch.allclose(tokens - zero_target_tokens, (1 - sigma) * x0, atol=1e-5, rtol=0)


def test_stage_2_starts_with_the_children_decorrelated(pure_noise_run):
    kept, children = stage2_groups(*pure_noise_run)
    # The 4 children of a parent: the shared eps / Z cancelled by the correlated re-noise.
    assert torch.allclose(groups_cov(children), EYE, atol=TOL, rtol=0)
    # A kept low-res token: eps / Z plus independent fresh noise, and no correlation with its neighbours.
    assert torch.allclose(groups_cov(kept), (1 + 1 / Z**2) * EYE, atol=TOL, rtol=0)


def test_stage_3_starts_with_every_2x2_block_decorrelated(pure_noise_run):
    coarse, early = stage3_groups(*pure_noise_run)
    # Children of a token that stayed coarse: its eps (variance 1 + 1/Z^2) / Z, shared, cancelled
    # down to the 1/Z^4 that the reference's gamma leaves.
    assert torch.allclose(groups_cov(coarse), EYE + ONES / Z**4, atol=TOL, rtol=0)
    # The 2x2 children upsampled early, i.i.d. in stage 2, get independent fresh noise on eps / Z.
    assert torch.allclose(groups_cov(early), (1 + 1 / Z**2) * EYE, atol=TOL, rtol=0)


def test_the_edge_scorer_gets_the_tweedie_estimate():
    scored = []

    def edge_scores(x0, rows, cols):
        scored.append(x0.clone())
        return edge_scores_top_left(x0, rows, cols)

    calls, _ = recorded_run(blocky_target(4), latent(5), 6, edge_scores)
    *_, last_x0 = calls[PLAN.steps[0] - 1]
    assert len(scored) == 1
    # x_end - sigma_end * v of stage 1's last step is that step's x0; x_end itself is 0.8 eps away.
    assert torch.allclose(scored[0], last_x0, atol=1e-5, rtol=0)
