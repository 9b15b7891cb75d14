"""RALU stage plans: steps, stage ends, up-ratio, per-stage shifts and Z; presets and schedules."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .ntdm import solve_ntdm, stage_starts


class PlanError(ValueError):
    """A plan that cannot run; the message says which value to change and why."""


# The model families a plan can be for; the RALU KSampler refuses a plan made for another family.
FAMILIES = ("flux", "sd3")


def validate_family(family: object) -> None:
    if family not in FAMILIES:
        raise PlanError(
            f"family ({family!r}) must be one of {', '.join(FAMILIES)}: the model family the plan is for"
        )


@dataclass(frozen=True)
class Plan:
    name: str
    steps: tuple[int, int, int]
    ends: tuple[float, float, float]
    up_ratio: float
    shifts: tuple[float, float, float]
    z: float
    family: str  # "flux" or "sd3": the models the plan was made (and is checked) for
    # The model within the family it was made for (a key of ralu.cost.COST_MODELS: "flux" for
    # FLUX.1-dev, "flux_schnell", "sd3", ...), checked where the loaded model tells them apart.
    model: str | None = None

    def __post_init__(self) -> None:
        validate_family(self.family)

    @property
    def starts(self) -> tuple[float, float, float]:
        return stage_starts(self.ends, self.z)

    @property
    def alphas(self) -> tuple[float, float]:
        """Weight of fresh noise when re-noising into stage 2 and stage 3."""
        return 1.0 - self.starts[1], 1.0 - self.starts[2]

    @property
    def betas(self) -> tuple[float, float]:
        """Weight of the current latent when re-noising into stage 2 and stage 3."""
        e1, e2 = self.ends[0], self.ends[1]
        return 1.0 / (self.z * (1.0 - e1) + e1), 1.0 / (self.z * (1.0 - e2) + e2)

    @property
    def gamma(self) -> float:
        """Within-group correlation of the re-noise; 1e-6 keeps the reference's covariance definite."""
        return -1.0 / self.z**2 + 1e-6

    @property
    def total_steps(self) -> int:
        return sum(self.steps)


PRESETS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        Plan("flux_4x", (5, 6, 7), (0.3, 0.45, 1.0), 0.3, (5.019, 2.589, 2.226), 6.317, "flux", "flux"),
        Plan("flux_5x", (4, 5, 6), (0.3, 0.45, 1.0), 0.2, (5.106, 2.641, 2.251), 7.522, "flux", "flux"),
        Plan("flux_7x", (2, 3, 5), (0.2, 0.3, 1.0), 0.1, (8.141, 2.856, 2.193), 6.261, "flux", "flux"),
        # FLUX.1-schnell in its own 4 steps, N = 1, 1, 2 as the paper ran distilled models. Schnell
        # samples without a time shift (ComfyUI's FluxSchnell: shift 1), so NT-DM matches base shift 1.
        # On a 0.05 grid of e1 < e2, the best fits (Jensen-Shannon 0.002-0.0025) need Z of 9.5 to 98;
        # e = 0.4, 0.55 is the best with Z within the published presets' 4.1-7.5 (0.0036). h and Z:
        # solve_ntdm((1, 1, 2), (0.4, 0.55, 1.0)) with base shift 1, rounded to 3 decimals.
        Plan(
            "flux_schnell",
            (1, 1, 2),
            (0.4, 0.55, 1.0),
            0.3,
            (1.001, 1.025, 1.042),
            4.47,
            "flux",
            "flux_schnell",
        ),
        Plan("sd3_2x", (5, 6, 9), (0.2, 0.3, 1.0), 0.3, (6.121, 2.237, 1.973), 4.132, "sd3", "sd3"),
        Plan("sd3_3x", (3, 3, 6), (0.25, 0.3, 1.0), 0.2, (6.402, 2.602, 2.273), 6.258, "sd3", "sd3"),
        # SD3.5 Large Turbo in its own 4 steps, N = 1, 1, 2 as the paper ran distilled models; the
        # paper gives no stage ends for them. Of all e1 < e2 on a 0.05 grid, e = 0.2, 0.4 fit NT-DM best
        # (Jensen-Shannon 0.0116) with Z within the published presets' 4.1-7.5 (every closer fit needs
        # Z of 8.8 to 100: the larger Z, the nearer to pure noise each stage restarts). h and Z:
        # solve_ntdm((1, 1, 2), (0.2, 0.4, 1.0)) with base shift 3, rounded to 3 decimals.
        Plan(
            "sd35_turbo",
            (1, 1, 2),
            (0.2, 0.4, 1.0),
            0.3,
            (5.060, 2.365, 2.861),
            5.436,
            "sd3",
            "sd3.5_large_turbo",
        ),
    )
}
PRESET_FAMILY: dict[str, str] = {name: plan.family for name, plan in PRESETS.items()}
# The model each preset is for (a key of ralu.cost.COST_MODELS): its speed-up is estimated on that
# model's dimensions against that model's own step count (FLUX.1-dev 50, SD3 Medium 28, the turbo 4).
PRESET_MODEL: dict[str, str] = {name: plan.model for name, plan in PRESETS.items()}  # type: ignore[misc]

