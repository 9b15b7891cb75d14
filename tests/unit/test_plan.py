import dataclasses
import math

import numpy as np
import pytest

from ralu.plan import (
    FAMILIES,
    PRESET_FAMILY,
    PRESET_MODEL,
    PRESETS,
    Plan,
    PlanError,
    make_plan,
    plan_sigmas,
    stage_sigmas,
    validate_plan,
)

FLUX_4X = PRESETS["flux_4x"]
GOOD = {"steps": (5, 6, 7), "ends": (0.3, 0.45, 1.0), "up_ratio": 0.3}


def test_presets_carry_the_published_stage_layout():
    layout = {name: (p.steps, p.ends, p.up_ratio) for name, p in PRESETS.items()}
    assert layout == {
        "flux_4x": ((5, 6, 7), (0.3, 0.45, 1.0), 0.3),
        "flux_5x": ((4, 5, 6), (0.3, 0.45, 1.0), 0.2),
        "flux_7x": ((2, 3, 5), (0.2, 0.3, 1.0), 0.1),
        "sd3_2x": ((5, 6, 9), (0.2, 0.3, 1.0), 0.3),
        "sd3_3x": ((3, 3, 6), (0.25, 0.3, 1.0), 0.2),
        "sd35_turbo": ((1, 1, 2), (0.2, 0.4, 1.0), 0.3),
        "flux_schnell": ((1, 1, 2), (0.4, 0.55, 1.0), 0.3),
    }
    assert FLUX_4X.shifts == (5.019, 2.589, 2.226) and FLUX_4X.z == 6.317
    assert PRESET_FAMILY == {
        "flux_4x": "flux",
        "flux_5x": "flux",
        "flux_7x": "flux",
        "sd3_2x": "sd3",
        "sd3_3x": "sd3",
        "sd35_turbo": "sd3",
        "flux_schnell": "flux",
    }
    assert all(name == plan.name for name, plan in PRESETS.items())


def test_each_preset_names_the_model_it_is_for():
    assert set(PRESET_MODEL) == set(PRESETS)
    # The published presets are for FLUX.1-dev and SD3 Medium, the models named by their families.
    ours = {"sd35_turbo": "sd3.5_large_turbo", "flux_schnell": "flux_schnell"}
    assert {n: m for n, m in PRESET_MODEL.items() if n not in ours} == {
        n: f for n, f in PRESET_FAMILY.items() if n not in ours
    }
    assert {n: PRESET_MODEL[n] for n in ours} == ours
    assert all(plan.model == PRESET_MODEL[name] for name, plan in PRESETS.items())


@pytest.mark.parametrize(
    ("name", "family", "shifts", "z"),
    [
        ("sd35_turbo", "sd3", (5.060, 2.365, 2.861), 5.436),
        ("flux_schnell", "flux", (1.001, 1.025, 1.042), 4.47),
    ],
)
def test_the_distilled_presets_are_four_step_plans(name, family, shifts, z):
    plan = PRESETS[name]
    assert plan.family == family
    assert plan.steps == (1, 1, 2) and plan.total_steps == 4  # the distilled model's own step count
    assert plan.shifts == shifts and plan.z == z
    # Each stage starts before the previous one ended, and keeps most of the picture: Z as small as
    # the published presets' keeps the re-noise from sending a stage back to almost pure noise.
    assert 0.0 < plan.starts[1] < plan.ends[0] and 0.0 < plan.starts[2] < plan.ends[1]
    published = [p.z for other, p in PRESETS.items() if other not in ("sd35_turbo", "flux_schnell")]
    assert min(published) <= plan.z <= max(published)


def test_a_custom_plan_carries_the_model_it_was_made_for():
    plan = make_plan(**GOOD, shifts=(3.0, 3.0, 3.0), z=6.0, model="flux_schnell")
    assert (plan.family, plan.model) == ("flux", "flux_schnell")
    assert make_plan(**GOOD, shifts=(3.0, 3.0, 3.0), z=6.0).model is None


def test_plans_carry_their_model_family():
    assert FAMILIES == ("flux", "sd3")
    assert {name: plan.family for name, plan in PRESETS.items()} == PRESET_FAMILY
    assert make_plan(**GOOD, shifts=(3.0, 3.0, 3.0), z=6.0).family == "flux"
    assert make_plan(**GOOD, shifts=(3.0, 3.0, 3.0), z=6.0, family="sd3").family == "sd3"


@pytest.mark.parametrize("family", ["sdxl", "FLUX", None])
def test_an_unknown_family_is_refused(family):
    message = rf"family \({family!r}\) must be one of flux, sd3: the model family the plan is for"
    with pytest.raises(PlanError, match=message):
        make_plan(**GOOD, family=family)
    with pytest.raises(PlanError, match=message):
        dataclasses.replace(FLUX_4X, family=family)


def test_derived_values_follow_the_spec():
    z = FLUX_4X.z
    s1 = 0.3 / (z * 0.7 + 0.3)
    s2 = 0.45 / (z * 0.55 + 0.45)
    assert FLUX_4X.starts == pytest.approx((0.0, s1, s2), rel=1e-15)
    assert FLUX_4X.alphas == pytest.approx((1 - s1, 1 - s2), rel=1e-15)
    assert FLUX_4X.betas == pytest.approx((1 / (z * 0.7 + 0.3), 1 / (z * 0.55 + 0.45)), rel=1e-15)
    assert FLUX_4X.gamma == -1 / z**2 + 1e-6
    assert FLUX_4X.total_steps == 18


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_renoise_lands_on_the_next_stage_start(name):
    # x = e x0 + (1 - e) eps at the end of stage k; beta x + alpha n must carry signal 1 - sigma_next.
    plan = PRESETS[name]
    for k in (0, 1):
        assert plan.betas[k] * plan.ends[k] == pytest.approx(plan.starts[k + 1], rel=1e-14)
        assert plan.alphas[k] == pytest.approx(1.0 - plan.starts[k + 1], rel=1e-14)
        assert plan.starts[k + 1] < plan.ends[k]


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("k", [0, 1, 2])
def test_stage_sigmas_start_and_end_exactly(name, k):
    plan = PRESETS[name]
    sigmas = stage_sigmas(plan, k)
    assert sigmas.dtype.is_floating_point and sigmas.dtype.itemsize == 8
    assert len(sigmas) == plan.steps[k] + 1
    assert sigmas[0].item() == 1.0 - plan.starts[k]
    assert sigmas[-1].item() == 1.0 - plan.ends[k]
    assert bool((sigmas[1:] < sigmas[:-1]).all())


