"""The bench's rows (scripts/bench.py) on the tiny FLUX and the tiny SD3: what each row runs, by counts,
never by time.

Each row runs once as the bench runs it (the RALU KSampler's glue with a taef1 or taesd3 VAE, ComfyUI's
own sampler and step caches, the family's cfg and scheduler) under the bench's FLOP counter. Checked:
every RALU row calls the model as often as its plan says, per stage; every naive row as often as its
preset; and FlopCounterMode's count of a RALU run is below the baseline's by the ratio ralu/cost.py's
FLOP model gives for the tiny model (its dimensions read from its weights as the bench reads them),
within 20% (less its edge decode, which the tiny SD3's 28 steps do not outweigh).

The FLOP model's transformer part and its edge decode are compared with the count one by one (the
decode is FLUX's only convolution): on the tiny FLUX one half-size taef1 decode costs as much as
~40 of its steps, and the model's per-token cost a = 2 x all parameters (ralu/cost.py's convention:
for FLUX.1-dev too) counts the modulation weights, which act once per image, and both streams of a
double block, of which a token passes one: 2.5x the tiny model's real per-token work. So the whole
run's modelled ratio gives the decode too little weight there (1.95x modelled, 1.21x counted for
flux_4x at 256x256); with FLUX.1-dev's or the test FLUX's width the decode is a small fraction of a
step and the two agree (the bench's table shows both). SD3's patch embedding is a convolution too: the
baseline's convolutions, per image token and call, tell it apart from the decode.
"""

import dataclasses

import pytest
from tiny_models import flux_conditioning, sd3_conditioning

from scripts import bench as bench_script
from scripts import bench_models, bench_rows, bench_table
from scripts.model_cost import TAESD_DECODE_FLOPS_PER_PIXEL, model_cost

SIZE = 128
TEXT_TOKENS = 8  # flux_conditioning's and sd3_conditioning's


