"""`make bench`'s table: each row's medians against the baseline and the FLOP model, and the Markdown."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ralu.cost import COST_MODELS, PIXELS_PER_TOKEN_SIDE, StepCost, estimate_speedup_for
from scripts.bench_meters import RowRun
from scripts.bench_rows import Family, Row, latent_edges_key, lead_preset

if TYPE_CHECKING:
    from scripts.bench import Bench


def modelled_speedup(
    cost: StepCost, row: Row, run: RowRun, presets: dict, size: int, baseline_steps: int
) -> float:
    """ralu/cost.py's speed-up over the baseline for what the row ran: the plan's steps at its stage
    token counts (less the steps a cache answered) plus the edge decode, or the plain sampler's forwards."""
    if row.edges != "vae":  # no decode: edges from the latent
        cost = dataclasses.replace(cost, vae_decode_flops_per_pixel=0.0)
    full_step = cost.step_flops((size // PIXELS_PER_TOKEN_SIDE) ** 2)
    baseline = baseline_steps * full_step
    if row.preset is None:
        return baseline / (run.forwards * full_step)
    estimate = estimate_speedup_for(cost, presets[row.preset], size, size, baseline_steps)
    skipped = run.steps_skipped or (0, 0, 0)
    saved = sum(n * cost.step_flops(tokens) for n, tokens in zip(skipped, estimate.tokens))
    return estimate.baseline_flops / (estimate.ralu_flops - saved)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def summarise(bench: Bench, rows: list[Row], flops: dict, timed: dict, run_cost: StepCost) -> list[dict]:
    """Each row's medians and model figures; the counts (calls, skips, FLOPs) are the FLOP run's, and a
    step cache's skips in the timed runs are kept beside them (a cache decides on the values)."""
    base = rows[0]
    base_seconds = median([r.seconds for r in timed[base.key]])
    base_cpu = median([r.cpu_seconds for r in timed[base.key]])
    base_flops = flops[base.key].flops
    out = []
    for row in rows:
        runs, first = timed[row.key], flops[row.key]
        seconds = median([r.seconds for r in runs])
        measured = base_seconds / seconds
        steps, real_cost = bench.family.baseline_steps, COST_MODELS[bench.family.name].step
        model_run = modelled_speedup(run_cost, row, first, bench.presets, bench.size, steps)
        real = modelled_speedup(real_cost, row, first, bench.presets, bench.size, steps)
        ralu = row.preset is not None
        out.append(
            {
                "key": row.key,
                "label": row.label,
                "calls": first.calls,
                "tokens": first.tokens,
                "forwards": first.forwards,
                "steps_skipped": first.steps_skipped,
                "steps_skipped_timed": [r.steps_skipped for r in runs],
                "seconds": seconds,
                "seconds_each": [r.seconds for r in runs],
                "cpu_seconds": median([r.cpu_seconds for r in runs]),
                "speedup": measured,
                "cpu_speedup": base_cpu / median([r.cpu_seconds for r in runs]),
                "flop_model_run": model_run,
                "measured_over_flop_model": measured / model_run,
                "flop_model_real": real,
                "flops_counted": first.flops,
                "flops_counted_speedup": base_flops / first.flops,
                "flops_by_op": first.flops_by_op,
                "transition_seconds": median([r.transition_seconds for r in runs]) if ralu else None,
                "transition_share": median([r.transition_seconds / r.seconds for r in runs])
                if ralu
                else None,
                "edge_share": median([r.edge_seconds / r.seconds for r in runs]) if ralu else None,
                "peak_bytes": max(r.peak_bytes for r in runs),
                "peak_bytes_each": [r.peak_bytes for r in runs],
            }
        )
    return out


def latent_edges_overlap(early_masks: dict, presets: dict, family: Family) -> tuple[int, int] | None:
    """(cells both edge sources upsampled early, cells the VAE path upsampled early) for the lead preset,
    from the early_mask outputs (1 on each chosen 32x32-pixel cell); None unless both rows ran."""
    keys = (lead_preset(presets, family), latent_edges_key(presets, family))
    if any(key not in early_masks for key in keys):
        return None
    vae, latent = (early_masks[key][..., ::32, ::32] > 0.5 for key in keys)
    return int((vae & latent).sum()), int(vae.sum())


def fit_step_time(results: list[dict], text_tokens: int) -> tuple[float, float] | None:
    """Seconds per model call that do not depend on the tokens, and seconds per token, fitted (least
    squares) to the rows without a cache: wall time less the transitions = calls x fixed + token-calls
    x per-token. None when the rows cannot tell the two apart, or the noise gives a negative term."""
    import numpy as np

    fitted = [r for r in results if r["steps_skipped"] is None]
    calls = [sum(r["calls"]) for r in fitted]
    token_calls = [sum(n * (t + text_tokens) for n, t in zip(r["calls"], r["tokens"])) for r in fitted]
    seconds = [r["seconds"] - (r["transition_seconds"] or 0.0) for r in fitted]
    design = np.array([calls, token_calls], dtype=float).T
    if len(fitted) < 3 or np.linalg.matrix_rank(design) < 2:
        return None
    (fixed, per_token), *_ = np.linalg.lstsq(design, np.array(seconds), rcond=None)
    return (float(fixed), float(per_token)) if fixed > 0 and per_token > 0 else None


def render(results: list[dict], header: list[str], notes: list[str], cuda: bool, real_model: str) -> str:
    cols = ["row", "model calls", "wall time (median)", "speed-up"]
    cols += [] if cuda else ["CPU-time speed-up"]
    cols += [
        "FLOP model, model run",
        "measured / FLOP model",
        f"FLOP model, {real_model}",
        "FLOPs counted (speed-up)",
        "steps skipped",
        "transition (edges)",
        "peak memory",
    ]
    table = []
    for r in results:
        calls = str(sum(r["calls"])) + (f" ({'+'.join(map(str, r['calls']))})" if len(r["calls"]) > 1 else "")
        if r["forwards"] != sum(r["calls"]):
            calls += f", {r['forwards']} run"
        skipped = "-" if r["steps_skipped"] is None else "+".join(map(str, r["steps_skipped"]))
        timed_skips = {"+".join(map(str, t)) for t in r["steps_skipped_timed"] if t is not None}
        if timed_skips - {skipped}:
            skipped += f" (timed: {', '.join(sorted(timed_skips))})"
        transition = "-"
        if r["transition_share"] is not None:
            transition = f"{100 * r['transition_share']:.2f}% ({100 * r['edge_share']:.2f}%)"
        cells = [r["label"], calls, f"{r['seconds']:.1f} s", f"{r['speedup']:.2f}x"]
        cells += [] if cuda else [f"{r['cpu_speedup']:.2f}x"]
        cells += [
            f"{r['flop_model_run']:.2f}x",
            f"{r['measured_over_flop_model']:.2f}",
            f"{r['flop_model_real']:.2f}x",
            f"{r['flops_counted'] / 1e12:.2f} T ({r['flops_counted_speedup']:.2f}x)",
            skipped,
            transition,
            f"{r['peak_bytes'] / 2**20:+.0f} MiB",
        ]
        table.append(cells)
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    lines = [*header, "", line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join([*lines, *(line(t) for t in table), "", *notes])
