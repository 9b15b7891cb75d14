"""The three-stage loop with an oracle denoiser: ids, orders and the Euler updates must line up."""

import torch

from ralu.plan import PRESETS, make_plan
from ralu.sampler import sample_ralu
from ralu.streams import image_generators
from ralu.tokens import patchify


def oracle(target: torch.Tensor, calls: list):
    """Predicts, for each token, the target's full-res token at the cell its ids name."""
    full = patchify(target)  # (B, rows * cols, 64) on the full-res token grid
    full_cols = target.shape[-1] // 2

    def predict_x0(tokens, ids, grid, sigma):
        full_res_units = grid is not None and grid[1] == full_cols
        cells = ids if full_res_units else ids * 2
        index = (cells[..., 0] * full_cols + cells[..., 1]).round().long()
        calls.append((tuple(tokens.shape), grid, sigma))
        return torch.gather(full, 1, index[..., None].expand(-1, -1, full.shape[-1]))

    return predict_x0


def edge_scores_top_left(x0, rows, cols):
    scores = torch.zeros(x0.shape[0], rows * cols)
    scores[:, 0] = 10.0
    return scores


def test_an_exact_denoiser_lands_exactly_on_its_target():
    target = torch.randn(2, 16, 32, 48, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 16, 32, 48, generator=torch.Generator().manual_seed(1))
    calls, previews = [], []
    plan = PRESETS["flux_4x"]
    result = sample_ralu(
        noise,
        plan,
        oracle(target, calls),
        edge_scores_top_left,
        image_generators(2, range(2)),
        on_step=lambda i, x0: previews.append((i, x0().shape)),
    )
    torch.testing.assert_close(result.latent, target, atol=1e-5, rtol=1e-5)
    rows, cols = 8, 12
    k = int(rows * cols * plan.up_ratio)
    assert result.tokens_per_stage == (rows * cols, rows * cols + 3 * k, 4 * rows * cols)
    assert result.calls_per_stage == list(plan.steps)
    assert [shape for shape, _, _ in calls] == (
        [(2, rows * cols, 64)] * 5 + [(2, rows * cols + 3 * k, 64)] * 6 + [(2, 4 * rows * cols, 64)] * 7
    )
    assert [i for i, _ in previews] == list(range(plan.total_steps))
    assert {s for _, s in previews} == {(2, 16, 32, 48)}
    assert result.selected[:, 0].tolist() == [0, 0]  # the cell the edge scores favour


def test_each_stage_starts_at_its_planned_sigma():
    plan = make_plan((2, 2, 2), (0.3, 0.45, 1.0), 0.5, shifts=(3.0, 3.0, 3.0), z=6.0)
    target = torch.zeros(1, 16, 16, 16)
    calls = []
    sample_ralu(
        torch.randn(1, 16, 16, 16),
        plan,
        oracle(target, calls),
        edge_scores_top_left,
        image_generators(0, [0]),
    )
    stage_starts = [calls[0][2], calls[2][2], calls[4][2]]
    assert stage_starts == [1.0, 1.0 - plan.starts[1], 1.0 - plan.starts[2]]


def test_renoise_is_drawn_from_the_generator():
    plan = PRESETS["flux_7x"]
    noise = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    target = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(2))

    def run(seed):
        seen = []

        def predict(tokens, ids, grid, sigma):
            seen.append(tokens.clone())
            return oracle(target, [])(tokens, ids, grid, sigma)

        sample_ralu(noise, plan, predict, edge_scores_top_left, image_generators(seed, [0]))
        return seen

    a, b, c = run(3), run(3), run(4)
    first_stage2 = plan.steps[0]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(a[0], c[0])  # stage 1 does not use the generator
    assert not torch.equal(a[first_stage2], c[first_stage2])
