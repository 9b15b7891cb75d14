"""RALU with ComfyUI's EasyCache and LazyCache: they run across the three token layouts and skip calls.

Without RALU's reset at each stage change they crash on the layout change or skip stage 2's second
step on a zero rate (found by trying); with it, each stage measures its own changes before skipping.

Mutations tried: no reset at a stage change; reset but the zero rate left as reset() leaves it. Each
fails the tests of both caches on FLUX.
"""

import pytest
import torch
from ralu_run import ralu_modules, run
from tiny_models import sd3_conditioning

# A threshold far above what a random model's steps change by, so that the caches do skip.
EAGER = 50.0


def cached(model, cache: str, threshold: float = EAGER):
    from comfy_extras.nodes_easycache import EasyCacheNode, LazyCacheNode

    node = {"easycache": EasyCacheNode, "lazycache": LazyCacheNode}[cache]
    return node.execute(model, threshold, 0.0, 1.0, False).result[0]


class ForwardCounter:
    """Counts the model's real forwards (what a cache saves) at its final layer, which EasyCache's
    wrapper inside the forward skips too; the hook is removed after use."""

    def __init__(self, model):
        self.module = model.get_model_object("diffusion_model").final_layer
        self.calls = 0

    def __enter__(self):
        self.handle = self.module.register_forward_pre_hook(lambda *_: setattr(self, "calls", self.calls + 1))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def sampled(pack, model, plan, **kwargs):
    with ForwardCounter(model) as counter:
        latent, _, result = run(pack, model, plan, **kwargs)
    return latent["samples"], result, counter.calls


@pytest.mark.parametrize("cache", ["easycache", "lazycache"])
def test_a_step_cache_skips_calls_in_every_layout_and_says_how_many(pack, tiny_flux, cache):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_4x"]
    _, alone, alone_calls = sampled(pack, tiny_flux, plan)
    latent, result, calls = sampled(pack, cached(tiny_flux, cache), plan)
    assert alone.steps_skipped is None and alone_calls == plan.total_steps
    assert torch.isfinite(latent).all()
    assert result.calls_per_stage == list(plan.steps)
    assert len(result.steps_skipped) == 3 and all(n >= 1 for n in result.steps_skipped)
    assert calls == plan.total_steps - sum(result.steps_skipped)
    # Each stage computes its first two steps itself: it needs two to measure a rate of change.
    assert all(n <= steps - 2 for n, steps in zip(result.steps_skipped, plan.steps))


@pytest.mark.parametrize("cache", ["easycache", "lazycache"])
def test_one_step_stages_and_a_batch_with_cfg_keep_working(pack, tiny_flux, cache):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.make_plan((1, 1, 2), (0.3, 0.45, 1.0), 0.3, shifts=(3.0, 3.0, 3.0), z=6.0)
    latent, result, _ = sampled(pack, cached(tiny_flux, cache), plan, batch=2, cfg=3.0)
    assert latent.shape == (2, 16, 32, 32) and torch.isfinite(latent).all()
    assert result.steps_skipped == [0, 0, 0]


def test_lazycache_skips_on_sd3_too(pack, tiny_sd3):
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["sd3_2x"]
    conds = dict(positive=sd3_conditioning(0), negative=sd3_conditioning(1), cfg=4.5)
    latent, result, calls = sampled(pack, cached(tiny_sd3, "lazycache"), plan, **conds)
    assert torch.isfinite(latent).all() and sum(result.steps_skipped) >= 3
    assert calls == plan.total_steps - sum(result.steps_skipped)
