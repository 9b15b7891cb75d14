import dataclasses

import pytest

from ralu.cost import (
    COST_MODELS,
    FAMILY_COST,
    VAE_DECODE_FLOPS_PER_PIXEL,
    estimate_speedup,
    estimate_speedup_for,
    stage_token_counts,
)
from ralu.plan import FAMILIES, PRESET_MODEL, PRESETS

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


def test_unknown_model():
    with pytest.raises(
        ValueError, match=r"model \('sdxl'\) must be one of flux, flux_schnell, sd3, sd3.5_large"
    ):
        estimate_speedup(FLUX_4X, "sdxl", 1024, 1024)


def test_the_models_an_estimate_can_be_for():
    names = {key: (m.label, m.family, m.baseline_steps, m.time_shift) for key, m in COST_MODELS.items()}
    assert names == {
        "flux": ("FLUX.1-dev", "flux", 50, 3.0),
        "flux_schnell": ("FLUX.1-schnell", "flux", 4, 1.0),
        "sd3": ("SD3 Medium", "sd3", 28, 3.0),
        "sd3.5_large": ("SD3.5 Large", "sd3", 28, 3.0),
        "sd3.5_large_turbo": ("SD3.5 Large Turbo", "sd3", 4, 3.0),
        "sd3.5_medium": ("SD3.5 Medium", "sd3", 40, 3.0),
    }
    # Schnell is FLUX.1-dev's network prompted with 256 T5 tokens.
    schnell, dev = COST_MODELS["flux_schnell"].step, COST_MODELS["flux"].step
    assert (schnell.text_tokens, dev.text_tokens) == (256, 512)
    assert schnell.linear_flops_per_token == dev.linear_flops_per_token
    # The families' own models keep their keys (the Planner's estimate_for values saved in workflows).
    assert all(COST_MODELS[family].family == family for family in FAMILIES)
    assert {family: COST_MODELS[family].step for family in FAMILIES} == FAMILY_COST


@pytest.mark.parametrize(
    ("model", "params", "hidden", "blocks", "image_only_blocks"),
    [
        ("sd3", 2.0e9, 1536, 24, 0),
        ("sd3.5_large", 8.06e9, 2432, 38, 0),
        ("sd3.5_large_turbo", 8.06e9, 2432, 38, 0),
        ("sd3.5_medium", 2.24e9, 1536, 24, 13),  # MMDiT-X: a second self-attention in blocks 0-12
    ],
)
def test_each_sd3_variant_has_its_own_dimensions(model, params, hidden, blocks, image_only_blocks):
    cost = COST_MODELS[model].step
    assert cost.linear_flops_per_token == pytest.approx(2 * params)
    assert cost.attention_flops_per_token_pair == 4 * hidden * blocks
    assert cost.image_attention_flops_per_token_pair == 4 * hidden * image_only_blocks
    assert cost.text_tokens == 77 + 256


def test_image_only_attention_grows_with_the_image_tokens_alone():
    medium = COST_MODELS["sd3.5_medium"].step
    joint = dataclasses.replace(medium, image_attention_flops_per_token_pair=0.0)
    for tokens in (256, 1024, 4096):
        extra = medium.step_flops(tokens) - joint.step_flops(tokens)
        assert extra == pytest.approx(4 * 1536 * 13 * tokens**2)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_is_estimated_on_its_own_model_and_steps(name):
    model = COST_MODELS[PRESET_MODEL[name]]
    assert model.family == PRESETS[name].family
    estimate = estimate_speedup(PRESETS[name], PRESET_MODEL[name], 1024, 1024)
    assert estimate.baseline_steps == model.baseline_steps
    assert estimate == estimate_speedup_for(model.step, PRESETS[name], 1024, 1024, model.baseline_steps)


def test_sd35_turbo_against_the_turbos_own_four_steps():
    estimate = estimate_speedup(PRESETS["sd35_turbo"], "sd3.5_large_turbo", 1024, 1024)
    # 4 full-res steps against 1 quarter-res, 1 mixed (30% upsampled) and 2 full-res steps.
    assert estimate.linear_only_speedup == pytest.approx(4 / (0.25 + (0.25 * 0.7 + 0.3) + 2), rel=1e-12)
    assert 1.3 < estimate.speedup < estimate.linear_only_speedup
    # The same plan against SD3.5 Large's 28 steps would claim about 10x: the baseline matters.
    assert estimate_speedup(PRESETS["sd35_turbo"], "sd3.5_large", 1024, 1024).speedup > 9


def test_flux_schnell_against_schnells_own_four_steps():
    estimate = estimate_speedup(PRESETS["flux_schnell"], "flux_schnell", 1024, 1024)
    assert estimate.baseline_steps == 4
    assert estimate.linear_only_speedup == pytest.approx(4 / (0.25 + (0.25 * 0.7 + 0.3) + 2), rel=1e-12)
    assert 1.3 < estimate.speedup < estimate.linear_only_speedup


def test_the_larger_model_spends_less_of_its_step_on_text_and_decode():
    """Same plan, same tokens: SD3.5 Large's wider, deeper network makes the fixed costs (text tokens,
    the edge decode) weigh less than in SD3 Medium, so its estimate is closer to the token ratio."""
    plan = PRESETS["sd3_3x"]
    medium = estimate_speedup(plan, "sd3", 1024, 1024)
    large = estimate_speedup(plan, "sd3.5_large", 1024, 1024)
    assert medium.linear_only_speedup == large.linear_only_speedup
    assert medium.speedup < large.speedup < large.linear_only_speedup
