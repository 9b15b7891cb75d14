"""Stage 2's ids reach every image of a batch and both halves of cfg, on the tiny FLUX.

test_flux_sampling's strip test gives every image the same token order, so ids that reach the wrong
image, or the wrong cfg half, go unnoticed there. Here each image of a batch of 2 sends its own
permutation of the grid (so its own ids, position by position) with cfg 3, cond and uncond in one
model call: the strip with ids must give each image its own grid prediction.

Mutations tried (in a scratch worktree, in comfy_glue.StageIds.__call__; each fails this test):
- image 0's ids sent for every image (self.ids[:1].expand(batch, -1, -1));
- cond and uncond ids interleaved (repeat_interleave instead of repeat): the model's batch is
  [cond 0, cond 1, uncond 0, uncond 1], so cond 1 and uncond 0 got each other's ids.
"""

import importlib

import torch
from ralu_run import ralu_modules, recorded
from tiny_models import flux_conditioning


def test_each_image_and_each_cfg_half_gets_its_own_stage_2_ids(pack, tiny_flux):
    import comfy.samplers

    glue, _ = ralu_modules(pack)
    tokens_mod = importlib.import_module(f"{pack.__name__}.ralu.tokens")
    # The recorder goes on first: clone_for_ralu's clone must carry the id patch the caller sets.
    recording, recorder = recorded(tiny_flux)
    patched, stage_ids = glue.clone_for_ralu(recording)
    seen = {}

    def probe(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        predict = glue.model_caller(model_k, extra_args, stage_ids)
        rows, cols = x.shape[-2] // 2, x.shape[-1] // 2
        tokens = tokens_mod.patchify(x)
        ids = tokens_mod.grid_ids(rows, cols, x.shape[0])  # full-res units: the grid's own ids
        orders = torch.stack(
            [torch.randperm(rows * cols, generator=torch.Generator().manual_seed(10 + b)) for b in range(2)]
        )

        def per_image(values):
            return values.gather(1, orders[..., None].expand(-1, -1, values.shape[-1]))

        seen["strip"] = predict(per_image(tokens), per_image(ids), None, 0.7)
        seen["grid"] = per_image(predict(tokens, ids, (rows, cols), 0.7))
        return x

    guider = comfy.samplers.CFGGuider(patched)
    # Prompts of one length, so that ComfyUI batches cond and uncond into one model call.
    guider.set_conds(flux_conditioning(0), flux_conditioning(1))
    guider.set_cfg(3.0)
    noise = torch.randn(2, 16, 16, 24, generator=torch.Generator().manual_seed(0))
    guider.sample(noise, torch.zeros_like(noise), comfy.samplers.KSAMPLER(probe), torch.tensor([1.0, 0.0]))
    assert stage_ids.applied >= 1
    assert recorder.shapes == [(4, 16, 2, 2 * 8 * 12), (4, 16, 16, 24)]  # cond and uncond together
    for image in range(2):
        torch.testing.assert_close(seen["strip"][image], seen["grid"][image], atol=1e-4, rtol=1e-4)
