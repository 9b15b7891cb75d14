"""The model families RALU KSampler drives: one module each, behind the seam in base.py."""

from __future__ import annotations

from .base import ModelFamily, RaluInputError, StagePositions
from .flux import FLUX
from .sd3 import SD3

FAMILIES: tuple[ModelFamily, ...] = (FLUX, SD3)

__all__ = ["FAMILIES", "ModelFamily", "RaluInputError", "StagePositions", "family_of"]


def family_of(model) -> ModelFamily:
    """The family of a ModelPatcher; raises naming what is supported when none matches or it refuses."""
    for family in FAMILIES:
        if family.matches(model):
            reason = family.refusal(model)
            if reason is not None:
                raise RaluInputError(f"RALU KSampler cannot sample this model: {reason}.")
            return family
    supported = "; ".join(family.models for family in FAMILIES)
    # ComfyUI's model config names the architecture (SD15, SDXL, Flux2...); the model class is often
    # just BaseModel.
    config = getattr(model.model, "model_config", None)
    name = type(config).__name__ if config is not None else type(model.model).__name__
    raise RaluInputError(f"RALU KSampler supports {supported}. This model is {name}.")