_ENDS_INCREASE = "the stage ends are progress values that strictly increase"
# Below this the re-noise covariance I + gamma 11^T (gamma = -1/Z^2) is not positive semi-definite.
MIN_Z = 2.0


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _require_three(values: object, what: str) -> tuple:
    as_tuple = tuple(values) if hasattr(values, "__len__") and not isinstance(values, str) else ()
    if len(as_tuple) != 3:
        raise PlanError(f"{what} must be three values, one per stage; got {values!r}")
    return as_tuple


def _validate_steps(steps: object) -> None:
    for k, n in enumerate(_require_three(steps, "steps"), start=1):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise PlanError(f"N{k} ({n!r}) must be a whole number: it counts the Euler steps of stage {k}")
        if n < 1:
            raise PlanError(f"N{k} ({n}) must be at least 1: every stage takes one Euler step or more")


def validate_ends(ends: object) -> None:
    e1, e2, e3 = _require_three(ends, "ends")
    for k, e in enumerate((e1, e2, e3), start=1):
        if not _is_number(e):
            raise PlanError(f"e{k} ({e!r}) must be a finite number: the progress at which stage {k} ends")
    if e3 != 1.0:
        raise PlanError(f"e3 ({e3}) must be exactly 1.0: the last stage ends at the clean image")
    if not e1 > 0.0:
        raise PlanError(f"e1 ({e1}) must be greater than 0: stage 1 has to denoise some of the way")
    if not e2 > e1:
        raise PlanError(f"e2 ({e2}) must be greater than e1 ({e1}): {_ENDS_INCREASE}")
    if not e2 < e3:
        raise PlanError(f"e2 ({e2}) must be less than e3 ({e3}): {_ENDS_INCREASE}")


def _validate_up_ratio(up_ratio: object) -> None:
    if not _is_number(up_ratio) or not 0.0 <= up_ratio <= 1.0:
        raise PlanError(
            f"up_ratio ({up_ratio!r}) must be between 0 and 1: it is the fraction of low-res tokens "
            "upsampled early"
        )


def _validate_shifts(shifts: object) -> None:
    for k, h in enumerate(_require_three(shifts, "shifts"), start=1):
        if not _is_number(h) or h <= 0.0:
            raise PlanError(
                f"h{k} ({h!r}) must be a number greater than 0: it is the time shift of stage {k} "
                "(the solver picks values in [0.5, 10]; leave it empty to solve it)"
            )


def _validate_z(z: object) -> None:
    if not _is_number(z) or z < MIN_Z:
        raise PlanError(
            f"z ({z!r}) must be at least {MIN_Z:g}: the re-noise covariance I - 11^T / z^2 has no Gaussian "
            "below that (the solver picks values in [2, 100]; leave it empty to solve it)"
        )


def validate_plan(
    steps: object,
    ends: object,
    up_ratio: object,
    shifts: object | None = None,
    z: object | None = None,
) -> None:
    """Raise PlanError for the first value that cannot make a plan; None shifts / z are not checked."""
    _validate_steps(steps)
    validate_ends(ends)
    _validate_up_ratio(up_ratio)
    if shifts is not None:
        _validate_shifts(shifts)
    if z is not None:
        _validate_z(z)


def make_plan(
    steps: Sequence[int],
    ends: Sequence[float],
    up_ratio: float,
    shifts: Sequence[float] | None = None,
    z: float | None = None,
    base_shift: float = 3.0,
    name: str = "custom",
    family: str = "flux",
    model: str | None = None,
) -> Plan:
    """Validate, then solve NT-DM for the shifts and / or Z the caller left as None."""
    validate_plan(steps, ends, up_ratio, shifts, z)
    validate_family(family)
    if not _is_number(base_shift) or base_shift <= 0.0:
        raise PlanError(f"base_shift ({base_shift!r}) must be greater than 0: the model's own time shift")
    solved_shifts, solved_z = solve_ntdm(steps, ends, base_shift, fixed_shifts=shifts, fixed_z=z)
    return Plan(
        name=name,
        steps=tuple(int(n) for n in steps),  # type: ignore[arg-type]
        ends=tuple(float(e) for e in ends),  # type: ignore[arg-type]
        up_ratio=float(up_ratio),
        shifts=tuple(float(h) for h in solved_shifts),  # type: ignore[arg-type]
        z=float(solved_z),
        family=family,
        model=model,
    )


def _shift_sigma(sigma: torch.Tensor | float, shift: float) -> torch.Tensor | float:
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def _unshift_sigma(sigma: float, shift: float) -> float:
    return sigma / (shift - (shift - 1.0) * sigma)


def stage_sigmas(plan: Plan, k: int) -> torch.Tensor:
    """The N_k + 1 sigmas of stage k (0-based): uniform in unshifted time, then shifted by h_k."""
    if k not in (0, 1, 2):
        raise ValueError(f"stage index k ({k}) must be 0, 1 or 2")
    start = 1.0 - plan.starts[k]
    end = 1.0 - plan.ends[k]
    shift = plan.shifts[k]
    uniform = torch.linspace(
        _unshift_sigma(start, shift), _unshift_sigma(end, shift), plan.steps[k] + 1, dtype=torch.float64
    )
    sigmas = _shift_sigma(uniform, shift)
    # The round trip through the shift is off by an ulp or so; the stage boundaries must meet exactly.
    sigmas[0] = start
    sigmas[-1] = end
    return sigmas


def plan_sigmas(plan: Plan) -> list[torch.Tensor]:
    return [stage_sigmas(plan, k) for k in range(3)]
