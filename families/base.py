"""The seam between the shared RALU run and one model family: what a family module provides.

Stages 1 and 3 are plain grids, which every family's stock forward handles. Stage 2 is a mixed set of
tokens at positions no grid has: the run sends it as a latent "strip" (token i is the 2x2 patch at
columns 2i, 2i+1) and the family's hook, installed on a clone of the model, gives each token its real
position while `StagePositions.stage2` is active.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..host_check import Internal


class RaluInputError(ValueError):
    """Bad input a person can fix; the message says how."""


class StagePositions:
    """Per-run state a family's hook reads: stage 2's token ids while stage 2 calls the model.

    `ids` are (B, L, 2) [row, col] in units of `grid`'s tokens (stage 2: the low-res grid).
    `applied` counts the model calls the hook changed, so the run can tell when something skipped it.
    As a CALC_COND_BATCH wrapper it also keeps ControlNet out of stage 2: ControlNet adds its residuals
    by grid position, which the mixed set does not have; stages 1 and 3 are grids, where ComfyUI
    scales the hint as usual.
    """

    def __init__(self) -> None:
        self.ids: torch.Tensor | None = None
        self.grid: tuple[int, int] | None = None
        self.applied = 0

    @contextmanager
    def stage2(self, ids: torch.Tensor, grid: tuple[int, int]) -> Iterator[None]:
        self.ids, self.grid = ids, grid
        try:
            yield
        finally:
            self.ids = self.grid = None

    def copies_per_image(self, calls_batch: int) -> int:
        """How many times the model call repeats each image (cond and uncond batched together)."""
        batch = self.ids.shape[0]
        if calls_batch % batch:
            raise RuntimeError(
                f"RALU: the model got {calls_batch} images where stage 2 has {batch}; another patch "
                "changed the batch."
            )
        return calls_batch // batch

    def calc_cond_batch(self, executor, model, conds, x_in, timestep, model_options):
        if self.ids is not None:
            conds = [
                None
                if group is None
                else [{k: v for k, v in cond.items() if k != "control"} for cond in group]
                for group in conds
            ]
        return executor(model, conds, x_in, timestep, model_options)


@dataclass(frozen=True)
class ModelFamily:
    """One model family: how to recognise it, what to say about it, and its stage-2 position hook."""

    name: str  # what a Plan's `family` names
    label: str  # for messages: "FLUX", "SD3"
    models: str  # the models it covers, for the "supports ..." message
    vaes: str  # the VAE files that fit, for the wrong-VAE message
    matches: Callable[[object], bool]  # ModelPatcher -> is it this family
    # Adds the family's hook to a clone of the model; returns the state the hook reads.
    install: Callable[[object], StagePositions]
    # The ComfyUI internals the family's hook relies on, checked before a run (host_check.py).
    internals: tuple[Internal, ...]
    # What to tell a person when a stage-2 call reached the model without the hook applying.
    hook_skipped: str
    # A reason this particular model of the family cannot be driven, or None.
    refusal: Callable[[object], str | None] = lambda model: None
    # Why a plan made for another model of the family (Plan.model) does not fit this one, or None.
    plan_mismatch: Callable[[object, object], str | None] = lambda plan, model: None
