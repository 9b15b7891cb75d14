"""Properties of the pure core that must hold for every valid input, checked with hypothesis.

Plans (manual shifts and Z, so nothing is solved), latent sizes, batch sizes, selections, forced
cells, seeds and gammas are drawn at random; each test states what holds for all of them.

- Plans: every stage's sigmas run strictly down from exactly 1 - s_k to exactly 1 - e_k, uniform
  before the shift; the re-noise at each stage change puts the latent where the next stage starts
  (below); validate_plan and make_plan refuse every invalid variant of a valid plan with a PlanError.
- Token layouts: patchify / unpatchify are inverse; early_upsample lays out [kept, children by
  parent in the order (0, 0), (0, .5), (.5, 0), (.5, .5)] and final_upsample [children, rest] with
  doubled ids; the three steps then sort_raster give the full-res grid, every cell once, each token a
  copy of its parent; scatter_to_grid agrees with that path for any token values; L1, L2, L3 are
  rows * cols, L1 + 3K, 4 L1.
- sample_ralu with test_sampler's exact oracle: lands on its target; calls, sigmas, grids and token
  counts per stage follow the plan; the selection is select_tokens' on the edge scores of stage 1's
  last estimate; every call holds the signal at 1 - sigma; each stage starts from the last one's end,
  laid out and re-noised with the image's next draws; an image of a batch is that image run alone.
- select_tokens: a reference model (forced | top-k, then the next best, K the largest union), and,
  whatever the tie order, ascending distinct cells, forced cells in, everything scoring above the
  k-th score in, nothing left out that scores above a cell taken beyond top-k.
- draw_renoise: shape, determinism, image b's noise the same in any batch, the same draw with the
  groups mixed: group sums scaled by sqrt(1 + 4 gamma), differences inside a group kept.
- image_generators: the stream of (seed, index) whatever the batch; nearby pairs, other streams.

The re-noise identities, from docs/algorithm.md: at the end of stage k, x = e_k x0 + (1 - e_k) eps;
x' = beta_k x + alpha_k n with beta_k = 1 / (Z (1 - e_k) + e_k) and alpha_k = 1 - s_k. Its signal is
beta_k e_k = s_k = 1 - alpha_k, the next stage's start progress. Its noise, for the 4 children of a
parent (which share eps), has covariance (beta_k (1 - e_k))^2 11^T + alpha_k^2 (I + gamma 11^T), and
beta_k (1 - e_k) = alpha_k / Z, so with gamma = -1/Z^2 (+ 1e-6) it is alpha_k^2 I: i.i.d. noise at
sigma alpha_k, where the next stage's sigmas start.

Examples per test: RALU_PROPERTY_EXAMPLES (default 40), derandomized and without an example
database, so every run (and CI) checks the same cases; the file takes about 15 s on 2 cores. With
1500 examples per test (about 9 minutes) nothing failed either.

Mutations tried in a scratch copy of the repository (40 examples), and the tests that fail on each:
- tokens.CHILD_OFFSETS in the order (0, 0), (.5, 0), (0, .5), (.5, .5); early_upsample without
  sorting the selection: stage_layouts
- sort_raster by column first: stage_layouts, scatter_to_grid, exact_denoiser
- final_upsample doubling only the children's ids: stage_layouts, scatter_to_grid, exact_denoiser,
  signal
- patchify in (channel, pw, ph) order: patchify, exact_denoiser
- scatter_to_grid's cell index with the row count for the width: scatter_to_grid, exact_denoiser
- stage_sigmas without forcing the last sigma: sigmas; without forcing the first: sigmas, renoise
  identities; uniform in shifted time: sigmas
- Plan.betas' beta_2 with e1: renoise identities, signal; gamma without the 1e-6: renoise identities
- the sampler's alpha and beta swapped at 1 -> 2, or stage 3 re-noised with stage 2's: signal,
  stage_starts; stage 3's re-noise after sort_raster: stage_starts
- the sampler scoring the noisy tokens instead of x0, or no scores when only forced cells call for
  them: exact_denoiser; ceil for k: exact_denoiser, stage_starts
- select_tokens with K = max(k, |forced|), forced cells not first, an unstable score sort, or ties by
  index despite generators: reference model; every image's tie order from generators[0]: reference
  model, selection batch independence, sampler batch independence
- draw_renoise drawing the batch at once from generators[0]: renoise, sampler batch independence;
  mixing subtracted, or group_mixing's other root: renoise
- image_generators seeded from seed + index: streams; by batch position: streams, renoise, both
  batch independences. Dropping STREAM_TAG is not caught here (test_streams.py checks it).
- validate_plan without the e3 check, accepting infinities, or accepting True as a step count:
  invalid variants; refusing up_ratio 0 or z 2: valid plan kept, and every test that draws plans.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ralu.edges import select_tokens
from ralu.plan import FAMILIES, PlanError, make_plan, plan_sigmas, stage_sigmas, validate_plan
from ralu.renoise import draw_renoise, group_mixing
from ralu.sampler import sample_ralu
from ralu.streams import image_generators
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
from tests.unit.test_sampler import oracle

EXAMPLES = int(os.environ.get("RALU_PROPERTY_EXAMPLES", "40"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The order of a parent's 4 children (row, col offsets in its own units), spelled out here rather
# than read from ralu.tokens.CHILD_OFFSETS so that a change there is caught.
CHILD_ORDER = ((0.0, 0.0), (0.0, 0.5), (0.5, 0.0), (0.5, 0.5))
# The ends are drawn from [1e-6, 1 - 1e-6], wider than the Planner's widgets (0.01 to 0.99). Nearer
# 0 or 1 float64 runs out: below e1 ~ 1e-15, 1 - e1 is 1.0 and stage 1 has no length (its sigmas are
# all 1.0, which validate_plan lets through); within ~1e-10 of 1, alpha_2 = 1 - s_2 cancels to a few
# ulps; and e2 one ulp above e1 gives s_2 == s_1.
E_FLOOR, E_CEILING = 1e-6, 1.0 - 1e-6
SEEDS = st.integers(0, 2**64 - 1)  # ComfyUI's seed range

# ----------------------------------------------------------------------------------------------------
# Strategies


@st.composite
def plan_args(draw) -> dict:
    e1 = draw(st.floats(E_FLOOR, E_CEILING, exclude_max=True))
    e2 = draw(st.floats(e1, E_CEILING, exclude_min=True))
    return dict(
        steps=tuple(draw(st.integers(1, 12)) for _ in range(3)),
        ends=(e1, e2, 1.0),
        up_ratio=draw(st.floats(0.0, 1.0)),
        shifts=tuple(draw(st.floats(0.5, 10.0)) for _ in range(3)),
        z=draw(st.floats(2.0, 100.0)),
    )


def plans(max_steps: int = 12):
    def build(args: dict):
        args["steps"] = tuple(min(n, max_steps) for n in args["steps"])
        return make_plan(**args)

    return plan_args().map(build)


def replace_at(values: tuple, index: int, value) -> tuple:
    return values[:index] + (value,) + values[index + 1 :]


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
# Not floats(max_value=0.0).filter(lambda v: v < 0.0): hypothesis rewrites that filter into bounds
# that let 0.0 through (hypothesis 6.170.17).
NEGATIVE = st.floats(max_value=-math.ulp(0.0))
NOT_ONE = st.one_of(
    st.floats(max_value=1.0, exclude_max=True), st.floats(min_value=1.0, exclude_min=True), NON_FINITE
)


def at(values: tuple, index: int, strategy) -> st.SearchStrategy:
    """values with the one at index drawn from strategy."""
    return strategy.map(lambda value: replace_at(values, index, value))


def cut(values: tuple) -> st.SearchStrategy:
    """values cut to 0, 1 or 2 of them, or made 4."""
    return st.sampled_from([0, 1, 2, 4]).map(lambda n: (values + values)[:n])


# What to make invalid: (the argument, a strategy for its invalid value from the valid arguments a
# and a stage index k).
INVALID = {
    "e2 not above e1": ("ends", lambda a, k: at(a["ends"], 1, st.floats(0.0, a["ends"][0]))),
    "e1 not above 0": ("ends", lambda a, k: at(a["ends"], 0, st.floats(max_value=0.0))),
    "e2 not below 1": ("ends", lambda a, k: at(a["ends"], 1, st.floats(min_value=1.0))),
    "e3 not 1": ("ends", lambda a, k: at(a["ends"], 2, NOT_ONE)),
    "an end not finite": ("ends", lambda a, k: at(a["ends"], k, NON_FINITE)),
    "not three ends": ("ends", lambda a, k: cut(a["ends"])),
    "steps below 1": ("steps", lambda a, k: at(a["steps"], k, st.integers(max_value=0))),
    "steps not whole": (
        "steps",
        lambda a, k: at(a["steps"], k, st.one_of(st.floats(), st.booleans(), st.just("3"))),
    ),
    "not three steps": ("steps", lambda a, k: cut(a["steps"])),
    "up_ratio outside [0, 1]": (
        "up_ratio",
        lambda a, k: st.one_of(NEGATIVE, st.floats(min_value=1.0, exclude_min=True)),
    ),
    "up_ratio not finite": ("up_ratio", lambda a, k: NON_FINITE),
    "a shift not above 0": ("shifts", lambda a, k: at(a["shifts"], k, st.floats(max_value=0.0))),
    "a shift not finite": ("shifts", lambda a, k: at(a["shifts"], k, NON_FINITE)),
    "not three shifts": ("shifts", lambda a, k: cut(a["shifts"])),
    "z below 2": ("z", lambda a, k: st.floats(max_value=2.0, exclude_max=True)),
    "z not finite": ("z", lambda a, k: NON_FINITE),
}


@st.composite
def invalid_plan_args(draw, what: str) -> dict:
    """A valid plan's arguments with one value made invalid as INVALID[what] says."""
    args = draw(plan_args())
    key, invalid = INVALID[what]
    args[key] = draw(invalid(args, draw(st.integers(0, 2))))
    return args


