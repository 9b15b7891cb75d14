"""The model families RALU KSampler drives: one module each, behind the seam in base.py."""

from __future__ import annotations

from .base import ModelFamily, RaluInputError, StagePositions
from .flux import FLUX

FAMILIES: tuple[ModelFamily, ...] = (FLUX,)

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
    raise RaluInputError(f"RALU KSampler supports {supported}. This model is {type(model.model).__name__}.")
