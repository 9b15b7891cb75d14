import dataclasses

import pytest

from ralu.cost import FAMILY_COST, VAE_DECODE_FLOPS_PER_PIXEL, estimate_speedup, stage_token_counts
from ralu.plan import PRESETS

FLUX_4X = PRESETS["flux_4x"]


def test_stage_token_counts():
    assert stage_token_counts(FLUX_4X, 4096) == pytest.approx((1024.0, 0.7 * 1024 + 0.3 * 4096, 4096.0))
    none_up = dataclasses.replace(FLUX_4X, up_ratio=0.0)
    all_up = dataclasses.replace(FLUX_4X, up_ratio=1.0)
    assert stage_token_counts(none_up, 4096)[1] == 1024.0
    assert stage_token_counts(all_up, 4096)[1] == 4096.0


def test_flux_4x_linear_only_ratio_is_the_spec_example():
    estimate = estimate_speedup(FLUX_4X, "flux", 1024, 1024)
    assert estimate.linear_only_speedup == pytest.approx(50 / (5 * 0.25 + 6 * 0.475 + 7), rel=1e-12)
    assert estimate.linear_only_speedup == pytest.approx(4.5, abs=0.01)
    assert estimate.tokens == pytest.approx((1024.0, 1945.6, 4096.0))


def test_flops_add_up():
    cost = FAMILY_COST["flux"]
    estimate = estimate_speedup(FLUX_4X, "flux", 1024, 768)
    full = 64 * 48
    tokens = stage_token_counts(FLUX_4X, full)
    steps = sum(n * cost.step_flops(L) for n, L in zip(FLUX_4X.steps, tokens))
    assert estimate.ralu_flops == pytest.approx(steps + VAE_DECODE_FLOPS_PER_PIXEL * 512 * 384, rel=1e-12)
    assert estimate.baseline_flops == pytest.approx(50 * cost.step_flops(full), rel=1e-12)
    assert estimate.speedup == pytest.approx(estimate.baseline_flops / estimate.ralu_flops)


def test_step_cost_is_linear_plus_quadratic_in_all_tokens():
    cost = FAMILY_COST["sd3"]
    n = 4096 + cost.text_tokens
    expected = cost.linear_flops_per_token * n + cost.attention_flops_per_token_pair * n * n
    assert cost.step_flops(4096) == pytest.approx(expected)
    assert FAMILY_COST["flux"].text_tokens == 512 and cost.text_tokens == 333


@pytest.mark.parametrize(("name", "paper"), [("flux_5x", 5.53), ("flux_7x", 7.02)])
def test_flux_estimates_are_near_the_papers_measured_flops(name, paper):
    # The paper ran its 7x preset with up_ratio 0.2; the model is rough, so 10% is the bar.
    plan = dataclasses.replace(PRESETS[name], up_ratio=0.2)
    assert estimate_speedup(plan, "flux", 1024, 1024).speedup == pytest.approx(paper, rel=0.1)


def test_baseline_steps_override_and_sd3_default():
    sd3 = estimate_speedup(PRESETS["sd3_2x"], "sd3", 1024, 1024)
    longer = estimate_speedup(PRESETS["sd3_2x"], "sd3", 1024, 1024, baseline_steps=56)
    assert longer.baseline_flops == pytest.approx(2 * sd3.baseline_flops)
    assert sd3.linear_only_speedup == pytest.approx(28 / (5 * 0.25 + 6 * 0.475 + 9))


def test_text_tokens_make_the_real_speedup_smaller_than_linear_only():
    estimate = estimate_speedup(FLUX_4X, "flux", 1024, 1024)
    assert 1.0 < estimate.speedup < estimate.linear_only_speedup


def test_unknown_family():
    with pytest.raises(ValueError, match="family"):
        estimate_speedup(FLUX_4X, "sdxl", 1024, 1024)