@st.composite
def layouts(draw, max_side: int = 8, max_batch: int = 3) -> dict:
    """A low-res grid, a batch, channels, and per image K distinct cells in a random order."""
    rows, cols = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    batch = draw(st.integers(1, max_batch))
    n = rows * cols
    k = draw(st.integers(0, n))
    selected = [draw(st.permutations(range(n)))[:k] for _ in range(batch)]
    return dict(
        rows=rows,
        cols=cols,
        batch=batch,
        channels=draw(st.sampled_from([1, 3, 16])),
        selected=torch.tensor(selected, dtype=torch.long).reshape(batch, k),
    )


def forced_cells(batch: int, n: int) -> st.SearchStrategy:
    """No forced cells, one row of them for the batch, or a row per image."""
    row = st.lists(st.booleans(), min_size=n, max_size=n)
    return st.one_of(
        st.none(), row.map(torch.tensor), st.lists(row, min_size=batch, max_size=batch).map(torch.tensor)
    )


def numbered_tokens(batch: int, length: int, dim: int) -> torch.Tensor:
    """Tokens whose values all differ, so a copy names its source."""
    return torch.arange(batch * length * dim, dtype=torch.float32).reshape(batch, length, dim)


def nearest_full_res(low_tokens: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Every low-res token copied onto its 2x2 full-res cells: (B, 4 rows cols, D) in raster order."""
    grid = low_tokens.reshape(low_tokens.shape[0], rows, cols, -1)
    grid = grid.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    return grid.reshape(low_tokens.shape[0], 4 * rows * cols, -1)


# ----------------------------------------------------------------------------------------------------
# Plans


@PROPERTY
@given(plans())
def test_stage_sigmas_run_strictly_down_between_exact_ends(plan):
    starts = plan.starts
    assert starts[0] == 0.0 and 0.0 < starts[1] <= starts[2] < 1.0  # s_k rises with e_k
    for k in range(3):
        sigmas = stage_sigmas(plan, k)
        assert sigmas.dtype == torch.float64 and sigmas.shape == (plan.steps[k] + 1,)
        assert sigmas[0].item() == 1.0 - starts[k]
        assert sigmas[-1].item() == 1.0 - plan.ends[k]
        assert bool((sigmas[1:] < sigmas[:-1]).all())
        assert bool((sigmas <= 1.0).all()) and bool((sigmas[:-1] > 0.0).all())
        # uniform in unshifted time
        h = plan.shifts[k]
        unshifted = sigmas / (h - (h - 1.0) * sigmas)
        gaps = unshifted[:-1] - unshifted[1:]
        assert torch.allclose(gaps, gaps.mean().expand_as(gaps), rtol=1e-6, atol=1e-15)
    assert plan_sigmas(plan)[0][0].item() == 1.0
    assert plan_sigmas(plan)[2][-1].item() == 0.0
    assert [len(s) - 1 for s in plan_sigmas(plan)] == list(plan.steps)


@PROPERTY
@given(plans())
def test_each_renoise_lands_where_the_next_stage_starts(plan):
    z = plan.z
    for k in (0, 1):
        e, s = plan.ends[k], plan.starts[k + 1]
        alpha, beta = plan.alphas[k], plan.betas[k]
        assert 0.0 < s < e  # the re-noise takes the latent back a little
        assert beta * e == pytest.approx(s, rel=1e-12)  # signal
        assert beta * e == pytest.approx(1.0 - alpha, rel=1e-12)
        # alpha = 1 - s loses digits as e nears 1 (1e-10 relative at e = 1 - 1e-6)
        assert beta * (1.0 - e) == pytest.approx(alpha / z, rel=1e-8)  # the children's shared noise
        # Children's covariance, over alpha^2: shared (beta (1 - e) / alpha)^2 11^T plus the re-noise's
        # I + gamma 11^T. Off the diagonal that is 1/Z^2 + gamma: the reference's 1e-6, nothing else.
        off_diagonal = (beta * (1.0 - e) / alpha) ** 2 + plan.gamma
        assert off_diagonal == pytest.approx(1e-6, abs=1e-9)
        # and its standard deviation alpha is exactly the sigma the next stage starts at
        assert stage_sigmas(plan, k + 1)[0].item() == alpha
        assert 1.0 + 4.0 * plan.gamma >= 0.0
        group_mixing(plan.gamma)  # a covariance: no error


@pytest.mark.parametrize("what", sorted(INVALID))
@PROPERTY
@given(data=st.data())
def test_every_invalid_variant_of_a_valid_plan_is_refused(what, data):
    args = data.draw(invalid_plan_args(what))
    with pytest.raises(PlanError):
        validate_plan(**args)
    with pytest.raises(PlanError):
        make_plan(**args)


@PROPERTY
@given(plan_args(), st.sampled_from(FAMILIES))
def test_a_valid_plan_is_kept_as_given(args, family):
    validate_plan(**args)
    plan = make_plan(**args, family=family)
    assert (plan.steps, plan.ends, plan.up_ratio, plan.shifts, plan.z, plan.family) == (
        args["steps"],
        args["ends"],
        args["up_ratio"],
        args["shifts"],
        args["z"],
        family,
    )


# ----------------------------------------------------------------------------------------------------
# Token layouts


@PROPERTY
@given(
    st.integers(1, 3),
    st.sampled_from([1, 3, 16]),
    st.integers(1, 8),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
)
def test_patchify_and_unpatchify_are_inverse(batch, channels, rows, cols, seed):
    latent = torch.randn(batch, channels, 2 * rows, 2 * cols, generator=torch.Generator().manual_seed(seed))
    tokens = patchify(latent)
    assert tokens.shape == (batch, rows * cols, 4 * channels)
    assert torch.equal(unpatchify(tokens, 2 * rows, 2 * cols), latent)
    assert torch.equal(patchify(unpatchify(tokens, 2 * rows, 2 * cols)), tokens)
    # token (r, c) is the 2x2 patch at rows 2r, 2r + 1 and cols 2c, 2c + 1, in (channel, ph, pw) order
    r, c = rows - 1, cols // 2
    patch = latent[:, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].reshape(batch, -1)
    assert torch.equal(tokens[:, r * cols + c], patch)
    strip = tokens_to_strip(tokens, channels)
    assert strip.shape == (batch, channels, 2, 2 * rows * cols)
    assert torch.equal(strip_to_tokens(strip), tokens)
    assert torch.equal(downsample_nearest(latent), latent[:, :, ::2, ::2])


@PROPERTY
@given(layouts())
def test_the_stage_layouts_and_the_full_grid_they_end_in(layout):
    rows, cols, batch, selected = layout["rows"], layout["cols"], layout["batch"], layout["selected"]
    dim = 4 * layout["channels"]
    l1, k = rows * cols, selected.shape[1]
    low, ids = numbered_tokens(batch, l1, dim), grid_ids(rows, cols, batch)

    tokens2, ids2, n_kept = early_upsample(low, ids, selected)
    assert n_kept == l1 - k and tokens2.shape == (batch, l1 + 3 * k, dim) and ids2.shape[1] == l1 + 3 * k
    for b in range(batch):
        parents = sorted(selected[b].tolist())
        kept = [i for i in range(l1) if i not in parents]
        assert torch.equal(tokens2[b, :n_kept], low[b, kept])
        assert torch.equal(ids2[b, :n_kept], ids[b, kept])
        for j, parent in enumerate(parents):
            for o, (dr, dc) in enumerate(CHILD_ORDER):
                child = n_kept + 4 * j + o
                assert torch.equal(tokens2[b, child], low[b, parent])
                assert ids2[b, child].tolist() == [parent // cols + dr, parent % cols + dc]

    tokens3, ids3 = final_upsample(tokens2, ids2, n_kept)
    assert tokens3.shape == (batch, 4 * l1, dim)
    for i in range(n_kept):
        for o, (dr, dc) in enumerate(CHILD_ORDER):
            assert torch.equal(tokens3[:, 4 * i + o], tokens2[:, i])
            expected = 2 * (ids2[:, i] + torch.tensor([dr, dc]))
            assert torch.equal(ids3[:, 4 * i + o], expected)
    assert torch.equal(tokens3[:, 4 * n_kept :], tokens2[:, n_kept:])
    assert torch.equal(ids3[:, 4 * n_kept :], 2 * ids2[:, n_kept:])

    full, full_ids = sort_raster(tokens3, ids3)
    assert torch.equal(full_ids, grid_ids(2 * rows, 2 * cols, batch))  # every cell once, in raster order
    assert torch.equal(full, nearest_full_res(low, rows, cols))  # each token its parent's copy


@PROPERTY
@given(layouts(), st.integers(0, 2**32 - 1))
def test_scatter_to_grid_paints_what_the_final_upsample_gives(layout, seed):
    """For the stage-2 sequence as laid out (nearest copies) and for any values it may have evolved to."""
    rows, cols, batch, selected = layout["rows"], layout["cols"], layout["batch"], layout["selected"]
    channels = layout["channels"]
    low, ids = numbered_tokens(batch, rows * cols, 4 * channels), grid_ids(rows, cols, batch)
    tokens, ids2, n_kept = early_upsample(low, ids, selected)
    nearest = unpatchify(nearest_full_res(low, rows, cols), 4 * rows, 4 * cols)
    assert torch.equal(scatter_to_grid(tokens, ids2, n_kept, 2 * rows, 2 * cols), nearest)

    evolved = torch.randn(tokens.shape, generator=torch.Generator().manual_seed(seed))
    full, _ = sort_raster(*final_upsample(evolved, ids2, n_kept))
    painted = scatter_to_grid(evolved, ids2, n_kept, 2 * rows, 2 * cols)
    assert painted.shape == (batch, channels, 4 * rows, 4 * cols)
    assert torch.equal(painted, unpatchify(full, 4 * rows, 4 * cols))


# ----------------------------------------------------------------------------------------------------
# sample_ralu with an exact denoiser


@st.composite
def sampler_cases(draw, max_side: int = 4, max_steps: int = 6) -> dict:
    rows, cols = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    batch = draw(st.integers(1, 3))
    n = rows * cols
    forced = draw(forced_cells(batch, n))
    scores = draw(st.lists(st.integers(0, 3), min_size=batch * n, max_size=batch * n))
    return dict(
        rows=rows,
        cols=cols,
        batch=batch,
        channels=draw(st.sampled_from([1, 16])),
        plan=draw(plans(max_steps)),
        forced=forced,
        scores=torch.tensor(scores, dtype=torch.float32).reshape(batch, n),
        seed=draw(SEEDS),
        data_seed=draw(st.integers(0, 2**32 - 1)),
    )


def case_latents(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (case["batch"], case["channels"], 4 * case["rows"], 4 * case["cols"])
    generator = torch.Generator().manual_seed(case["data_seed"])
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def recorded_run(case: dict, target, noise, indices=None, forced=None, on_step=None):
    """(calls as (tokens, ids, grid, sigma, x0), the edge scorer's inputs, the result) of one run of
    images `indices` (default: all of the case's) with the oracle."""
    indices = list(range(noise.shape[0])) if indices is None else indices
    calls, scored = [], []
    predict = oracle(target, [])

    def record(tokens, ids, grid, sigma):
        x0 = predict(tokens, ids, grid, sigma)
        calls.append((tokens.clone(), ids.clone(), grid, sigma, x0))
        return x0

    def edge_scores(x0, rows, cols):
        scored.append(x0.clone())
        return case["scores"][indices].clone()

    generators = image_generators(case["seed"], indices)
    result = sample_ralu(noise, case["plan"], record, edge_scores, generators, forced, on_step)
    return calls, scored, result


@PROPERTY
@given(sampler_cases())
def test_an_exact_denoiser_lands_on_its_target_through_the_planned_stages(case):
    plan, rows, cols, batch = case["plan"], case["rows"], case["cols"], case["batch"]
    target, noise = case_latents(case)
    steps = []
    calls, scored, result = recorded_run(
        case, target, noise, forced=case["forced"], on_step=lambda i, build: steps.append((i, build().shape))
    )
    torch.testing.assert_close(result.latent, target, atol=1e-5, rtol=1e-5)

    l1 = rows * cols
    k = math.floor(plan.up_ratio * l1)  # docs/algorithm.md: floor(up_ratio M/4)
    expected = select_tokens(case["scores"], k, case["forced"], image_generators(case["seed"], range(batch)))
    assert torch.equal(result.selected, expected)
    big_k = result.selected.shape[1]
    assert result.low_res_grid == (rows, cols)
    assert result.tokens_per_stage == (l1, l1 + 3 * big_k, 4 * l1)
    assert result.calls_per_stage == list(plan.steps)

    n1, n2, _ = plan.steps
    stage_of = [0] * n1 + [1] * n2 + [2] * plan.steps[2]
    grids = [(rows, cols), None, (2 * rows, 2 * cols)]
    sigmas = [s for stage in plan_sigmas(plan) for s in stage[:-1].tolist()]
    dim = 4 * case["channels"]
    for (tokens, ids, grid, sigma, _), stage, expected_sigma in zip(calls, stage_of, sigmas, strict=True):
        assert tokens.shape == (batch, result.tokens_per_stage[stage], dim)
        assert ids.shape == (batch, result.tokens_per_stage[stage], 2)
        assert grid == grids[stage] and sigma == expected_sigma
        if grid is not None:
            assert torch.equal(ids, grid_ids(*grid, batch))
    # the edge scorer sees stage 1's last estimate, once, and only when something is to be selected
    needs_scores = k > 0 or (case["forced"] is not None and bool(case["forced"].any()))
    assert len(scored) == int(needs_scores)
    if needs_scores:
        assert torch.equal(scored[0], calls[n1 - 1][4])
    assert steps == [(i, (batch, case["channels"], 4 * rows, 4 * cols)) for i in range(plan.total_steps)]


@PROPERTY
@given(sampler_cases())
def test_every_call_holds_the_signal_at_one_minus_its_sigma(case):
    """The run on a target minus the same run on target 0 is (1 - sigma) x0 at every call. The target
    is blocky (equal over each low-res token's 4 full-res cells), so that a copy's x0 is its parent's."""
    rows, cols = case["rows"], case["cols"]
    low, noise = case_latents(case)
    low_tokens = patchify(low[..., : 2 * rows, : 2 * cols])
    target = unpatchify(nearest_full_res(low_tokens, rows, cols), 4 * rows, 4 * cols)
    with_signal, _, _ = recorded_run(case, target, noise, forced=case["forced"])
    without, _, _ = recorded_run(case, torch.zeros_like(target), noise, forced=case["forced"])
    assert len(with_signal) == len(without) == case["plan"].total_steps
    for (tokens, ids, _, sigma, x0), (zero_target_tokens, zero_ids, *_) in zip(with_signal, without):
        assert torch.equal(ids, zero_ids)
        assert torch.allclose(tokens - zero_target_tokens, (1 - sigma) * x0, atol=1e-5, rtol=0)


@PROPERTY
@given(sampler_cases(max_steps=4))
def test_each_stage_starts_from_the_last_upsampled_and_renoised(case):
    """A stage's first call gets the previous stage's last Euler step, upsampled as tokens.py lays it
    out and re-noised with beta_k, alpha_k and the image's next draws: its tie order, then the
    stage-2 noise (groups over the children), then the stage-3 noise (groups over the new children,
    before the raster sort)."""
    plan, rows, cols, batch = case["plan"], case["rows"], case["cols"], case["batch"]
    target, noise = case_latents(case)
    calls, _, result = recorded_run(case, target, noise, forced=case["forced"])
    n1, n2, _ = plan.steps
    sigmas = plan_sigmas(plan)

    def last_step(call, sigma_next: float) -> torch.Tensor:
        tokens, _, _, sigma, x0 = call
        return tokens + (sigma_next - sigma) * ((tokens - x0) / sigma)

    generators = image_generators(case["seed"], range(batch))
    k = math.floor(plan.up_ratio * rows * cols)
    selected = select_tokens(case["scores"], k, case["forced"], generators)
    assert torch.equal(result.selected, selected)
    tokens, ids, n_kept = early_upsample(
        last_step(calls[n1 - 1], sigmas[0][-1].item()), grid_ids(rows, cols, batch), selected
    )
    fresh = draw_renoise(tuple(tokens.shape), (n_kept, tokens.shape[1]), plan.gamma, generators)
    stage_2, stage_2_ids = calls[n1][0], calls[n1][1]
    assert torch.equal(stage_2_ids, ids)
    torch.testing.assert_close(stage_2, plan.betas[0] * tokens + plan.alphas[0] * fresh, rtol=0, atol=1e-6)

    tokens, ids = final_upsample(last_step(calls[n1 + n2 - 1], sigmas[1][-1].item()), ids, n_kept)
    fresh = draw_renoise(tuple(tokens.shape), (0, 4 * n_kept), plan.gamma, generators)
    tokens, ids = sort_raster(plan.betas[1] * tokens + plan.alphas[1] * fresh, ids)
    assert torch.equal(calls[n1 + n2][1], ids)
    torch.testing.assert_close(calls[n1 + n2][0], tokens, rtol=0, atol=1e-6)


@PROPERTY
@given(sampler_cases(max_side=3, max_steps=4))
def test_an_image_of_a_batch_is_that_image_sampled_alone(case):
    """Without forced cells (which make K the batch's largest), as ComfyUI's Latent From Batch needs."""
    target, noise = case_latents(case)
    batch_calls, _, batch_result = recorded_run(case, target, noise)
    for b in range(case["batch"]):
        alone_calls, _, alone_result = recorded_run(case, target[b : b + 1], noise[b : b + 1], [b])
        assert torch.equal(alone_result.selected[0], batch_result.selected[b])
        for (tokens, ids, *_), (alone_tokens, alone_ids, *_) in zip(batch_calls, alone_calls, strict=True):
            assert torch.equal(tokens[b], alone_tokens[0]) and torch.equal(ids[b], alone_ids[0])
        assert torch.equal(batch_result.latent[b], alone_result.latent[0])


# ----------------------------------------------------------------------------------------------------
# select_tokens


@st.composite
def selections(draw, seeded: bool = True, max_cells: int = 24) -> dict:
    batch, n = draw(st.integers(1, 3)), draw(st.integers(1, max_cells))
    scores = draw(st.lists(st.integers(0, 4), min_size=batch * n, max_size=batch * n))
    forced = draw(forced_cells(batch, n))
    return dict(
        scores=torch.tensor(scores, dtype=torch.float32).reshape(batch, n),
        k=draw(st.integers(0, n)),
        forced=forced,
        seed=draw(SEEDS) if seeded else None,
    )


def tie_ranks(case: dict) -> list[list[int]]:
    """rank[b][c]: where cell c comes among cells of equal score (ralu.edges.select_tokens' docstring:
    a random order drawn from generators[b], else the cell index)."""
    b, n = case["scores"].shape
    if case["seed"] is None:
        return [list(range(n)) for _ in range(b)]
    ranks = []
    for generator in image_generators(case["seed"], range(b)):
        order = torch.rand(n, generator=generator).argsort().tolist()
        ranks.append([order.index(c) for c in range(n)])
    return ranks


def generators_of(case: dict):
    b = case["scores"].shape[0]
    return None if case["seed"] is None else image_generators(case["seed"], range(b))


def forced_rows(case: dict) -> list[set[int]]:
    b, n = case["scores"].shape
    forced = case["forced"]
    if forced is None:
        return [set() for _ in range(b)]
    rows = forced.expand(b, n).tolist()
    return [{c for c in range(n) if row[c]} for row in rows]


@pytest.mark.parametrize("seeded", [False, True], ids=["ties by index", "ties from generators"])
@PROPERTY
@given(data=st.data())
def test_select_tokens_is_forced_or_top_k_then_the_next_best(seeded, data):
    case = data.draw(selections(seeded))
    scores, k = case["scores"], case["k"]
    b, n = scores.shape
    selected = select_tokens(scores, k, case["forced"], generators_of(case))
    forced = forced_rows(case)
    ranks = tie_ranks(case)

    # the reference model: best first by (score, tie rank); forced | top k; then the next best up to K
    orders = [sorted(range(n), key=lambda c, i=i: (-scores[i, c].item(), ranks[i][c])) for i in range(b)]
    unions = [forced[i] | set(orders[i][:k]) for i in range(b)]
    big_k = max(len(u) for u in unions)
    expected = []
    for i in range(b):
        chosen = set(unions[i])
        for c in orders[i]:
            if len(chosen) == big_k:
                break
            chosen.add(c)
        expected.append(sorted(chosen))
    assert selected.dtype == torch.long and selected.shape == (b, big_k)
    assert selected.tolist() == expected

    # what holds whatever the tie order
    for i in range(b):
        row = selected[i].tolist()
        assert row == sorted(set(row))  # ascending, distinct
        assert forced[i] <= set(row)
        if k > 0:
            kth = scores[i].sort(descending=True).values[k - 1].item()
            assert {c for c in range(n) if scores[i, c] > kth} <= set(row)
        beyond = set(row) - forced[i]
        left_out = set(range(n)) - set(row)
        if beyond and left_out:
            assert min(scores[i, c] for c in beyond) >= max(scores[i, c] for c in left_out)
    assert big_k >= max(k, max(len(f) for f in forced))


@PROPERTY
@given(selections(), SEEDS)
def test_an_images_selection_is_its_own_without_forced_cells(case, seed):
    scores, k = case["scores"], case["k"]
    generators = image_generators(seed, range(scores.shape[0]))
    together = select_tokens(scores, k, None, generators)
    assert torch.equal(together, select_tokens(scores, k, None, image_generators(seed, range(len(scores)))))
    for b in range(scores.shape[0]):
        alone = select_tokens(scores[b : b + 1], k, None, image_generators(seed, [b]))
        assert torch.equal(alone[0], together[b])


# ----------------------------------------------------------------------------------------------------
# draw_renoise and the random streams


@st.composite
def renoise_cases(draw) -> dict:
    length = draw(st.integers(0, 40))
    groups = draw(st.integers(0, length // 4))
    start = draw(st.integers(0, length - 4 * groups))
    return dict(
        batch=draw(st.integers(1, 3)),
        length=length,
        dim=draw(st.integers(1, 8)),
        grouped=(start, start + 4 * groups),
        gamma=draw(st.one_of(st.floats(-0.25, 0.25), plans().map(lambda plan: plan.gamma))),
        seed=draw(SEEDS),
        indices=draw(st.lists(st.integers(0, 4096), min_size=1, max_size=3, unique=True)),
    )


@PROPERTY
@given(renoise_cases())
def test_renoise_is_the_plain_draw_with_its_groups_mixed(case):
    indices, (start, stop), gamma = case["indices"], case["grouped"], case["gamma"]
    b, length, dim = len(indices), case["length"], case["dim"]
    shape = (b, length, dim)

    def draw(grouped=(start, stop), gamma=gamma, which=indices):
        return draw_renoise((len(which), length, dim), grouped, gamma, image_generators(case["seed"], which))

    noise = draw()
    assert noise.shape == shape and noise.dtype == torch.float32 and noise.device.type == "cpu"
    assert torch.equal(noise, draw())  # the same generators, the same noise
    for i, index in enumerate(indices):  # image i's noise is its own, whatever else is in the batch
        assert torch.equal(noise[i], draw(which=[index])[0])

    plain = draw(grouped=(0, 0))
    plain_seen = torch.stack(
        [torch.randn((length, dim), generator=g) for g in image_generators(case["seed"], indices)]
    )
    assert torch.equal(plain, plain_seen)
    assert torch.equal(noise[:, :start], plain[:, :start]) and torch.equal(noise[:, stop:], plain[:, stop:])
    groups = noise[:, start:stop].reshape(b, -1, 4, dim).double()
    plain_groups = plain[:, start:stop].reshape(b, -1, 4, dim).double()
    scale = math.sqrt(1.0 + 4.0 * gamma)  # 1 + 4a, a = group_mixing(gamma)
    torch.testing.assert_close(groups.sum(dim=2), scale * plain_groups.sum(dim=2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        groups - groups[:, :, :1], plain_groups - plain_groups[:, :, :1], atol=1e-5, rtol=1e-5
    )


@PROPERTY
@given(
    st.integers(2, 2**64 - 3),
    st.lists(st.integers(2, 2**20), min_size=1, max_size=5),
    st.integers(-2, 2),
    st.integers(-2, 2),
)
def test_an_image_stream_depends_on_its_seed_and_index_only(seed, indices, seed_step, index_step):
    def values(generators):
        return [torch.randn(16, generator=g) for g in generators]

    together = values(image_generators(seed, indices))
    for index, stream in zip(indices, together, strict=True):
        assert torch.equal(stream, values(image_generators(seed, [index]))[0])
    # a nearby pair (seed + i, index - i included) draws another stream
    if (seed_step, index_step) != (0, 0):
        other = values(image_generators(seed + seed_step, [indices[0] + index_step]))[0]
        assert not torch.equal(together[0], other)
