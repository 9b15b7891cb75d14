"""RALU's re-noise and tie-breaks on the real glue: independent of the initial noise, per image.

Mutations tried: seeding RALU's generator with the run's seed (the re-noise is then the initial noise
shifted) and one generator for the whole batch (image 1 then depends on the batch): each fails here.
"""

import importlib

import pytest
import torch
from ralu_run import empty_latent, ralu_modules, run


@pytest.fixture
def renoise_spy(pack, monkeypatch):
    """Records every re-noise tensor the sampler draws, as the sampler receives it."""
    sampler = importlib.import_module(f"{pack.__name__}.ralu.sampler")
    drawn = []

    def spy(*args, **kwargs):
        noise = sampler_draw(*args, **kwargs)
        drawn.append(noise.clone())
        return noise

    sampler_draw = sampler.draw_renoise
    monkeypatch.setattr(sampler, "draw_renoise", spy)
    return drawn


def test_renoise_shares_no_value_with_the_initial_noise(pack, tiny_flux, renoise_spy):
    import comfy.sample

    _, plan_mod = ralu_modules(pack)
    seed = 11
    latent = empty_latent(1, 64)
    run(pack, tiny_flux, plan_mod.PRESETS["flux_4x"], seed=seed, latent=latent)
    initial = set(comfy.sample.prepare_noise(latent["samples"], seed).flatten().tolist())
    assert len(renoise_spy) == 2
    for noise in renoise_spy:
        assert not initial & set(noise.flatten().tolist())


def test_image_of_a_batch_equals_that_image_made_alone(pack, tiny_flux, renoise_spy):
    """Latent From Batch keeps batch_index: image 1 of a batch of 2 is the batch-1 run with index 1."""
    _, plan_mod = ralu_modules(pack)
    plan = plan_mod.PRESETS["flux_4x"]
    pair, _, pair_result = run(pack, tiny_flux, plan, seed=3, batch=2)
    pair_noise = [noise[1] for noise in renoise_spy]
    renoise_spy.clear()
    alone_latent = {**empty_latent(1), "batch_index": [1]}
    alone, _, alone_result = run(pack, tiny_flux, plan, seed=3, latent=alone_latent)
    assert torch.equal(pair_result.selected[1], alone_result.selected[0])
    for in_pair, by_itself in zip(pair_noise, renoise_spy):
        assert torch.equal(in_pair, by_itself[0])
    torch.testing.assert_close(pair["samples"][1:], alone["samples"], atol=1e-4, rtol=1e-4)
    assert not torch.equal(pair_result.selected[0], pair_result.selected[1])
