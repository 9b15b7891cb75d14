"""Stage 2's ids reach every image of a batch and both halves of cfg, on the tiny FLUX and SD3.

Here cfg is 3, with cond and uncond in one model call ([cond 0, cond 1, uncond 0, uncond 1]) or, with
prompts of different lengths, in two:
- each image of a batch of 2 sends its own permutation of the grid (so its own ids, position by
  position): the strip with ids must give each image its own grid prediction;
- a whole run: each image of the batch must equal that image made alone (same seed and batch
  index, so the same selection and the same stage-2 ids), where no other image's ids exist.

Mutations tried, in FLUX's post_input patch and in SD3's position patch; each fails the strip test:
- image 0's ids (embeddings) sent for every image (self.ids[:1].expand(batch, -1, -1));
- cond and uncond ids interleaved (repeat_interleave instead of repeat): cond 1 and uncond 0 get
  each other's ids;
- ScaleROPE's rope_options left off stage 2's FLUX ids (stages 1 and 3 get them from FLUX itself);
- on ComfyUI 0.33, the model's rope_options (as ScaleROPE sets them) used instead of the call's: the
  LongCat cases fail, the shift LongCat-Image's model adds at each call is missing from stage 2.
"""

import importlib

import pytest
import torch
from ralu_run import empty_latent, pack_module, patched_for_stage2, ralu_modules, recorded, run
from tiny_models import (
    build_tiny_flux_schnell,
    build_tiny_longcat,
    build_tiny_ovis,
    flux_conditioning,
    sd3_conditioning,
    text_conditioning,
)

# Each family's tiny model (a fixture) and its conditioning; "flux-scaled-rope" is FLUX under ComfyUI's
# ScaleROPE node, whose scaled and shifted grid ids stage 2 must share. LongCat-Image's model shifts its
# image ids by the prompt's length at each call (so cond and uncond of other lengths get other ids);
# Ovis-Image's are FLUX's (ComfyUI 0.33; both skip on older hosts).
FAMILY_MODELS = {
    "flux": ("tiny_flux", flux_conditioning),
    "flux-scaled-rope": ("tiny_flux_scaled_rope", flux_conditioning),
    "longcat": ("tiny_longcat", text_conditioning),
    "ovis": ("tiny_ovis", text_conditioning),
    "sd3": ("tiny_sd3", sd3_conditioning),
}


@pytest.fixture
def tiny_flux_scaled_rope(tiny_flux):
    from comfy_extras.nodes_rope import ScaleROPE

    return ScaleROPE.execute(tiny_flux, 1.5, 3.0, 0.75, -2.0, 1.0, 1.0).result[0]


@pytest.fixture(scope="module")
def tiny_flux_schnell(comfy_inprocess):
    return build_tiny_flux_schnell()


@pytest.fixture(scope="module")
def tiny_longcat(comfy_inprocess):
    return build_tiny_longcat()


@pytest.fixture(scope="module")
def tiny_ovis(comfy_inprocess):
    return build_tiny_ovis()


