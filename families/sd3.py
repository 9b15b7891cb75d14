"""SD3 and SD3.5 (MMDiT): stage 2's positions go in through an object patch of `cropped_pos_embed`.

MMDiT adds `cropped_pos_embed(hw)`, a centred crop of its stored position table, to the patch-embedded
latent; it has no hook for token positions. On the clone, an object patch replaces that method: while
stage 2 runs it returns each token's embedding at its own (fractional) position, else it defers to
the model's own method. An APPLY_MODEL wrapper notes each call's batch, since cond and uncond arrive
batched and the method is only given the latent's size.
"""

from __future__ import annotations

import comfy.ldm.modules.diffusionmodules.mmdit
import comfy.model_base
import comfy.patcher_extension
import torch

from ..host_check import Internal
from ..ralu.positions import default_tolerance, embed_tokens, fit_sincos_table
from .base import ModelFamily, StagePositions


class SD3Positions(StagePositions):
    def __init__(self, diffusion_model) -> None:
        super().__init__()
        self.diffusion_model = diffusion_model
        self.call_batch = 1
        self._fit = None
        self._fitted = False
        self._embedded: tuple[torch.Tensor, torch.Tensor] | None = None

    def apply_model(self, executor, x, *args, **kwargs):
        self.call_batch = x.shape[0]
        return executor(x, *args, **kwargs)

    def cropped_pos_embed(self, hw, device=None):
        model = self.diffusion_model
        if self.ids is None:
            return type(model).cropped_pos_embed(model, hw, device=device)
        copies = self.copies_per_image(self.call_batch)
        embedded = self._stage2_embedding()
        self.applied += 1
        return embedded.to(device=device).repeat(copies, 1, 1)

    def _stage2_embedding(self) -> torch.Tensor:
        """(B, L, D) for stage 2's ids, computed once per stage: the ids do not change within it."""
        if self._embedded is None or self._embedded[0] is not self.ids:
            table = self.diffusion_model.pos_embed
            size = self.diffusion_model.pos_embed_max_size
            if not self._fitted:
                # The stored table is 2-D sin-cos in SD3 and SD3.5: evaluated analytically between its
                # entries; a fine-tune with another table is interpolated instead.
                self._fit, self._fitted = fit_sincos_table(table, size, tol=table_tolerance(table)), True
            rows, cols = self.grid
            self._embedded = (self.ids, embed_tokens(table, size, self.ids, rows, cols, self._fit))
        return self._embedded[1]


def table_tolerance(table: torch.Tensor) -> float:
    """How far a loaded table may miss the analytic one and still count as sin-cos.

    Checkpoints store the table in 16 bits, and ComfyUI casts it on load to the dtype it runs the
    model in (an fp16 file runs in fp32 on the CPU, a bf16 one in fp16 on many GPUs): the rounding
    is the storage's, not the current dtype's. bfloat16's is the coarsest of those; a table that is
    not sin-cos misses by order 1.
    """
    return max(default_tolerance(table.dtype), default_tolerance(torch.bfloat16))


def is_sd3(model) -> bool:
    diffusion_model = getattr(model.model, "diffusion_model", None)
    return (
        isinstance(model.model, comfy.model_base.SD3)
        and isinstance(diffusion_model, comfy.ldm.modules.diffusionmodules.mmdit.MMDiT)
        and tuple(diffusion_model.x_embedder.patch_size) == (2, 2)
        and model.model.latent_format.latent_channels == 16
    )


def refusal(model) -> str | None:
    if getattr(model.model.diffusion_model, "pos_embed", None) is None:
        return (
            "this SD3-type model has no stored position table (pos_embed), so RALU cannot place "
            "stage 2's tokens; SD3 Medium and SD3.5 checkpoints have one"
        )
    return None


def install(clone) -> SD3Positions:
    positions = SD3Positions(clone.get_model_object("diffusion_model"))
    clone.add_object_patch("diffusion_model.cropped_pos_embed", positions.cropped_pos_embed)
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "ralu", positions.apply_model)
    return positions


SD3 = ModelFamily(
    name="sd3",
    label="SD3",
    models="SD3 and SD3.5 models (Medium, Large, Large Turbo: 16-channel latents, 2x2 patches)",
    vaes="the SD3 VAE or taesd3 for SD3",
    matches=is_sd3,
    install=install,
    internals=(
        Internal("comfy.model_patcher", "ModelPatcher.get_model_object", ("name",)),
        Internal("comfy.model_patcher", "ModelPatcher.add_object_patch", ("name", "obj")),
        Internal("comfy.patcher_extension", "WrappersMP.APPLY_MODEL", None),
        # The object patch stands in for this method: ComfyUI calls it with these arguments.
        Internal(
            "comfy.ldm.modules.diffusionmodules.mmdit",
            "MMDiT.cropped_pos_embed",
            ("hw",),
            ("device",),
        ),
    ),
    hook_skipped="the SD3 model did not use RALU's position patch, so stage 2's token positions cannot "
    "be set. A node replaced SD3's forward: remove it from this model, or update ComfyUI.",
    refusal=refusal,
)
