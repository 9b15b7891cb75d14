"""What RALU KSampler refuses before sampling, with a message that says what to change: a ComfyUI whose
internals differ from what the pack uses, a plan for another model, latents, conditioning, VAEs and
masks it cannot use. docs/errors.md lists every input tried and the message it gets.
"""

from __future__ import annotations

import comfy.sample
import torch

from .families import ModelFamily, RaluInputError, family_of
from .host_check import INTERNALS, unsupported
from .ralu.edge_map import FULL_RES_CELL
from .ralu.plan import PRESETS, Plan

# Conditioning options RALU KSampler cannot honour: (what it is, why).
CONDITIONING_REFUSALS = {
    "area": ("area conditioning (ConditioningSetArea)", "it needs a pixel grid, which stage 2 does not have"),
    "mask": (
        "masked conditioning (ConditioningSetMask)",
        "it needs a pixel grid, which stage 2 does not have",
    ),
    "gligen": ("GLIGEN boxes", "they need a pixel grid, which stage 2 does not have"),
    "concat_latent_image": (
        "inpainting image (FLUX Fill)",
        "inpainting models take a latent that must match each stage's shape",
    ),
    # ComfyUI gives a reference image full-resolution positions, which stages 1 and 2 (in low-res
    # units) would misalign with the picture by a factor of 2.
    "reference_latents": (
        "reference images (FLUX Kontext's ReferenceLatent)",
        "they sit at full-resolution positions that the low-resolution stages do not share",
    ),
}
# Newer ComfyUI's empty latents say what they were sized for; its samplers hand these to
# fix_empty_latent_channels and leave them out of the result, as RALU does.
LATENT_SIZING_KEYS = ("downscale_ratio_spacial", "downscale_ratio_temporal")
# ComfyUI's EmptyLatentImage makes 4-channel latents at 1/8 of the picture, which ComfyUI widens to the
# model's channels itself; other channel counts are other formats, at other scales.
WIDENED_CHANNELS = 4


def check_plan_family(plan: Plan, family: ModelFamily, model) -> None:
    """Refuses a plan made for another model family (an sd3_* preset on FLUX), naming both, or for
    another model of the family where the model tells them apart (a FLUX.1-dev preset on schnell)."""
    if plan.family != family.name:
        presets = ", ".join(name for name, preset in PRESETS.items() if preset.family == family.name)
        raise RaluInputError(
            f"This plan ({plan.name}) is for {plan.family.upper()} models, but the connected model is "
            f"{family.label}: choose one of its presets ({presets}) or a custom plan whose estimate_for "
            f"is a {family.label} model."
        )
    mismatch = family.plan_mismatch(plan, model)
    if mismatch is not None:
        raise RaluInputError(mismatch)


def check_latent_format(model, samples: torch.Tensor) -> None:
    """Refuses a latent of another format than the model's, before ComfyUI resizes its channels."""
    channels = model.model.latent_format.latent_channels
    if samples.ndim == 4 and samples.shape[1] not in (channels, WIDENED_CHANNELS):
        raise RaluInputError(
            f"This latent has {samples.shape[1]} channels, a format of another model family (FLUX.2's, "
            f"for one, has 128 at 1/16 of the picture's size); the model samples {channels}-channel "
            "latents at 1/8. "
            "Connect an EmptySD3LatentImage (or EmptyLatentImage) of the final size."
        )


def check_latent(samples: torch.Tensor) -> None:
    if samples.ndim != 4:
        raise RaluInputError(
            f"RALU KSampler needs an image latent (B, C, H, W); got shape {tuple(samples.shape)}."
        )
    if samples.shape[0] == 0:
        raise RaluInputError(
            "The latent holds no images (batch size 0): connect a latent of batch size 1 or more."
        )
    height, width = samples.shape[-2] * 8, samples.shape[-1] * 8
    if height % FULL_RES_CELL or width % FULL_RES_CELL:

        def near(v: int) -> str:
            lo = v // FULL_RES_CELL * FULL_RES_CELL
            if lo == v:
                return str(v)
            return f"{lo} or {lo + FULL_RES_CELL}" if lo else str(FULL_RES_CELL)

        raise RaluInputError(
            f"RALU needs an image whose width and height are multiples of 32 pixels (it halves the "
            f"latent and then packs 2x2 patches); got {width}x{height}. Use a width of {near(width)} "
            f"and a height of {near(height)}."
        )


