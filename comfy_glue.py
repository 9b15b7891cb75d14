"""The RALU run inside ComfyUI, shared by every model family: noise, VAE edges, previews, the KSAMPLER
function and the result, after input_checks.py's checks. With those checks and `families/` (and
host_check.py, which lists what they use), the only code that touches ComfyUI internals.

Everything goes through ComfyUI's own mechanisms: a clone of the ModelPatcher carries the family's
stage-2 position hook (families/) and a CALC_COND_BATCH wrapper keyed "ralu"; the three stages run as
a custom KSAMPLER function under ComfyUI's own guider, cfg batching, conds and model patches.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch

from .families import ModelFamily, StagePositions
from .input_checks import LATENT_SIZING_KEYS, check_inputs
from .ralu.edge_map import FULL_RES_CELL, edge_map_and_scores
from .ralu.edges import latent_gradient_scores, mask_cells, selection_mask
from .ralu.plan import Plan, plan_sigmas
from .ralu.sampler import RaluResult, sample_ralu
from .ralu.streams import image_generators
from .ralu.tokens import patchify, strip_to_tokens, tokens_to_strip, unpatchify

# ComfyUI's EasyCache and LazyCache keep their state under this transformer_options key.
STEP_CACHE_KEY = "easycache"
# The early-upsampled cells on the result's preview: this colour, mixed in at this weight.
EARLY_TINT = (1.0, 0.35, 0.0)
EARLY_TINT_WEIGHT = 0.5
# Latent tiles of the edge decode's second try after running out of memory. ComfyUI's VAE.decode
# already retries in tiles of 64 latent pixels, one tile for the half-size estimate of a picture up to
# 1024x1024; tiles of 16 split that estimate into four and more, each a sixteenth of the area.
EDGE_DECODE_TILE, EDGE_DECODE_OVERLAP = 16, 4


def clone_for_ralu(model, family: ModelFamily) -> tuple[object, StagePositions]:
    """A clone of the model with the family's stage-2 hook and the ControlNet wrapper; the model
    itself is left as it was."""
    clone = model.clone()
    positions = family.install(clone)
    clone.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, "ralu", positions.calc_cond_batch
    )
    return clone, positions


def latent_to_rgb(model, x0_latent: torch.Tensor) -> torch.Tensor:
    """ComfyUI's cheap latent preview colours, (B, h, w, 3) in [0, 1], at 8x8 pixels per latent pixel."""
    latent_format = model.model.latent_format
    as_tensor = dict(dtype=torch.float32, device=x0_latent.device)
    factors = torch.tensor(latent_format.latent_rgb_factors, **as_tensor)
    bias = torch.tensor(latent_format.latent_rgb_factors_bias or [0.0] * 3, **as_tensor)
    rgb = x0_latent.float().movedim(1, -1) @ factors + bias
    rgb = torch.nn.functional.interpolate(rgb.movedim(-1, 1), scale_factor=8, mode="bilinear")
    return ((rgb + 1) / 2).clamp(0, 1).movedim(1, -1)


def vae_decode_keeping_models(decode, latent: torch.Tensor) -> torch.Tensor:
    """Decodes mid-sampling without leaving the diffusion model evicted (ControlNet's pattern).

    The picture comes back on the latent's device, where the edges are scored: ComfyUI returns it on
    its intermediate device (the CPU), and moving the half-size picture back is cheaper than Canny
    on the CPU.
    """
    in_use = comfy.model_management.loaded_models(only_currently_used=True)
    try:
        image = decode(latent)
    finally:
        comfy.model_management.load_models_gpu(in_use)
    return image.reshape(-1, *image.shape[-3:])[..., :3].to(device=latent.device, dtype=torch.float32)