def test_first_stage_starts_at_pure_noise_and_last_ends_clean():
    sigmas = plan_sigmas(FLUX_4X)
    assert len(sigmas) == 3
    assert sigmas[0][0].item() == 1.0 and sigmas[2][-1].item() == 0.0


def test_stage_sigmas_are_uniform_before_the_shift():
    h = FLUX_4X.shifts[1]
    sigmas = stage_sigmas(FLUX_4X, 1).numpy()
    unshifted = sigmas / (h - (h - 1) * sigmas)
    steps = np.diff(unshifted)
    assert steps == pytest.approx(np.full_like(steps, steps[0]), rel=1e-9)


def test_unit_shift_gives_a_plain_linspace():
    plan = dataclasses.replace(FLUX_4X, shifts=(1.0, 1.0, 1.0))
    assert stage_sigmas(plan, 2).numpy() == pytest.approx(np.linspace(1 - plan.starts[2], 0.0, 8), abs=1e-15)


def test_stage_index_out_of_range():
    with pytest.raises(ValueError, match="must be 0, 1 or 2"):
        stage_sigmas(FLUX_4X, 3)


def test_make_plan_solves_missing_values():
    plan = make_plan((5, 6, 7), (0.3, 0.45, 1.0), 0.3, name="mine")
    assert plan.name == "mine"
    assert plan.shifts == pytest.approx((5.0193, 2.5890, 2.2262), abs=2e-3)
    assert plan.z == pytest.approx(6.3169, abs=2e-3)


def test_make_plan_keeps_given_values():
    plan = make_plan([5, 6, 7], [0.3, 0.45, 1.0], 0.3, shifts=[20.0, 1.0, 0.2], z=150.0)
    assert plan == Plan("custom", (5, 6, 7), (0.3, 0.45, 1.0), 0.3, (20.0, 1.0, 0.2), 150.0, "flux")


def test_plan_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FLUX_4X.z = 3.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"ends": (0.45, 0.3, 1.0)},
            "e2 (0.3) must be greater than e1 (0.45): "
            "the stage ends are progress values that strictly increase",
        ),
        ({"ends": (0.3, 0.3, 1.0)}, "e2 (0.3) must be greater than e1 (0.3)"),
        ({"ends": (0.3, 1.0, 1.0)}, "e2 (1.0) must be less than e3 (1.0)"),
        ({"ends": (0.3, 0.45, 0.9)}, "e3 (0.9) must be exactly 1.0: the last stage ends at the clean image"),
        ({"ends": (0.0, 0.45, 1.0)}, "e1 (0.0) must be greater than 0"),
        ({"ends": (0.3, math.nan, 1.0)}, "e2 (nan) must be a finite number"),
        ({"ends": (0.3, 1.0)}, "ends must be three values, one per stage"),
        ({"steps": (5, 0, 7)}, "N2 (0) must be at least 1: every stage takes one Euler step or more"),
        ({"steps": (5, 6.5, 7)}, "N2 (6.5) must be a whole number"),
        ({"steps": (True, 6, 7)}, "N1 (True) must be a whole number"),
        ({"steps": 18}, "steps must be three values, one per stage"),
        ({"up_ratio": 1.5}, "up_ratio (1.5) must be between 0 and 1"),
        ({"up_ratio": -0.1}, "up_ratio (-0.1) must be between 0 and 1"),
        ({"shifts": (3.0, 0.0, 3.0)}, "h2 (0.0) must be a number greater than 0"),
        ({"shifts": (3.0, 3.0, -1.0)}, "h3 (-1.0) must be a number greater than 0"),
        ({"z": 0.0}, "z (0.0) must be at least 2"),
        ({"z": -3.0}, "z (-3.0) must be at least 2"),
        ({"z": 1.5}, "z (1.5) must be at least 2: the re-noise covariance"),
        ({"z": math.inf}, "z (inf) must be at least 2"),
    ],
)
def test_bad_plans_say_what_to_change(change, message):
    with pytest.raises(PlanError) as error:
        validate_plan(**{**GOOD, **change})
    assert message in str(error.value)
    with pytest.raises(PlanError):
        make_plan(**{**GOOD, **change})


def test_plan_error_is_a_value_error():
    assert issubclass(PlanError, ValueError)


def test_bad_base_shift():
    with pytest.raises(PlanError, match=r"base_shift \(0.0\) must be greater than 0"):
        make_plan(**GOOD, base_shift=0.0)


def test_edge_values_are_accepted():
    validate_plan((1, 1, 2), (0.01, 0.99, 1.0), 0.0, shifts=(0.1, 50.0, 1.0), z=2.0)
    validate_plan((1, 1, 2), (0.5, 0.6, 1.0), 1.0)
    validate_plan(np.array([5, 6, 7]), np.array([0.3, 0.45, 1.0]), np.float64(0.3))
