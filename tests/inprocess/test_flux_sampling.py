"""RALU KSampler's glue on a tiny random FLUX, through ComfyUI's own guider and sampler machinery."""

import pytest
import torch
from ralu_run import empty_latent, pack_module, plain_sample, progress_updates, ralu_modules, recorded, run
from tiny_models import build_tiny_sd15, flux_conditioning


@pytest.mark.parametrize(("preset", "height", "width"), [("flux_4x", 256, 256), ("flux_7x", 192, 320)])
def test_each_stage_calls_the_model_with_the_plans_token_counts(pack, tiny_flux, preset, height, width):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS[preset]
    model, recorder = recorded(tiny_flux)
    latent, mask, result = run(
        pack, model, plan, latent={"samples": torch.zeros(1, 16, height // 8, width // 8)}
    )
    n1, n2, n3 = plan.steps
    low_res = (height // 32) * (width // 32)
    k = int(low_res * plan.up_ratio)
    l2 = low_res - k + 4 * k
    assert result.tokens_per_stage == (low_res, l2, 4 * low_res)
    assert result.calls_per_stage == [n1, n2, n3]
    low, full = (1, 16, height // 16, width // 16), (1, 16, height // 8, width // 8)
    assert recorder.shapes == [low] * n1 + [(1, 16, 2, 2 * l2)] * n2 + [full] * n3
    assert latent["samples"].shape == full
    assert torch.isfinite(latent["samples"]).all()
    assert mask.shape == (1, height, width)
    assert mask.mean().item() == pytest.approx(k / low_res)


def test_same_seed_same_latent_new_seed_new_latent(pack, tiny_flux):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_7x"]
    a = run(pack, tiny_flux, plan, seed=5)[0]["samples"]
    b = run(pack, tiny_flux, plan, seed=5)[0]["samples"]
    c = run(pack, tiny_flux, plan, seed=6)[0]["samples"]
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_batch_of_two_with_cfg_and_a_negative_prompt(pack, tiny_flux):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_7x"]
    model, recorder = recorded(tiny_flux)
    latent, mask, result = run(pack, model, plan, cfg=3.5, batch=2)
    # cond and uncond go through the model together: twice the batch in every call.
    assert {shape[0] for shape in recorder.shapes} == {4}
    assert result.calls_per_stage == list(plan.steps)
    assert latent["samples"].shape == (2, 16, 32, 32)
    assert not torch.allclose(latent["samples"][0], latent["samples"][1])
    assert result.selected.shape[0] == 2 and mask.shape == (2, 256, 256)


@pytest.mark.parametrize("up_ratio", [0.0, 1.0])
def test_plan_edge_cases_run(pack, tiny_flux, up_ratio):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.make_plan((1, 1, 2), (0.3, 0.45, 1.0), up_ratio, shifts=(3.0, 3.0, 3.0), z=6.0)
    model, recorder = recorded(tiny_flux)
    latent, mask, result = run(pack, model, plan)
    assert result.calls_per_stage == [1, 1, 2]
    assert result.tokens_per_stage[1] == (64 if up_ratio == 0 else 256)
    assert mask.mean().item() == up_ratio
    assert torch.isfinite(latent["samples"]).all()


def test_forced_mask_regions_are_upsampled_early(pack, tiny_flux):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.make_plan((1, 1, 1), (0.3, 0.45, 1.0), 0.0, shifts=(3.0, 3.0, 3.0), z=6.0)
    force = torch.zeros(1, 256, 256)
    force[:, :64, :64] = 1.0  # the top-left 2x2 low-res cells
    _, mask, result = run(pack, tiny_flux, plan, mask=force)
    assert result.tokens_per_stage[1] == 64 - 4 + 16
    assert torch.equal(mask, force)


def test_the_shared_model_is_left_unpatched(pack, tiny_flux):

    _, plan_mod = ralu_modules(pack)
    before = repr(tiny_flux.model_options)

    def plain():
        return plain_sample(tiny_flux, flux_conditioning, 1.0)

    reference = plain()
    run(pack, tiny_flux, plan_mod.PRESETS["flux_4x"])
    assert repr(tiny_flux.model_options) == before
    assert torch.equal(plain(), reference)


def tiny_vae(channels, scale=None, shift=None):
    """A random TAESD decoder, loaded the way VAELoader loads one (with the scale and shift it adds for
    taesd3 / taef1)."""
    import comfy.sd
    import comfy.taesd.taesd

    decoder = comfy.taesd.taesd.TAESD(latent_channels=channels).taesd_decoder
    sd = {f"taesd_decoder.{k}": v for k, v in decoder.state_dict().items()}
    if scale is not None:
        sd.update(vae_scale=torch.tensor(scale), vae_shift=torch.tensor(shift))
    return comfy.sd.VAE(sd=sd)


def test_bad_inputs_are_refused_with_a_message(pack, tiny_flux):
    _, plan_mod = ralu_modules(pack)
    checks = pack_module(pack, "input_checks")
    plan = plan_mod.PRESETS["flux_7x"]
    with pytest.raises(checks.RaluInputError, match="multiples of 32 pixels.*got 248x256.*224 or 256"):
        run(pack, tiny_flux, plan, latent={"samples": torch.zeros(1, 16, 32, 31)})
    area = flux_conditioning(0)
    area[0][1]["area"] = (8, 8, 0, 0)
    with pytest.raises(checks.RaluInputError, match="area conditioning"):
        run(pack, tiny_flux, plan, positive=area)
    kontext = flux_conditioning(0)
    kontext[0][1]["reference_latents"] = [torch.zeros(1, 16, 32, 32)]
    with pytest.raises(checks.RaluInputError, match="positive prompt's reference images .*Kontext"):
        run(pack, tiny_flux, plan, positive=kontext)
    with pytest.raises(checks.RaluInputError, match="does not inpaint"):
        run(pack, tiny_flux, plan, latent={**empty_latent(), "noise_mask": torch.ones(1, 256, 256)})
    with pytest.raises(checks.RaluInputError, match="ignore the picture in this latent"):
        run(pack, tiny_flux, plan, latent={"samples": torch.ones(1, 16, 32, 32)})
    with pytest.raises(
        checks.RaluInputError, match="decodes 4-channel latents, but the model makes 16-channel"
    ):
        run(pack, tiny_flux, plan, vae=tiny_vae(4))
    taesd3, taef1 = tiny_vae(16, 1.5305, 0.0609), tiny_vae(16, 0.3611, 0.1159)
    with pytest.raises(checks.RaluInputError, match="scale 1.531 and shift 0.0609 .*taesd3.*taef1 for FLUX"):
        run(pack, tiny_flux, plan, vae=taesd3)
    checks.check_vae(tiny_flux, checks.family_of(tiny_flux), taef1)
    with pytest.raises(checks.RaluInputError, match="supports FLUX.1 .*; SD3 and SD3.5 .*This model is SD15"):
        run(pack, build_tiny_sd15(), plan)


def test_interrupt_stops_the_run(pack, tiny_flux):
    import comfy.model_management

    _, plan_mod = ralu_modules(pack)
    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            run(pack, tiny_flux, plan_mod.PRESETS["flux_7x"])
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_one_progress_bar_over_all_stages_with_full_res_previews(pack, tiny_flux):
    from comfy.cli_args import LatentPreviewMethod, args

    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_4x"]
    previous_method = args.preview_method
    args.preview_method = LatentPreviewMethod.Latent2RGB
    try:
        with progress_updates() as updates:
            run(pack, tiny_flux, plan)
    finally:
        args.preview_method = previous_method
    assert [(value, total) for value, total, _ in updates] == [(i + 1, 18) for i in range(18)]
    # Latent2RGB previews are one pixel per latent pixel: every stage shows the whole 256x256 picture.
    assert {preview[1].size for _, _, preview in updates} == {(32, 32)}


def test_without_a_previewer_no_step_builds_a_preview_grid(pack, tiny_flux, monkeypatch):
    import importlib

    from comfy.cli_args import LatentPreviewMethod, args

    sampler = importlib.import_module(f"{pack.__name__}.ralu.sampler")
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_7x"]
    scattered = []
    real_scatter = sampler.scatter_to_grid
    monkeypatch.setattr(sampler, "scatter_to_grid", lambda *a: scattered.append(1) or real_scatter(*a))
    monkeypatch.setattr(args, "preview_method", LatentPreviewMethod.NoPreviews)
    with progress_updates() as updates:
        run(pack, tiny_flux, plan)
    assert updates == [(i + 1, plan.total_steps, None) for i in range(plan.total_steps)]
    assert scattered == []


def test_weight_patches_on_the_model_apply_as_loras_do(pack, tiny_flux):
    """LoRA loaders hand the sampler a clone with weight patches; RALU must sample the patched weights."""
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_7x"]
    key = "diffusion_model.double_blocks.0.img_attn.qkv.weight"
    lora_like = tiny_flux.clone()
    delta = torch.randn(tiny_flux.get_model_object(key).shape, generator=torch.Generator().manual_seed(4))
    assert lora_like.add_patches({key: (delta * 0.05,)}, 1.0) == [key]
    plain = run(pack, tiny_flux, plan)[0]["samples"]
    patched = run(pack, lora_like, plan)[0]["samples"]
    again = run(pack, tiny_flux, plan)[0]["samples"]
    assert not torch.allclose(plain, patched)
    assert torch.equal(plain, again)  # and the patch did not stay on the shared weights


def test_controlnet_guides_the_grid_stages_and_sits_out_stage_2(pack, tiny_flux):
    import nodes
    from tiny_models import build_tiny_flux_controlnet

    class ControlRecorder:
        def __init__(self):
            self.control_per_call = []

        def __call__(self, executor, *args, **kwargs):
            control = kwargs.get("control", args[6] if len(args) > 6 else None)
            self.control_per_call.append(control is not None)
            return executor(*args, **kwargs)

    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_7x"]
    hint = torch.zeros(1, 256, 256, 3)
    hint[:, 64:192, 64:192] = 1.0
    positive, negative = nodes.ControlNetApplyAdvanced().apply_controlnet(
        flux_conditioning(0), flux_conditioning(1), build_tiny_flux_controlnet(), hint, 1.0, 0.0, 1.0
    )
    import comfy.patcher_extension

    model = tiny_flux.clone()
    recorder = ControlRecorder()
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test-recorder", recorder)
    controlled = run(pack, model, plan, positive=positive, negative=negative)[0]["samples"]
    plain = run(pack, tiny_flux, plan)[0]["samples"]
    n1, n2, n3 = plan.steps
    assert recorder.control_per_call == [True] * n1 + [False] * n2 + [True] * n3
    assert not torch.allclose(controlled, plain)


def test_a_forward_that_skips_post_input_patches_is_refused(pack, tiny_flux):
    """As a step cache or a copied forward (TeaCache) would: the model answers without FLUX's own path."""
    import comfy.patcher_extension

    _, plan_mod = ralu_modules(pack)

    def skip_forward(executor, x, *args, **kwargs):
        return torch.zeros_like(x)

    model = tiny_flux.clone()
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test-skip", skip_forward)
    with pytest.raises(
        RuntimeError, match="did not apply post_input patches.*TeaCache or another step cache"
    ):
        run(pack, model, plan_mod.PRESETS["flux_7x"])


def test_latent_gradient_edges_need_no_vae_and_pick_the_highest_scores(pack, tiny_flux, monkeypatch):
    import importlib

    glue, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_4x"]
    seen = []

    def spy(latent):
        scores = real(latent)
        seen.append((tuple(latent.shape), scores))
        return scores

    real = glue.latent_gradient_scores
    monkeypatch.setattr(importlib.import_module(glue.__name__), "latent_gradient_scores", spy)
    _, _, result = run(pack, tiny_flux, plan, edge_source="latent gradient")
    [(shape, scores)] = seen
    assert shape == (1, 16, 16, 16)
    k = int(64 * plan.up_ratio)
    assert set(result.selected[0].tolist()) == set(scores[0].topk(k).indices.tolist())