@pytest.mark.parametrize("batched", [True, False], ids=["cond-uncond-one-call", "cond-uncond-two-calls"])
@pytest.mark.parametrize("family", sorted(FAMILY_MODELS))
def test_each_image_and_each_cfg_half_gets_its_own_stage_2_ids(pack, request, family, batched):
    """The strip with ids equals the grid for every family; with prompts of one length ComfyUI sends
    cond and uncond in one call, with different lengths in two."""
    import comfy.samplers

    fixture, conditioning = FAMILY_MODELS[family]
    tokens_mod = importlib.import_module(f"{pack.__name__}.ralu.tokens")
    # The recorder goes on first: RALU's clone must carry the position hook the caller sets.
    recording, recorder = recorded(request.getfixturevalue(fixture))
    patched, positions, predictor = patched_for_stage2(pack, recording)
    seen = {}

    def probe(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        rows, cols = x.shape[-2] // 2, x.shape[-1] // 2
        predict = predictor(model_k, extra_args, (rows, cols))
        tokens = tokens_mod.patchify(x)
        ids = tokens_mod.grid_ids(rows, cols, x.shape[0])  # full-res units: the grid's own ids
        orders = torch.stack(
            [torch.randperm(rows * cols, generator=torch.Generator().manual_seed(10 + b)) for b in range(2)]
        )

        def per_image(values):
            return values.gather(1, orders[..., None].expand(-1, -1, values.shape[-1]))

        seen["strip"] = predict(per_image(tokens), per_image(ids), None, 0.7)
        seen["grid"] = per_image(predict(tokens, ids, (rows, cols), 0.7))
        return x

    guider = comfy.samplers.CFGGuider(patched)
    guider.set_conds(conditioning(0), conditioning(1, tokens=8 if batched else 5))
    guider.set_cfg(3.0)
    noise = torch.randn(2, 16, 16, 24, generator=torch.Generator().manual_seed(0))
    guider.sample(noise, torch.zeros_like(noise), comfy.samplers.KSAMPLER(probe), torch.tensor([1.0, 0.0]))
    assert positions.applied >= 1
    per_call = 4 if batched else 2
    assert set(recorder.shapes) == {(per_call, 16, 2, 2 * 8 * 12), (per_call, 16, 16, 24)}
    for image in range(2):
        torch.testing.assert_close(seen["strip"][image], seen["grid"][image], atol=1e-4, rtol=1e-4)


def test_with_cfg_each_image_of_a_batch_equals_that_image_made_alone(pack, tiny_flux):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.make_plan((1, 2, 1), (0.3, 0.5, 1.0), 0.5, shifts=(3.0, 3.0, 3.0), z=6.0)
    model, recorder = recorded(tiny_flux)
    pair, _, pair_result = run(pack, model, plan, seed=3, cfg=3.0, batch=2, size=128)
    assert {shape[0] for shape in recorder.shapes} == {4}  # cond and uncond in one call
    assert not torch.equal(pair_result.selected[0], pair_result.selected[1])  # other ids per image
    for image in range(2):
        latent = {**empty_latent(1, 128), "batch_index": [image]}
        alone, _, alone_result = run(pack, tiny_flux, plan, seed=3, cfg=3.0, latent=latent)
        assert torch.equal(alone_result.selected[0], pair_result.selected[image])
        torch.testing.assert_close(pair["samples"][image : image + 1], alone["samples"], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize(
    ("fixture", "refused"),
    [("tiny_flux", None), ("tiny_flux_schnell", "flux_4x"), ("tiny_longcat", None), ("tiny_ovis", None)],
)
def test_a_flux_1_dev_plan_is_refused_only_on_schnell(pack, request, fixture, refused):
    """FLUX.1-dev's presets on FLUX.1 with a guidance input, flux_schnell on FLUX.1 without one; LongCat-Image
    and Ovis-Image (no guidance input, but no pooled prompt either: not schnell) take either."""
    _, plan_mod = ralu_modules(pack)
    checks = pack_module(pack, "input_checks")
    model = request.getfixturevalue(fixture)
    family = checks.family_of(model)
    for name in ("flux_4x", "flux_schnell"):
        should_refuse = name == refused or (fixture == "tiny_flux" and name == "flux_schnell")
        if should_refuse:
            with pytest.raises(checks.RaluInputError, match=rf"This plan \({name}\) is for FLUX.1-"):
                checks.check_plan_family(plan_mod.PRESETS[name], family, model)
        else:
            checks.check_plan_family(plan_mod.PRESETS[name], family, model)


def test_cond_and_uncond_split_under_memory_pressure_give_the_same_latent(pack, tiny_flux):
    """ComfyUI batches cond and uncond into one model call when it estimates they fit in free memory,
    and calls the model once for each when they do not. A model that claims to need far more memory
    than there is (its memory_usage_factor, through ComfyUI's own object patch) gets separate calls:
    the same picture as one batched call, up to float rounding."""
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_7x"]
    batched, batched_calls = recorded(tiny_flux)
    pressed = tiny_flux.clone()
    pressed.add_object_patch("memory_usage_factor", 1e12)
    split, split_calls = recorded(pressed)
    one_call, _, one_result = run(pack, batched, plan, seed=5, cfg=3.0, size=128)
    two_calls, _, two_result = run(pack, split, plan, seed=5, cfg=3.0, size=128)
    assert {shape[0] for shape in batched_calls.shapes} == {2}
    assert {shape[0] for shape in split_calls.shapes} == {1}
    assert len(split_calls.shapes) == 2 * len(batched_calls.shapes)
    assert torch.equal(one_result.selected, two_result.selected)
    torch.testing.assert_close(one_call["samples"], two_calls["samples"], atol=1e-4, rtol=1e-4)