# Each family's tiny model fixture, conditioning, and the presets the bench must run on it.
FAMILIES = {
    "flux": ("tiny_flux", flux_conditioning, {"flux_4x", "flux_5x", "flux_7x"}),
    "sd3": ("tiny_sd3", sd3_conditioning, {"sd3_2x", "sd3_3x"}),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def counted(request, pack, test_models):
    """Each row of the bench's table, run once on the family's tiny model under the FLOP counter (but the
    plain sampler with EasyCache, whose full run would only add time: the RALU rows check the caches)."""
    fixture, make_conditioning, _ = FAMILIES[request.param]
    family = bench_rows.FAMILIES[request.param]
    vae = bench_script.load_taesd(test_models.dir, family.vae)
    model = request.getfixturevalue(fixture)
    bench = bench_script.Bench(pack, model, vae, make_conditioning(0), make_conditioning(1), SIZE, family)
    try:
        rows = bench_rows.default_rows(bench.presets, family)
        rows = [row for row in rows if row.key != "plain+easycache"]
        yield bench, {row.key: (row, bench.run(row, count_flops=True)) for row in rows}
    finally:
        bench.close()


def presets_of(bench):
    return bench_rows.family_presets(bench.presets, bench.family)


def test_the_rows_are_the_baseline_each_preset_naive_and_with_ralu_and_the_caches(counted):
    bench, _ = counted
    family = bench.family
    rows = bench_rows.default_rows(bench.presets, family)
    assert rows[0].is_baseline
    assert rows[0].steps == family.baseline_steps == {"flux": 50, "sd3": 28}[family.name]
    presets = presets_of(bench)
    assert {p.name for p in presets} == FAMILIES[family.name][2]
    assert {row.preset for row in rows if row.cache is None} == {None} | {p.name for p in presets}
    assert {row.steps for row in rows if row.preset is None and row.cache is None} == {
        family.baseline_steps
    } | {p.total_steps for p in presets}
    cached = {(row.preset, row.cache) for row in rows if row.cache is not None}
    lead = presets[0].name
    assert cached == {(lead, "easycache"), (lead, "lazycache"), (None, "easycache")}


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
    steps = bench.family.baseline_steps
    assert naive[steps].forwards == steps
    for plan in presets_of(bench):
        assert naive[plan.total_steps].forwards == plan.total_steps == sum(plan.steps), plan.name


def test_the_flop_counter_sees_ralu_save_what_the_flop_model_says(counted):
    bench, runs = counted
    steps = bench.family.baseline_steps
    state = bench.model.get_model_object("diffusion_model").state_dict()
    cost, _ = model_cost({k: tuple(v.shape) for k, v in state.items()}, bench.family.name, TEXT_TOKENS)
    transformer_only = dataclasses.replace(cost, vae_decode_flops_per_pixel=0.0)
    _, baseline = runs["plain"]
    # FLUX has no convolution; SD3's patch embedding is one, whose count grows with the image tokens
    patch_embedding = baseline.flops_by_op.get("aten.convolution", 0.0) / (steps * baseline.tokens[0])
    assert (patch_embedding > 0) == (bench.family.name == "sd3")
    checked = 0
    for row, run in runs.values():
        if row.preset is None:
            continue
        forwards = [n - skipped for n, skipped in zip(run.calls, run.steps_skipped or (0, 0, 0))]
        token_calls = sum(n * tokens for n, tokens in zip(forwards, run.tokens))
        # the one half-size edge decode (or the latent gradient's kernel)
        decode = run.flops_by_op["aten.convolution"] - patch_embedding * token_calls
        half_size_decode = TAESD_DECODE_FLOPS_PER_PIXEL * (SIZE // 2) ** 2
        if row.edges == "vae":
            assert decode == pytest.approx(half_size_decode, rel=1e-6), row.key
        else:  # no decode: only the gradient kernel's convolution over the latent
            assert 0 < decode < 1e-4 * half_size_decode, row.key
        assert run.flops - decode < baseline.flops, row.key  # (on the tiny SD3 the decode outweighs 28 steps)
        modelled = bench_table.modelled_speedup(transformer_only, row, run, bench.presets, SIZE, steps)
        counted_speedup = baseline.flops / (run.flops - decode)
        assert 0.8 <= counted_speedup / modelled <= 1.2, (row.key, counted_speedup, modelled)
        checked += 1
    assert checked == len(presets_of(bench)) + 3  # and the caches' two rows, the latent edges' one
    # The naive rows only shorten the plain sampler: their counts scale with the steps exactly.
    for row, run in runs.values():
        if row.preset is None and row.cache is None:
            assert run.flops * steps == pytest.approx(baseline.flops * row.steps, rel=1e-6)


def test_the_latent_edges_row_is_compared_cell_by_cell_with_the_vae_path(counted):
    bench, runs = counted
    lead = presets_of(bench)[0].name
    latent_key = bench_rows.latent_edges_key(bench.presets, bench.family)
    row, _ = runs[latent_key]
    assert (row.preset, row.edges) == (lead, "latent gradient")
    shared, chosen = bench_table.latent_edges_overlap(bench.early_masks, bench.presets, bench.family)
    low_res_cells = (SIZE // 32) ** 2
    assert chosen == int(low_res_cells * bench.presets[lead].up_ratio)  # the plan's k cells
    vae, latent = (bench.early_masks[key] for key in (lead, latent_key))
    assert int((latent > 0.5).sum()) == int((vae > 0.5).sum())  # the same k, wherever they lie
    assert shared == int(((vae > 0.5) & (latent > 0.5)).sum()) // 32**2


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_gpu_models_have_the_real_models_dimensions(comfy_inprocess, family):
    """--gpu builds FLUX.1-dev's and SD3 Medium's dimensions (here on the meta device: shapes only): the
    cost constants read from them are ralu/cost.py's for the real model (its parameter count rounded)."""
    import torch

    from ralu.cost import COST_MODELS

    real = COST_MODELS[family].step

    def cost_of(sd3_blocks=None):
        model_config = bench_models.real_dims_config(bench_rows.FAMILIES[family], sd3_blocks)
        model_config.set_inference_dtype(torch.bfloat16, None)
        state = model_config.get_model({}, device="meta").diffusion_model.state_dict()
        return model_cost({k: tuple(v.shape) for k, v in state.items()}, family, real.text_tokens)[0]

    cost = cost_of()
    assert cost.attention_flops_per_token_pair == real.attention_flops_per_token_pair
    assert cost.linear_flops_per_token == pytest.approx(real.linear_flops_per_token, rel=0.02)
    if family == "sd3":  # the CPU mode's one block of SD3 Medium's width
        assert cost_of(bench_script.CPU_SD3_BLOCKS).attention_flops_per_token_pair == 4 * 1536


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