def result_previews(model, latent: torch.Tensor, early: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The result in ComfyUI's latent preview colours (no VAE decode), and the same with the early
    cells of `early` (B, H, W) tinted: (B, H, W, 3) each, on the CPU."""
    plain = latent_to_rgb(model, latent).cpu()
    weight = EARLY_TINT_WEIGHT * early.to(plain).unsqueeze(-1)
    return plain, plain * (1 - weight) + torch.tensor(EARLY_TINT) * weight


def stage_readout(plan: Plan, step: int) -> str:
    """What the node shows once `step` (0-based, over all stages) is done: "stage 2/3, step 4/9"."""
    stage = bisect_right(list(accumulate(plan.steps)), step)
    return f"stage {stage + 1}/3, step {step + 1}/{plan.total_steps}"


def node_text_sender():
    """Shows a text on the running node through the server's progress_text channel (the frontend
    writes it under the node), or None when no server runs the node (in-process use)."""
    # Imported here, so that a ComfyUI without it gets host_check's message rather than a pack that
    # fails to load.
    from comfy_execution.utils import get_executing_context

    context = get_executing_context()
    if context is None:
        return None
    from server import PromptServer

    server = getattr(PromptServer, "instance", None)
    if server is None:
        return None
    return lambda text: server.send_progress_text(text, context.node_id, server.client_id)


@dataclass
class EdgeSource:
    model: object
    vae: object | None
    source: str  # "vae", "latent" or "latent gradient"
    faithful_gray: bool
    # What found the edges instead of the VAE decode after it ran out of memory, or None.
    fallback: str | None = None

    def __call__(self, x0_tokens: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        latent = unpatchify(x0_tokens, 2 * rows, 2 * cols)
        if self.source == "latent gradient":
            return latent_gradient_scores(latent)
        if self.source == "vae":
            image = self.decode(self.model.model.process_latent_out(latent))
            if image is None:
                return latent_gradient_scores(latent)
        else:
            image = latent_to_rgb(self.model, latent)
        return edge_map_and_scores(image, self.faithful_gray)[1]

    def decode(self, latent: torch.Tensor) -> torch.Tensor | None:
        """The decoded picture; after running out of memory a tiled decode in smaller tiles, and after
        that None (the latent gradient scores the edges): a run that only needs edges goes on."""

        def tiled(samples):
            return self.vae.decode_tiled(
                samples, tile_x=EDGE_DECODE_TILE, tile_y=EDGE_DECODE_TILE, overlap=EDGE_DECODE_OVERLAP
            )

        for decode, fallback in ((self.vae.decode, "tiled VAE decode"), (tiled, "latent gradient")):
            try:
                return vae_decode_keeping_models(decode, latent)
            except comfy.model_management.OOM_EXCEPTION:
                logging.warning(
                    "RALU KSampler: the VAE ran out of memory decoding the stage-1 estimate for its "
                    f"edges; finding them with a {fallback} instead."
                )
                self.fallback = fallback
                comfy.model_management.soft_empty_cache()
        return None


def model_caller(
    model_k,
    extra_args: dict,
    positions: StagePositions,
    hook_skipped: str,
    low_res_grid: tuple[int, int],
    cache_skips=lambda: 0,
):
    """Adapts ComfyUI's denoiser to `predict_x0(tokens, ids, grid, sigma)` of `ralu.sampler`.

    A grid goes to the model as the latent it is; stage 2's mixed set as a strip, with its ids (in
    units of the low-res grid) handed to the family's hook for the call. A call that a step cache
    answered (`cache_skips` counts those) never reaches the hook; any other call must.
    """

    def predict_x0(tokens: torch.Tensor, ids: torch.Tensor, grid, sigma: float) -> torch.Tensor:
        comfy.model_management.throw_exception_if_processing_interrupted()
        s_in = tokens.new_ones([tokens.shape[0]]) * sigma
        if grid is not None:
            return patchify(model_k(unpatchify(tokens, 2 * grid[0], 2 * grid[1]), s_in, **extra_args))
        applied_before, skips_before = positions.applied, cache_skips()
        with positions.stage2(ids, low_res_grid):
            x0 = strip_to_tokens(model_k(tokens_to_strip(tokens), s_in, **extra_args))
        if positions.applied == applied_before and cache_skips() == skips_before:
            raise RuntimeError(f"RALU: {hook_skipped}")
        return x0

    return predict_x0


class StepCacheStages:
    """Lets ComfyUI's EasyCache / LazyCache work across RALU's stages and counts what they skip.

    Those caches compare each step with the previous one of the same token layout and reset only when
    they notice a shape change, which leaves them half-reset (the next shape change goes unnoticed, and
    the second step after a reset is skipped on a zero rate). RALU changes the layout at known points,
    so it resets the cache there through its own reset(), and clears the rate reset() leaves at zero
    so that the new stage measures its own before skipping anything.
    """

    def __init__(self, model_options: dict) -> None:
        self.cache = model_options.get("transformer_options", {}).get(STEP_CACHE_KEY)
        self.skipped: list[int] = []

    def __call__(self, stage: int) -> None:
        if self.cache is None:
            return
        if stage > 0:
            self.skipped.append(self.cache.total_steps_skipped)
        self.cache.reset()
        self.cache.relative_transformation_rate = None

    def skips(self) -> int:
        return 0 if self.cache is None else self.cache.total_steps_skipped

    def finish(self) -> list[int] | None:
        """Steps the cache skipped in each stage, or None without a cache."""
        if self.cache is None:
            return None
        self.skipped.append(self.cache.total_steps_skipped)
        return self.skipped


def ralu_sampler_function(model_k, x, sigmas, extra_args=None, callback=None, disable=None, run=None):
    """KSAMPLER entry: `x` is pure noise at sigma 1; `run` carries everything RALU-specific."""
    rows, cols = x.shape[-2] // 4, x.shape[-1] // 4
    extra_args = extra_args or {}
    step_cache = StepCacheStages(extra_args.get("model_options", {}))
    result = sample_ralu(
        x,
        run.plan,
        model_caller(
            model_k, extra_args, run.positions, run.family.hook_skipped, (rows, cols), step_cache.skips
        ),
        run.edge_source,
        run.generators,
        forced=None if run.mask is None else mask_cells(run.mask, rows, cols, x.shape[0]),
        on_step=run.on_step,
        on_stage=step_cache,
    )
    result.steps_skipped = step_cache.finish()
    result.edge_fallback = run.edge_source.fallback
    run.result = result
    return result.latent


def batch_indices(latent: dict, batch: int) -> list[int]:
    """Each image's index in the batch it came from, as ComfyUI's noise uses it (Latent From Batch)."""
    indices = latent.get("batch_index")
    return list(range(batch)) if indices is None else [int(i) for i in indices]


@dataclass
class RaluRun:
    plan: Plan
    family: ModelFamily
    positions: StagePositions
    edge_source: EdgeSource
    generators: list[torch.Generator]
    mask: torch.Tensor | None
    on_step: object
    result: RaluResult | None = None


def run_ralu_ksampler(
    model,
    positive,
    negative,
    latent: dict,
    plan: Plan,
    vae,
    seed: int,
    cfg: float,
    mask: torch.Tensor | None,
    edge_source: str,
    faithful_gray: bool,
):
    """Samples `latent` with RALU; returns (the LATENT dict, the early-upsample MASK, the run's result)."""
    family, samples = check_inputs(model, plan, positive, negative, latent, vae, edge_source, mask)
    patched, positions = clone_for_ralu(model, family)
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    previewer = latent_preview.get_previewer(patched.load_device, patched.model.latent_format)
    progress = comfy.utils.ProgressBar(plan.total_steps)
    show_text = node_text_sender()

    def on_step(step: int, x0_full_res) -> None:
        image = None if previewer is None else previewer.decode_latent_to_preview_image("JPEG", x0_full_res())
        if show_text is not None:
            show_text(stage_readout(plan, step))
        progress.update_absolute(step + 1, plan.total_steps, image)

    run = RaluRun(
        plan=plan,
        family=family,
        positions=positions,
        edge_source=EdgeSource(patched, vae, edge_source, faithful_gray),
        generators=image_generators(seed, batch_indices(latent, samples.shape[0])),
        mask=mask,
        on_step=on_step,
    )
    sampler = comfy.samplers.KSAMPLER(ralu_sampler_function, extra_options={"run": run})
    # The real per-stage schedules, so that patches reading `sample_sigmas` see what is sampled.
    sigmas = torch.cat(plan_sigmas(plan)).float()
    out = comfy.sample.sample_custom(
        patched,
        noise,
        cfg,
        sampler,
        sigmas,
        positive,
        negative,
        samples,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
        seed=seed,
    )
    result = run.result
    rows, cols = result.low_res_grid
    early = selection_mask(result.selected.cpu(), rows, cols, FULL_RES_CELL, FULL_RES_CELL)
    out_latent = {key: value for key, value in latent.items() if key not in LATENT_SIZING_KEYS}
    return {**out_latent, "samples": out}, early, result
