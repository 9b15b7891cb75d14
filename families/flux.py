"""FLUX.1: stage 2's positions go in through a `post_input` patch, FLUX's hook for its token ids."""

from __future__ import annotations

import comfy.ldm.flux.model
import torch

from ..host_check import Internal
from ..ralu.plan import PRESETS
from .base import ModelFamily, StagePositions


class FluxIds(StagePositions):
    """A post_input patch: replaces the first L image ids with stage 2's, as FLUX's [index, row, col].

    `rope_options` scale and shift the ids FLUX makes for a grid, in stages 1 and 3: ComfyUI's ScaleROPE
    node sets them on the model, and LongCat-Image's model class shifts its image ids past the prompt's
    with them at every call. Stage 2's ids get the same affine map, so all three stages share one
    geometry. Newer ComfyUI hands the patch the call's own transformer_options, with what the model
    class added; 0.3.75 does not, and there FLUX reads the model's options, given here at install.
    """

    def __init__(self, model_rope_options: dict | None = None) -> None:
        super().__init__()
        self.model_rope_options = model_rope_options

    def __call__(self, args: dict) -> dict:
        if self.ids is None:
            return args
        img_ids = args["img_ids"]
        tokens = self.ids.shape[1]
        if img_ids.shape[1] < tokens:
            raise RuntimeError(
                f"RALU: the model got {img_ids.shape[1]} tokens where stage 2 has {tokens}; another patch "
                "changed the token layout."
            )
        # Cond and uncond batches repeat the images in order.
        copies = self.copies_per_image(img_ids.shape[0])
        if "transformer_options" in args:
            rope = args["transformer_options"].get("rope_options")
        else:
            rope = self.model_rope_options
        rope = rope or {}
        scale = self.ids.new_tensor((float(rope.get("scale_y", 1.0)), float(rope.get("scale_x", 1.0))))
        shift = self.ids.new_tensor((float(rope.get("shift_y", 0.0)), float(rope.get("shift_x", 0.0))))
        index = float(rope.get("shift_t", 0.0))
        ours = torch.nn.functional.pad(self.ids * scale + shift, (1, 0), value=index)
        ours = ours.to(img_ids).repeat(copies, 1, 1)
        # Tokens past ours (appended by some other patch) keep their own ids.
        img_ids = torch.cat((ours, img_ids[:, tokens:]), dim=1)
        self.applied += 1
        return {**args, "img_ids": img_ids}


def is_flux(model) -> bool:
    diffusion_model = getattr(model.model, "diffusion_model", None)
    params = getattr(diffusion_model, "params", None)
    return (
        type(diffusion_model) is comfy.ldm.flux.model.Flux
        and getattr(params, "in_channels", None) == 16
        and getattr(params, "patch_size", None) == 2
    )


def install(clone) -> FluxIds:
    positions = FluxIds(clone.model_options.get("transformer_options", {}).get("rope_options"))
    clone.set_model_post_input_patch(positions)
    return positions


# FLUX.1-dev is guidance-distilled (a guidance_in embedding: ComfyUI's Flux config), FLUX.1-schnell is
# timestep-distilled without one (FluxSchnell); the plan's model must be the same kind.
GUIDED_PLAN_MODELS = {"flux": True, "flux_schnell": False}
PLAN_MODEL_LABEL = {"flux": "FLUX.1-dev", "flux_schnell": "FLUX.1-schnell"}


def plan_mismatch(plan, model) -> str | None:
    params = model.model.diffusion_model.params
    wanted = GUIDED_PLAN_MODELS.get(plan.model)
    guided = bool(getattr(params, "guidance_embed", False))
    # FLUX.1 models take CLIP-L's pooled prompt (vec_in_dim); LongCat-Image and Ovis-Image, which share
    # the class without it and without a guidance input either, are neither dev nor schnell.
    if wanted is None or wanted == guided or getattr(params, "vec_in_dim", None) is None:
        return None
    kind = "guidance-distilled, as FLUX.1-dev" if guided else "without a guidance input, as FLUX.1-schnell"
    (fitting,) = (name for name, g in GUIDED_PLAN_MODELS.items() if g == guided)
    presets = ", ".join(name for name, preset in PRESETS.items() if preset.model == fitting)
    return (
        f"This plan ({plan.name}) is for {PLAN_MODEL_LABEL[plan.model]}, but the connected FLUX model is "
        f"{kind}, and the plan's schedule is not its: choose a {PLAN_MODEL_LABEL[fitting]} preset "
        f"({presets}), or a custom plan with estimate_for {fitting}."
    )


FLUX = ModelFamily(
    name="flux",
    label="FLUX",
    models="FLUX.1 models (dev, schnell and their fine-tunes) and LongCat-Image and Ovis-Image, which "
    "share FLUX.1's architecture (16-channel latents, 2x2 patches)",
    vaes="ae.safetensors or taef1 for FLUX",
    matches=is_flux,
    install=install,
    # post_input patches (0.3.75 and newer) get FLUX's token ids under these names.
    internals=(
        Internal("comfy.model_patcher", "ModelPatcher.set_model_post_input_patch", ("patch",)),
        Internal(
            "comfy.ldm.flux.model", "Flux.forward_orig", ("img", "img_ids", "txt", "txt_ids"), called=False
        ),
    ),
    hook_skipped="the FLUX model did not apply post_input patches, so stage 2's token positions cannot "
    "be set. A node replaced or skipped FLUX's forward (TeaCache or another step cache): remove it "
    "from this model, or update ComfyUI.",
    plan_mismatch=plan_mismatch,
)
