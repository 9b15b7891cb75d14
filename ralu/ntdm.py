"""NT-DM: choose per-stage time shifts and Z so that the stages' timesteps match the model's.

The target is the base model's shifted-timestep density plus the two re-noise overlaps (the
progress ranges [s_k, e_k] that are denoised twice); the model is the step-weighted mixture of
each stage's shifted density truncated to its own progress range. docs/algorithm.md, "The plan",
gives the whole objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.optimize import minimize
from scipy.spatial.distance import jensenshannon

# The reference's optimiser setup: start, bounds and grid are part of what makes the presets.
SHIFT_START = 3.0
Z_START = 2.0
SHIFT_BOUNDS = (0.5, 10.0)
Z_BOUNDS = (2.0, 100.0)
GRID = np.linspace(0.0, 1.0, 1000)
DENSITY_FLOOR = 1e-10
# The second pass: converged far past the reference's default tolerances (see _solve).
POLISH_OPTIONS = {"ftol": 1e-15, "gtol": 1e-11, "maxls": 50}


def stage_starts(ends: Sequence[float], z: float) -> tuple[float, float, float]:
    """Start progress of each stage: s_0 = 0 and s_k = e_k / (Z (1 - e_k) + e_k)."""
    e1, e2 = ends[0], ends[1]
    return 0.0, e1 / (z * (1.0 - e1) + e1), e2 / (z * (1.0 - e2) + e2)


def shifted_pdf(t: np.ndarray, shift: float) -> np.ndarray:
    """Density of progress t when a uniform timestep is warped by the time shift h."""
    return shift / (1.0 + (shift - 1.0) * t) ** 2


def shifted_cdf(t: float, shift: float) -> float:
    return shift * t / (1.0 + (shift - 1.0) * t)


def truncated_pdf(t: np.ndarray, shift: float, start: float, end: float) -> np.ndarray:
    """shifted_pdf restricted to [start, end] (both ends included) and renormalised there."""
    mass = shifted_cdf(end, shift) - shifted_cdf(start, shift)
    inside = (t >= start) & (t <= end)
    return np.where(inside, shifted_pdf(t, shift) / mass, 0.0)


def target_density(
    t: np.ndarray, ends: Sequence[float], starts: Sequence[float], base_shift: float
) -> np.ndarray:
    overlaps = [(ends[k] - starts[k + 1], starts[k + 1], ends[k]) for k in (0, 1)]
    total = shifted_pdf(t, base_shift)
    for width, start, end in overlaps:
        total = total + width * truncated_pdf(t, base_shift, start, end)
    return total / (1.0 + sum(width for width, _, _ in overlaps))


def stage_mixture_density(
    t: np.ndarray,
    steps: Sequence[int],
    ends: Sequence[float],
    starts: Sequence[float],
    shifts: Sequence[float],
) -> np.ndarray:
    weighted = sum(n * truncated_pdf(t, h, s, e) for n, h, s, e in zip(steps, shifts, starts, ends))
    return weighted / sum(steps)


def _as_distribution(density: np.ndarray) -> np.ndarray:
    clipped = np.clip(density, DENSITY_FLOOR, None)
    return clipped / clipped.sum()


def mismatch(
    steps: Sequence[int],
    ends: Sequence[float],
    shifts: Sequence[float],
    z: float,
    base_shift: float,
) -> float:
    """Jensen-Shannon distance between the target and the plan's timestep distribution."""
    starts = stage_starts(ends, z)
    target = target_density(GRID, ends, starts, base_shift)
    model = stage_mixture_density(GRID, steps, ends, starts, shifts)
    return float(jensenshannon(_as_distribution(target), _as_distribution(model)))


def solve_ntdm(
    steps: Sequence[int],
    ends: Sequence[float],
    base_shift: float = 3.0,
    *,
    fixed_shifts: Sequence[float] | None = None,
    fixed_z: float | None = None,
) -> tuple[tuple[float, float, float], float]:
    """Minimise the mismatch over whatever of (shifts, z) is not fixed; returns (shifts, z).

    Fixing both is allowed and returns them unchanged. Inputs are assumed valid (plan.validate_plan).
    """
    return _solve(
        tuple(int(n) for n in steps),
        tuple(float(e) for e in ends),
        float(base_shift),
        None if fixed_shifts is None else tuple(float(h) for h in fixed_shifts),
        None if fixed_z is None else float(fixed_z),
    )


@lru_cache(maxsize=64)
def _solve(
    steps: tuple[int, ...],
    ends: tuple[float, ...],
    base_shift: float,
    fixed_shifts: tuple[float, ...] | None,
    fixed_z: float | None,
) -> tuple[tuple[float, float, float], float]:
    # Cached because the UI re-estimates the same custom plan on every widget change.
    free_shifts = fixed_shifts is None
    free_z = fixed_z is None
    start: list[float] = []
    bounds: list[tuple[float, float]] = []
    if free_shifts:
        start += [SHIFT_START] * 3
        bounds += [SHIFT_BOUNDS] * 3
    if free_z:
        start.append(Z_START)
        bounds.append(Z_BOUNDS)

    def unpack(x: np.ndarray) -> tuple[tuple[float, float, float], float]:
        shifts = tuple(float(h) for h in x[:3]) if free_shifts else fixed_shifts
        z = float(x[-1]) if free_z else fixed_z
        return shifts, z  # type: ignore[return-value]

    if not start:
        return unpack(np.empty(0))
    result = minimize(lambda x: mismatch(steps, ends, *unpack(x), base_shift), start, bounds=bounds)
    shifts, z = unpack(result.x)
    if free_shifts:
        shifts = polish_shifts(steps, ends, z, base_shift, shifts, result.fun)
    return shifts, z


def polish_shifts(
    steps: Sequence[int],
    ends: Sequence[float],
    z: float,
    base_shift: float,
    start: Sequence[float],
    start_mismatch: float,
) -> tuple[float, float, float]:
    """The shifts that best fit a fixed Z, from `start`; never worse than `start`.

    The reference's one pass stops where its default tolerances meet a nearly flat valley, so the
    last digits it returns depend on the scipy build and on summation order (h1 of sd3_3x moved by
    0.014 between machines). Z is where the objective is piecewise (grid points enter and leave the
    truncation windows as Z moves), but for a fixed Z it is smooth in the shifts, so a tightly
    converged second pass lands on the same shifts from any start and on any machine.
    """

    def objective(h: np.ndarray) -> float:
        return mismatch(steps, ends, tuple(h), z, base_shift)

    result = minimize(objective, list(start), bounds=[SHIFT_BOUNDS] * 3, options=POLISH_OPTIONS)
    if result.fun > start_mismatch:
        return tuple(float(h) for h in start)  # type: ignore[return-value]
    return tuple(float(h) for h in result.x)  # type: ignore[return-value]
