"""Runs the RALU KSampler's glue in-process, the way the node calls it, and records model calls."""

from contextlib import contextmanager

import torch
from tiny_models import flux_conditioning


def pack_module(pack, name: str):
    """One of the pack's modules ("input_checks", "ralu.plan", ...) as ComfyUI's loader imported it."""
    from importlib import import_module

    return import_module(f"{pack.__name__}.{name}")


def ralu_modules(pack):
    return pack_module(pack, "comfy_glue"), pack_module(pack, "ralu.plan")


def patched_for_stage2(pack, model):
    """The model patched as RALU patches it (its family's stage-2 hook), and a factory for the
    `predict_x0` RALU's stages call: `predictor(model_k, extra_args, grid)` takes stage-2 ids in units
    of `grid`'s tokens."""
    glue, _ = ralu_modules(pack)
    family = pack_module(pack, "families").family_of(model)
    patched, positions = glue.clone_for_ralu(model, family)

    def predictor(model_k, extra_args, grid):
        return glue.model_caller(model_k, extra_args, positions, family.hook_skipped, grid)

    return patched, positions, predictor


def empty_latent(batch=1, size=256):
    return {"samples": torch.zeros(batch, 16, size // 8, size // 8)}


class CallRecorder:
    """An APPLY_MODEL wrapper that records the latent each model call gets, as the host sees it (SD3's
    MMDiT runs no DIFFUSION_MODEL wrappers, so this is the level both families share)."""

    def __init__(self):
        self.shapes = []

    def __call__(self, executor, *args, **kwargs):
        self.shapes.append(tuple(args[0].shape))
        return executor(*args, **kwargs)


def recorded(model):
    import comfy.patcher_extension

    clone = model.clone()
    recorder = CallRecorder()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test-recorder", recorder)
    return clone, recorder


def run(
    pack,
    model,
    plan,
    seed=1,
    cfg=1.0,
    batch=1,
    size=256,
    mask=None,
    positive=None,
    negative=None,
    latent=None,
    vae=None,
    edge_source=None,
):
    glue, _ = ralu_modules(pack)
    return glue.run_ralu_ksampler(
        model,
        positive or flux_conditioning(0),
        negative or flux_conditioning(1),
        latent or empty_latent(batch, size),
        plan,
        vae,
        seed,
        cfg,
        mask,
        edge_source or ("latent" if vae is None else "vae"),
        True,
    )


def plain_sample(model, conditioning, cfg: float) -> torch.Tensor:
    """A stock 3-step euler sample of a 256x256 latent on `model`: what a RALU run must leave as it was."""
    import comfy.sample

    noise = torch.randn(1, 16, 32, 32, generator=torch.Generator().manual_seed(9))
    return comfy.sample.sample(
        model,
        noise,
        3,
        cfg,
        "euler",
        "simple",
        conditioning(0),
        conditioning(1),
        torch.zeros(1, 16, 32, 32),
        seed=9,
    )


@contextmanager
def progress_updates():
    """Collects ComfyUI's progress-bar updates (value, total, preview) while the block runs, every one
    of them: newer ComfyUI drops updates without a preview that come within 0.1 s of the last one sent
    (PROGRESS_THROTTLE_MIN_INTERVAL), which is set to 0 meanwhile."""
    import comfy.utils

    updates = []
    comfy.utils.set_progress_bar_global_hook(
        lambda value, total, preview, node_id=None: updates.append((value, total, preview))
    )
    throttle = getattr(comfy.utils, "PROGRESS_THROTTLE_MIN_INTERVAL", None)
    if throttle is not None:
        comfy.utils.PROGRESS_THROTTLE_MIN_INTERVAL = 0.0
    try:
        yield updates
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        if throttle is not None:
            comfy.utils.PROGRESS_THROTTLE_MIN_INTERVAL = throttle
