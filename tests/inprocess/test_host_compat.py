"""What differs between the ComfyUI versions the pack supports, on the tiny FLUX and SD3.

- Every internal the glue uses is checked before sampling: on a ComfyUI where one is missing or takes
  other parameters, the run stops with a message naming it and the versions the pack is tested with,
  before the first model call. Another ComfyUI is stood in for by pytest's monkeypatch, in this test
  process only and undone after each test: a module function or method changed or deleted is exactly
  what a different ComfyUI looks like to the pack, and ComfyUI's own patch mechanisms (object patches,
  wrappers) reach only model objects, not `comfy.sample` or `ModelPatcher`'s methods.
- Newer ComfyUI's empty latents carry their sizing keys (downscale_ratio_spacial / _temporal): RALU
  hands them to fix_empty_latent_channels and leaves them out of its LATENT as the stock KSampler does.

Mutations tried: the check call removed from check_inputs (each changed-internal case fails: a
TypeError or AttributeError, some after model calls); the sizing keys not passed on (the 16x-latent
case fails on 0.33: a 16x16 latent instead of the stock sampler's 32x32); kept in the output (both
cases fail on 0.33).
"""

import inspect

import pytest
import torch
from ralu_run import pack_module, ralu_modules, recorded, run
from tiny_models import flux_conditioning, sd3_conditioning


def changed_sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent_image, *, generator):
    """sample_custom as a later ComfyUI might have it: a new required keyword."""
    raise AssertionError("the check should have refused before this was called")


def changed_update_absolute(self, value, total=None):
    """ProgressBar.update_absolute without its preview: the first step's update would fail mid-run."""
    raise AssertionError("the check should have refused before this was called")


def renamed_forward_orig(self, img, ids, txt, txt_ids, timesteps, y, guidance=None, control=None):
    """FLUX's forward with img_ids renamed: the post_input patch would find no `img_ids`."""
    raise AssertionError("the check should have refused before this was called")


# (family, module, attribute path, replacement or None to delete, what the message must name)
CHANGES = {
    "sample_custom": (
        "flux",
        "comfy.sample",
        "sample_custom",
        changed_sample_custom,
        "comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent_image, "
        "disable_pbar=, seed=), which takes (model, noise, cfg, sampler, sigmas, positive, negative, "
        "latent_image, *, generator) here",
    ),
    "update_absolute": (
        "flux",
        "comfy.utils",
        "ProgressBar.update_absolute",
        changed_update_absolute,
        "comfy.utils.ProgressBar.update_absolute(value, total, preview), which takes (self, value, "
        "total=None) here",
    ),
    "post_input": (
        "flux",
        "comfy.model_patcher",
        "ModelPatcher.set_model_post_input_patch",
        None,
        "comfy.model_patcher.ModelPatcher.set_model_post_input_patch(patch), which does not exist",
    ),
    "forward_orig": (
        "flux",
        "comfy.ldm.flux.model",
        "Flux.forward_orig",
        renamed_forward_orig,
        "comfy.ldm.flux.model.Flux.forward_orig(img, img_ids, txt, txt_ids), which takes (self, img, ids,",
    ),
    "loaded_models": (
        "sd3",
        "comfy.model_management",
        "loaded_models",
        None,
        "comfy.model_management.loaded_models(only_currently_used=), which does not exist",
    ),
    "cropped_pos_embed": (
        "sd3",
        "comfy.ldm.modules.diffusionmodules.mmdit",
        "MMDiT.cropped_pos_embed",
        lambda self, hw: None,
        "comfy.ldm.modules.diffusionmodules.mmdit.MMDiT.cropped_pos_embed(hw, device=), which takes "
        "(self, hw) here",
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_internal_is_named_before_the_first_model_call(pack, request, monkeypatch, change):
    import importlib

    import comfyui_version

    family, module, path, replacement, named = CHANGES[change]
    _, plan_mod = ralu_modules(pack)
    checks = pack_module(pack, "input_checks")
    model, recorder = recorded(request.getfixturevalue(f"tiny_{family}"))
    owner = importlib.import_module(module)
    *parents, attribute = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    if replacement is None:
        monkeypatch.delattr(owner, attribute)
    else:
        monkeypatch.setattr(owner, attribute, replacement)
    plan = plan_mod.PRESETS["flux_7x" if family == "flux" else "sd3_3x"]
    conditioning = {"sd3": dict(positive=sd3_conditioning(0), negative=sd3_conditioning(1))}.get(family, {})
    with pytest.raises(checks.RaluInputError) as refused:
        run(pack, model, plan, **conditioning)
    message = str(refused.value)
    assert message.startswith(f"RALU KSampler cannot run on this ComfyUI ({comfyui_version.__version__}):")
    assert named in message
    assert message.endswith("ComfyUI-RALU is tested with ComfyUI 0.3.75 and 0.33.0: use one of those, "
                            "or update ComfyUI-RALU.")  # fmt: skip
    assert recorder.shapes == []


def test_this_comfyui_has_every_internal_as_the_pack_uses_it(pack):
    import importlib

    host_check = importlib.import_module(f"{pack.__name__}.host_check")
    families = importlib.import_module(f"{pack.__name__}.families")
    for family in families.FAMILIES:
        assert host_check.unsupported(host_check.INTERNALS + family.internals) is None


def empty_sd3_latent(width: int, height: int) -> dict:
    """EmptySD3LatentImage's own output (with its sizing keys on ComfyUI versions that add them)."""
    from comfy_extras.nodes_sd3 import EmptySD3LatentImage

    return EmptySD3LatentImage.execute(width=width, height=height, batch_size=1)[0]


def sized_for_16x(latent: dict) -> dict:
    """A 16x16 empty latent that says it was sized for a 16x VAE: fix_empty_latent_channels makes it 32x32."""
    import comfy.sample

    if "downscale_ratio_spacial" not in inspect.signature(comfy.sample.fix_empty_latent_channels).parameters:
        pytest.skip("this ComfyUI's empty latents carry no sizing keys (added after 0.3.75)")
    return {"samples": torch.zeros(1, 16, 16, 16), "downscale_ratio_spacial": 16}


@pytest.mark.parametrize("make_latent", ["EmptySD3LatentImage", "sized for 16x"])
def test_empty_latent_sizing_keys_as_the_stock_ksampler_uses_them(pack, tiny_flux, make_latent):
    import nodes

    _, plan_mod = ralu_modules(pack)
    latent = empty_sd3_latent(256, 256)
    if make_latent == "sized for 16x":
        latent = sized_for_16x(latent)
    prompts = flux_conditioning(0), flux_conditioning(1)
    stock = nodes.common_ksampler(tiny_flux, 1, 1, 1.0, "euler", "simple", *prompts, dict(latent))[0]
    ours = run(pack, tiny_flux, plan_mod.PRESETS["flux_7x"], latent=dict(latent))[0]
    assert set(ours) == set(stock)
    assert ours["samples"].shape == stock["samples"].shape == (1, 16, 32, 32)
