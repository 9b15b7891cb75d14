"""RALU KSampler behind ComfyUI's own EasyCache / LazyCache nodes, queued over HTTP as a person wires
them (UNETLoader -> EasyCache -> RALU KSampler): the run completes, and the node reports the model
calls the cache answered in each stage, which RALU alone never skips.

The threshold is the nodes' largest (3.0): a random-weight model's outputs change by more between
steps than a real model's, so the default (0.2) would rarely skip here. In-process tests
(tests/inprocess/test_step_caches.py) count the real forwards; this checks the graph a person builds.
"""

import re

import pytest
import torch

from tests.prompts import SAMPLER_NODE, executed, ralu_prompt, saved_latent, stage_report

SIZE = 128
PRESET = "flux_4x"  # 5, 6, 7 steps: room to skip in every stage after the two each stage measures
CACHE_NODE = "20"


def with_cache(prompt: dict, cache: str) -> dict:
    prompt[CACHE_NODE] = {
        "class_type": cache,
        "inputs": {
            "model": ["1", 0],
            "reuse_threshold": 3.0,
            "start_percent": 0.0,
            "end_percent": 1.0,
            "verbose": False,
        },
    }
    prompt[SAMPLER_NODE]["inputs"]["model"] = [CACHE_NODE, 0]
    return prompt


def skipped_per_stage(entry) -> list[int] | None:
    found = re.search(r"steps skipped by the step cache per stage: (\d+), (\d+), (\d+)", stage_report(entry))
    return None if found is None else [int(n) for n in found.groups()]


@pytest.fixture(scope="module")
def alone(comfy_host, test_models):
    entry = comfy_host.run(
        ralu_prompt(test_models, preset=PRESET, size=SIZE, prefix="cache_alone"), timeout=240
    )
    return entry, saved_latent(comfy_host, "cache_alone")


@pytest.mark.parametrize("cache", ["EasyCache", "LazyCache"])
def test_ralu_behind_a_step_cache_skips_model_calls_in_every_stage(comfy_host, test_models, alone, cache):
    alone_entry, alone_latent = alone
    assert skipped_per_stage(alone_entry) is None
    assert "model calls per stage: 5, 6, 7" in stage_report(alone_entry)

    prefix = f"cache_{cache.lower()}"
    prompt = with_cache(ralu_prompt(test_models, preset=PRESET, size=SIZE, prefix=prefix), cache)
    entry = comfy_host.run(prompt, timeout=240)
    assert executed(entry, CACHE_NODE) and executed(entry, SAMPLER_NODE)
    skipped = skipped_per_stage(entry)
    assert skipped is not None, stage_report(entry)
    # Every stage measures its own first two steps, then answers some of the rest from the cache.
    assert all(1 <= n <= steps - 2 for n, steps in zip(skipped, (5, 6, 7))), skipped
    latent = saved_latent(comfy_host, prefix)
    assert latent.shape == alone_latent.shape and torch.isfinite(latent).all()
    assert not torch.equal(latent, alone_latent)  # the skipped calls were answered, not run
