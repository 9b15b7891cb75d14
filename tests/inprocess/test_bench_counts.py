"""The bench's rows (scripts/bench.py) on the tiny FLUX: what each row runs, by counts, never by time.

Each row runs once as the bench runs it (the RALU KSampler's glue with a taef1 VAE, ComfyUI's own
sampler and step caches) under the bench's FLOP counter. Checked: every RALU row calls the model as
often as its plan says, per stage; every naive row as often as its preset; and FlopCounterMode's count
of a RALU run is below the baseline's by the ratio ralu/cost.py's FLOP model gives for the tiny model
(its dimensions read from its weights as the bench reads them), within 20%.

The FLOP model's transformer part and its edge decode are compared with the count one by one (the
decode is the run's only convolution): on the tiny FLUX one half-size taef1 decode costs as much as
~40 of its steps, and the model's per-token cost a = 2 x all parameters (ralu/cost.py's convention:
for FLUX.1-dev too) counts the modulation weights, which act once per image, and both streams of a
double block, of which a token passes one: 2.5x the tiny model's real per-token work. So the whole
run's modelled ratio gives the decode too little weight there (1.95x modelled, 1.21x counted for
flux_4x at 256x256); with FLUX.1-dev's or the test FLUX's width the decode is a small fraction of a
step and the two agree (the bench's table shows both).
"""

import dataclasses

import pytest
from tiny_models import flux_conditioning

from scripts import bench as bench_script
from scripts.model_cost import TAESD_DECODE_FLOPS_PER_PIXEL, model_cost

SIZE = 128
TEXT_TOKENS = 8  # flux_conditioning's


@pytest.fixture(scope="module")
def counted(pack, tiny_flux, test_models):
    """Each row of the bench's table, run once on the tiny FLUX under the FLOP counter (but the plain
    sampler with EasyCache, whose 50 steps would only add time: the RALU rows check the caches)."""
    vae = bench_script.load_taef1(test_models.dir)
    bench = bench_script.Bench(pack, tiny_flux, vae, flux_conditioning(0), flux_conditioning(1), SIZE)
    try:
        rows = [row for row in bench_script.default_rows(bench.presets) if row.key != "plain+easycache"]
        yield bench, {row.key: (row, bench.run(row, count_flops=True)) for row in rows}
    finally:
        bench.close()


def flux_presets(bench):
    return [plan for plan in bench.presets.values() if plan.model == "flux"]


def test_the_rows_are_the_baseline_each_preset_naive_and_with_ralu_and_the_caches(counted):
    bench, _ = counted
    rows = bench_script.default_rows(bench.presets)
    assert rows[0].is_baseline and rows[0].steps == bench_script.BASELINE_STEPS
    presets = flux_presets(bench)
    assert {row.preset for row in rows if row.cache is None} == {None} | {p.name for p in presets}
    assert {row.steps for row in rows if row.preset is None and row.cache is None} == {
        bench_script.BASELINE_STEPS
    } | {p.total_steps for p in presets}
    cached = {(row.preset, row.cache) for row in rows if row.cache is not None}
    assert cached == {("flux_4x", "easycache"), ("flux_4x", "lazycache"), (None, "easycache")}


def test_each_ralu_row_calls_the_model_as_its_plan_says(counted):
    bench, runs = counted
    for row, run in runs.values():
        if row.preset is None:
            continue
        plan = bench.presets[row.preset]
        assert run.calls == list(plan.steps), row.key
        if row.cache is None:
            assert run.steps_skipped is None and run.forwards == plan.total_steps, row.key
        else:  # the sampler still asks for every step; the cache answers some without a forward
            assert len(run.steps_skipped) == 3, row.key
            assert run.forwards == plan.total_steps - sum(run.steps_skipped), row.key


def test_each_naive_row_calls_the_model_as_often_as_its_preset(counted):
    bench, runs = counted
    naive = {row.steps: run for row, run in runs.values() if row.preset is None and row.cache is None}
    assert naive[bench_script.BASELINE_STEPS].forwards == bench_script.BASELINE_STEPS
    for plan in flux_presets(bench):
        assert naive[plan.total_steps].forwards == plan.total_steps == sum(plan.steps), plan.name


def test_the_flop_counter_sees_ralu_save_what_the_flop_model_says(counted, tiny_flux):
    bench, runs = counted
    shapes = {
        k: tuple(v.shape) for k, v in tiny_flux.get_model_object("diffusion_model").state_dict().items()
    }
    cost, _ = model_cost(shapes, "flux", TEXT_TOKENS)
    transformer_only = dataclasses.replace(cost, vae_decode_flops_per_pixel=0.0)
    _, baseline = runs["plain"]
    assert "aten.convolution" not in baseline.flops_by_op  # FLUX itself has no convolution
    checked = 0
    for row, run in runs.values():
        if row.preset is None:
            continue
        assert run.flops < baseline.flops, row.key
        decode = run.flops_by_op["aten.convolution"]  # the one half-size edge decode
        half_size_decode = TAESD_DECODE_FLOPS_PER_PIXEL * (SIZE // 2) ** 2
        if row.edges == "vae":
            assert decode == pytest.approx(half_size_decode, rel=1e-6), row.key
        else:  # no decode: only the gradient kernel's convolution over the latent
            assert 0 < decode < 1e-4 * half_size_decode, row.key
        modelled = bench_script.modelled_speedup(transformer_only, row, run, bench.presets, SIZE)
        counted_speedup = baseline.flops / (run.flops - decode)
        assert 0.8 <= counted_speedup / modelled <= 1.2, (row.key, counted_speedup, modelled)
        checked += 1
    assert checked == len(flux_presets(bench)) + 3  # and the caches' two rows, the latent edges' one
    # The naive rows only shorten the plain sampler: their counts scale with the steps exactly.
    for row, run in runs.values():
        if row.preset is None and row.cache is None:
            assert run.flops * bench_script.BASELINE_STEPS == pytest.approx(
                baseline.flops * row.steps, rel=1e-6
            )


def test_the_latent_edges_row_is_compared_cell_by_cell_with_the_vae_path(counted):
    bench, runs = counted
    row, _ = runs[bench_script.LATENT_EDGES_ROW]
    assert (row.preset, row.edges) == ("flux_4x", "latent gradient")
    shared, chosen = bench_script.latent_edges_overlap(bench.early_masks)
    low_res_cells = (SIZE // 32) ** 2
    assert chosen == int(low_res_cells * bench.presets["flux_4x"].up_ratio)  # the plan's k cells
    vae, latent = (bench.early_masks[key] for key in ("flux_4x", bench_script.LATENT_EDGES_ROW))
    assert int((latent > 0.5).sum()) == int((vae > 0.5).sum())  # the same k, wherever they lie
    assert shared == int(((vae > 0.5) & (latent > 0.5)).sum()) // 32**2


def test_the_bench_loads_the_pack_through_comfyuis_loader_with_no_server():
    """`make bench` runs ComfyUI as a library: the pack's entry point must load there too (its route
    has no server to go on, and importing server.py after nodes.py would fail)."""
    import subprocess
    import sys

    from tests.comfy_path import REPO_ROOT

    script = (
        "from scripts import bench; from tests import comfy_path; comfy_path.ensure(); "
        "pack = bench.import_pack(); print('loaded', pack.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "loaded" in done.stdout, done.stdout + done.stderr
