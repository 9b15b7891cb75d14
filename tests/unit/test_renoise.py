import math

import pytest
import torch

from ralu.plan import PRESETS
from ralu.renoise import draw_renoise, group_mixing, renoise
from ralu.streams import image_generators

# 2 images x 2000 groups x 64 channels = 256,000 four-vectors: the standard error of a covariance
# entry is about 1 / sqrt(256000) = 0.002, so 0.01 is 5 standard errors, while a wrong gamma
# (0, or twice the right one) moves the off-diagonal by |gamma| = 0.0625 for z = 4: 30 errors.
BATCH, GROUPS, DIM = 2, 2000, 64
# Ungrouped tokens before and after: the groups do not start at a multiple of 4, and the tail is
# long enough to measure its covariance as well as the groups'.
LEAD, TAIL = 3, 4 * GROUPS + 1
TOL = 0.01


def gamma_for(z: float) -> float:
    return -1.0 / z**2 + 1e-6


def draw(gamma: float, seed: int = 0) -> torch.Tensor:
    shape = (BATCH, LEAD + 4 * GROUPS + TAIL, DIM)
    return draw_renoise(shape, (LEAD, LEAD + 4 * GROUPS), gamma, image_generators(seed, range(BATCH)))


def four_vectors(noise: torch.Tensor, first: int) -> torch.Tensor:
    """(samples, 4): tokens first .. first + 4 * GROUPS as consecutive 4-vectors, per channel."""
    block = noise[:, first : first + 4 * GROUPS].reshape(BATCH, GROUPS, 4, DIM)
    return block.permute(0, 1, 3, 2).reshape(-1, 4).double()


def covariance(samples: torch.Tensor) -> torch.Tensor:
    return samples.T @ samples / samples.shape[0]


@pytest.mark.parametrize("gamma", [gamma_for(4.0), PRESETS["flux_4x"].gamma, gamma_for(2.0)])
def test_groups_have_covariance_identity_plus_gamma(gamma):
    cov = covariance(four_vectors(draw(gamma), LEAD))
    expected = torch.eye(4, dtype=torch.float64) + gamma
    assert torch.allclose(cov, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("gamma", [gamma_for(4.0), gamma_for(2.5)])
def test_group_sum_variance_is_four_times_one_plus_four_gamma(gamma):
    sums = four_vectors(draw(gamma), LEAD).sum(dim=1)
    # The variance of a sample variance is 2 var^2 / n: 5 standard errors, relative.
    tolerance = 5 * math.sqrt(2 / sums.numel())
    assert sums.var().item() == pytest.approx(4 * (1 + 4 * gamma), rel=tolerance)


def test_a_wrong_gamma_would_be_caught():
    cov = covariance(four_vectors(draw(gamma_for(4.0)), LEAD))
    for wrong in (0.0, 2 * gamma_for(4.0)):
        assert not torch.allclose(cov, torch.eye(4, dtype=torch.float64) + wrong, atol=TOL, rtol=0)


def test_groups_are_aligned_to_the_range_start_and_independent_of_each_other():
    noise = draw(gamma_for(2.0))
    # Shifted by one token, every 4-vector straddles two groups: only 3 of its 6 pairs share a group.
    straddling = covariance(four_vectors(noise[:, :-1], LEAD + 1))
    assert straddling[0, 3].item() == pytest.approx(0.0, abs=TOL)
    assert straddling[2, 3].item() == pytest.approx(0.0, abs=TOL)
    assert straddling[0, 1].item() == pytest.approx(gamma_for(2.0), abs=TOL)


def test_tokens_outside_the_range_are_independent_standard_normal():
    noise = draw(gamma_for(2.0))
    cov = covariance(four_vectors(noise, LEAD + 4 * GROUPS + 1))
    assert torch.allclose(cov, torch.eye(4, dtype=torch.float64), atol=TOL, rtol=0)
    assert noise[:, :LEAD].std().item() == pytest.approx(1.0, abs=0.2)


def test_same_seed_same_noise_other_seed_other_noise():
    shape, grouped = (1, 12, 64), (4, 12)
    first = draw_renoise(shape, grouped, -0.05, [torch.Generator().manual_seed(7)])
    again = draw_renoise(shape, grouped, -0.05, [torch.Generator().manual_seed(7)])
    other = draw_renoise(shape, grouped, -0.05, [torch.Generator().manual_seed(8)])
    assert first.dtype == torch.float32 and first.device.type == "cpu"
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_children_noise_decorrelates_after_renoise():
    # After the nearest copy 4 children share sigma * eps; beta * sigma = alpha / Z, and fresh noise
    # with covariance I - 11^T / Z^2 cancels that sharing and tops each child up to variance alpha^2:
    # i.i.d. noise at the next stage's start sigma (docs/algorithm.md, stage 2).
    plan = PRESETS["flux_4x"]
    sigma = 1.0 - plan.ends[0]
    shared = torch.randn(BATCH, GROUPS, 1, DIM, generator=torch.Generator().manual_seed(3))
    children = (sigma * shared.expand(-1, -1, 4, -1)).reshape(BATCH, 4 * GROUPS, DIM)
    fresh = draw_renoise(children.shape, (0, 4 * GROUPS), plan.gamma, image_generators(3, range(BATCH)))
    alpha, beta = plan.alphas[0], plan.betas[0]
    cov = covariance(four_vectors(renoise(children, beta, alpha, fresh), 0)) / alpha**2
    off_diagonal = cov[~torch.eye(4, dtype=torch.bool)]
    assert off_diagonal.abs().max().item() < TOL
    assert torch.diagonal(cov).tolist() == pytest.approx([1.0] * 4, abs=TOL)


def test_renoise_is_beta_x_plus_alpha_n():
    x, n = torch.randn(2, 8, 64, dtype=torch.float64), torch.randn(2, 8, 64)
    assert torch.allclose(renoise(x, 0.25, 0.75, n), 0.25 * x + 0.75 * n.double(), atol=0, rtol=0)


def test_mixing_coefficient_squares_to_the_covariance():
    gamma = gamma_for(3.0)
    a = group_mixing(gamma)
    root = torch.eye(4, dtype=torch.float64) + a
    assert torch.allclose(root @ root, torch.eye(4, dtype=torch.float64) + gamma, atol=1e-15, rtol=0)


def test_invalid_arguments():
    generator = [torch.Generator().manual_seed(0)]
    with pytest.raises(ValueError, match="at least -1/4"):
        draw_renoise((1, 8, 64), (0, 8), -0.3, generator)
    with pytest.raises(ValueError, match="whole groups of 4"):
        draw_renoise((1, 8, 64), (0, 6), -0.05, generator)
    with pytest.raises(ValueError, match="whole groups of 4"):
        draw_renoise((1, 8, 64), (4, 12), -0.05, generator)
