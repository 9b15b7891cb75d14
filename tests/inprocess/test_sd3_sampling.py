"""RALU KSampler on a tiny random SD3 (MMDiT), through ComfyUI's guider: the SD3 family module."""

import importlib

import pytest
import torch
from ralu_run import empty_latent, pack_module, plain_sample, ralu_modules, recorded, run
from tiny_models import build_kl_vae, build_tiny_sd3, sd3_conditioning


def run_sd3(pack, model, plan, **kwargs):
    return run(pack, model, plan, positive=sd3_conditioning(0), negative=sd3_conditioning(1), **kwargs)


@pytest.mark.parametrize("preset", ["sd3_2x", "sd3_3x"])
def test_each_stage_calls_sd3_with_the_plans_token_counts(pack, tiny_sd3, preset):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS[preset]
    model, recorder = recorded(tiny_sd3)
    latent, mask, result = run_sd3(pack, model, plan, cfg=4.5, batch=2)
    low_res = 8 * 8
    k = int(low_res * plan.up_ratio)
    l2 = low_res + 3 * k
    assert result.tokens_per_stage == (low_res, l2, 4 * low_res)
    assert result.calls_per_stage == list(plan.steps)
    n1, n2, n3 = plan.steps
    # cond and uncond batched: 4 images per call
    assert recorder.shapes == [(4, 16, 16, 16)] * n1 + [(4, 16, 2, 2 * l2)] * n2 + [(4, 16, 32, 32)] * n3
    assert latent["samples"].shape == (2, 16, 32, 32)
    assert torch.isfinite(latent["samples"]).all()
    assert mask.shape == (2, 256, 256)


def test_stage_2_uses_the_analytic_table_between_entries(pack, tiny_sd3):
    """The tiny SD3's table is sin-cos as real checkpoints': the fit finds it, and a child at +0.5
    gets the analytic embedding, not the mean of its neighbours."""
    glue, _ = ralu_modules(pack)
    checks = pack_module(pack, "input_checks")
    positions_mod = importlib.import_module(f"{pack.__name__}.ralu.positions")
    _, positions = glue.clone_for_ralu(tiny_sd3, checks.family_of(tiny_sd3))
    ids = torch.tensor([[[2.0, 3.0], [2.0, 3.5], [2.0, 4.0]]])
    with positions.stage2(ids, (8, 8)):
        positions.call_batch = 2
        embedded = positions.cropped_pos_embed((2, 6))
    table = tiny_sd3.get_model_object("diffusion_model").pos_embed
    fit = positions_mod.fit_sincos_table(table, 16)
    assert fit is not None
    assert embedded.shape == (2, 3, 128) and torch.equal(embedded[0], embedded[1])
    top = left = (16 - 8) // 2
    row = table.reshape(16, 16, 128)[top + 2]
    torch.testing.assert_close(embedded[0, 0], row[left + 3])
    torch.testing.assert_close(embedded[0, 2], row[left + 4])
    analytic = fit.embed(torch.tensor(top + 2.0), torch.tensor(left + 3.5)).float()
    torch.testing.assert_close(embedded[0, 1], analytic, atol=1e-5, rtol=0)
    assert (embedded[0, 1] - (row[left + 3] + row[left + 4]) / 2).abs().max() > 1e-3


def test_the_shared_sd3_model_is_left_unpatched(pack, tiny_sd3):

    _, plan_mod = ralu_modules(pack)
    before = repr(tiny_sd3.model_options), repr(tiny_sd3.object_patches)

    def plain():
        return plain_sample(tiny_sd3, sd3_conditioning, 4.5)

    reference = plain()
    run_sd3(pack, tiny_sd3, plan_mod.PRESETS["sd3_3x"], cfg=4.5)
    assert (repr(tiny_sd3.model_options), repr(tiny_sd3.object_patches)) == before
    assert torch.equal(plain(), reference)


def test_refusals_name_the_family(pack, tiny_sd3):
    _, plan_mod = ralu_modules(pack)
    checks = pack_module(pack, "input_checks")
    with pytest.raises(checks.RaluInputError, match=r"plan \(flux_4x\) is for FLUX models, .* model is SD3"):
        run_sd3(pack, tiny_sd3, plan_mod.PRESETS["flux_4x"])
    with pytest.raises(checks.RaluInputError, match="no stored position table"):
        run_sd3(pack, build_tiny_sd3(position_table=False), plan_mod.PRESETS["sd3_3x"])
    with pytest.raises(checks.RaluInputError, match="multiples of 32 pixels"):
        run_sd3(pack, tiny_sd3, plan_mod.PRESETS["sd3_3x"], latent=empty_latent(1, 240))


def test_the_full_sd3_vae_decodes_the_stage_1_estimate(pack, tiny_sd3, monkeypatch):
    glue, plan_mod = ralu_modules(pack)
    decoded = []
    real = glue.vae_decode_keeping_models

    def spy(decode, latent):
        image = real(decode, latent)
        decoded.append((tuple(latent.shape), tuple(image.shape)))
        return image

    monkeypatch.setattr(importlib.import_module(glue.__name__), "vae_decode_keeping_models", spy)
    latent, _, result = run_sd3(pack, tiny_sd3, plan_mod.PRESETS["sd3_3x"], vae=build_kl_vae(), size=128)
    assert decoded == [((1, 16, 8, 8), (1, 64, 64, 3))]
    assert torch.isfinite(latent["samples"]).all() and result.selected.shape == (1, 3)