def check_conditioning(positive, negative) -> None:
    for label, conditioning in (("positive", positive), ("negative", negative)):
        for _, options in conditioning:
            for key, (what, why) in CONDITIONING_REFUSALS.items():
                if options.get(key) is not None:
                    raise RaluInputError(
                        f"RALU KSampler cannot use the {label} prompt's {what}: {why}. "
                        "Remove it, or use a plain KSampler."
                    )


def check_mask(mask: torch.Tensor | None, batch: int, height: int, width: int) -> None:
    """Refuses a force_mask that cannot be laid over a batch of pictures of that size: another batch,
    or another shape."""
    if mask is None:
        return
    masks = mask.reshape(-1, *mask.shape[-2:])
    if masks.shape[0] not in (1, batch):
        raise RaluInputError(
            f"force_mask holds {masks.shape[0]} masks for a batch of {batch} images: connect one mask "
            "for all of them, or one per image."
        )
    mask_height, mask_width = masks.shape[-2:]
    # A mask at another resolution is scaled over the picture; a mask of another shape would be
    # stretched.
    if abs(mask_width * height - mask_height * width) > 0.01 * mask_height * width:
        raise RaluInputError(
            f"force_mask is {mask_width}x{mask_height} but the picture is {width}x{height}: connect a "
            "mask of the picture's size (or its shape, at another resolution)."
        )


def check_vae(model, family: ModelFamily, vae) -> None:
    """Refuses a VAE made for another latent format than the model's.

    The channel count tells most families apart. Tiny autoencoders (taef1, taesd3) also carry the
    scale and shift of the format they were loaded for, which tells FLUX from SD3 (both 16 channels);
    the full FLUX and SD3 VAEs have the same layout and carry neither, so they cannot be told apart.
    """
    if vae is None:
        raise RaluInputError("edge_source 'vae' needs a VAE: connect one, or choose edge_source 'latent'.")
    latent_format = model.model.latent_format
    wanted = f"connect the model's own VAE ({family.vaes})"
    channels = getattr(vae, "latent_channels", None)
    if channels is not None and channels != latent_format.latent_channels:
        raise RaluInputError(
            f"This VAE decodes {channels}-channel latents, but the model makes "
            f"{latent_format.latent_channels}-channel ones: {wanted}."
        )
    decoder = getattr(vae, "first_stage_model", None)
    scale, shift = getattr(decoder, "vae_scale", None), getattr(decoder, "vae_shift", None)
    if scale is None or shift is None:
        return
    ours = (float(latent_format.scale_factor), float(latent_format.shift_factor))
    theirs = (float(scale.detach()), float(shift.detach()))
    if any(abs(a - b) > 1e-3 for a, b in zip(ours, theirs)):
        raise RaluInputError(
            f"This tiny VAE was loaded for latents with scale {theirs[0]:.4g} and shift {theirs[1]:.4g} "
            f"(taesd3 is SD3's), but the model's latents have scale {ours[0]:.4g} and shift "
            f"{ours[1]:.4g}: {wanted}."
        )


def check_inputs(
    model, plan: Plan, positive, negative, latent: dict, vae, edge_source: str, mask: torch.Tensor | None
) -> tuple[ModelFamily, torch.Tensor]:
    """Refuses, with a message that says what to change, what RALU cannot sample; returns the model's
    family and the latent."""
    family = family_of(model)
    message = unsupported(INTERNALS + family.internals)
    if message is not None:
        raise RaluInputError(message)
    check_plan_family(plan, family, model)
    if "noise_mask" in latent:
        raise RaluInputError(
            "RALU KSampler does not inpaint: the latent has a noise mask (from "
            "SetLatentNoiseMask or VAEEncodeForInpaint). Use a plain KSampler for inpainting."
        )
    check_conditioning(positive, negative)
    if edge_source == "vae":
        check_vae(model, family, vae)
    check_latent_format(model, latent["samples"])
    sizing = {key: latent[key] for key in LATENT_SIZING_KEYS if key in latent}
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"], **sizing)
    check_latent(samples)
    check_mask(mask, samples.shape[0], samples.shape[-2] * 8, samples.shape[-1] * 8)
    if torch.count_nonzero(samples):
        raise RaluInputError(
            "RALU KSampler generates from pure noise, so it would ignore the picture in this "
            "latent. Connect an empty latent (EmptySD3LatentImage); for img2img use a plain KSampler."
        )
    return family, samples
