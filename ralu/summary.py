"""The readable plan summary the Stage Planner shows."""

from __future__ import annotations

from .cost import SpeedupEstimate
from .plan import Plan


def describe_plan(plan: Plan, estimate: SpeedupEstimate, width: int, height: int, model: str) -> str:
    """`model`: the name of the model the estimate is for (CostModel.label, e.g. "SD3.5 Large Turbo")."""
    starts = plan.starts
    family = plan.family.upper()
    lines = [
        f"RALU plan '{plan.name}' for {family} models: {plan.total_steps} steps, "
        f"early upsample ratio {plan.up_ratio:g}"
    ]
    full_tokens = estimate.tokens[2]
    names = ("low-res", "mixed", "full-res")
    for k in range(3):
        sigma_start, sigma_end = 1.0 - starts[k], 1.0 - plan.ends[k]
        fraction = estimate.tokens[k] / full_tokens
        lines.append(
            f"stage {k + 1} ({names[k]}): {plan.steps[k]} steps, sigma {sigma_start:.3f} -> {sigma_end:.3f}, "
            f"{fraction:.1%} of the tokens, shift {plan.shifts[k]:.3f}"
        )
    lines.append(f"Z = {plan.z:.3f}")
    lines.append(
        f"estimated speed-up vs {estimate.baseline_steps} steps of {model} at {width}x{height}: "
        f"{estimate.speedup:.2f}x ({estimate.linear_only_speedup:.2f}x counting linear layers only)"
    )
    return "\n".join(lines)
