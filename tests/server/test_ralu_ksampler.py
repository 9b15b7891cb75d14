"""RALU KSampler end to end in the real host, on the smallest FLUX its loader detects (random weights)."""

import time

import numpy as np
import pytest
import torch

from tests.prompts import (
    PLAN_NODE,
    SAMPLER_NODE,
    check_plain_after_ralu_matches_a_fresh_server,
    executed,
    ralu_prompt,
    saved_latent,
    stage_report,
)

SIZE = 256
SMALL = 128  # a 4x4 low-res grid: enough for the tests that only compare runs, at a quarter of the cost


def test_flux_4x_writes_an_image_with_the_plans_token_counts(comfy_host, test_models):
    entry = comfy_host.run(ralu_prompt(test_models, preset="flux_4x", prefix="ralu_4x"), timeout=240)
    image, mask = comfy_host.output_images(entry, ["11", "13"])
    assert image.size == (SIZE, SIZE) and mask.size == (SIZE, SIZE)
    low_res = (SIZE // 32) ** 2
    k = int(low_res * 0.3)
    assert stage_report(entry) == (
        f"tokens per stage: {low_res}, {low_res + 3 * k}, {4 * low_res}; model calls per stage: 5, 6, 7"
    )
    assert (np.asarray(mask.convert("L")) > 127).mean() == pytest.approx(k / low_res)
    assert "estimated speed-up" in entry["outputs"][PLAN_NODE]["text"][0]


def test_same_seed_same_picture_new_seed_new_picture(comfy_host, test_models):
    first = comfy_host.run(ralu_prompt(test_models, seed=21, size=SMALL, prefix="seed_a"))
    comfy_host.run(ralu_prompt(test_models, seed=22, size=SMALL, prefix="seed_b"))
    again = comfy_host.run(ralu_prompt(test_models, seed=21, size=SMALL, prefix="seed_c"))
    assert executed(first, SAMPLER_NODE) and executed(again, SAMPLER_NODE)
    a, b, c = (saved_latent(comfy_host, p) for p in ("seed_a", "seed_b", "seed_c"))
    assert torch.equal(a, c)
    assert not torch.allclose(a, b)


def test_a_batch_of_two_with_cfg_and_a_negative_prompt(comfy_host, test_models):
    entry = comfy_host.run(
        ralu_prompt(test_models, batch=2, cfg=2.5, size=SMALL, prefix="batch"), timeout=240
    )
    latent = saved_latent(comfy_host, "batch")
    assert latent.shape == (2, 16, SMALL // 8, SMALL // 8)
    assert not torch.allclose(latent[0], latent[1])
    assert len(entry["outputs"]["11"]["images"]) == 2
    assert "model calls per stage: 2, 3, 5" in stage_report(entry)


def test_a_plain_ksampler_after_ralu_matches_a_fresh_server(comfy_host, fresh_host, test_models):
    comfy_host.run(ralu_prompt(test_models, seed=31, size=SMALL, prefix="before_plain"))
    check_plain_after_ralu_matches_a_fresh_server(comfy_host, fresh_host, test_models, "flux", size=SMALL)


def test_interrupt_stops_within_a_step_and_the_server_stays_healthy(comfy_host, test_models):
    prompt_id = comfy_host.queue(ralu_prompt(test_models, preset="flux_4x", seed=41, prefix="interrupted"))
    deadline = time.monotonic() + 120
    while not comfy_host.get_json("/queue")["queue_running"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(3.0)  # well into the sampling
    comfy_host.interrupt()
    interrupted_at = time.monotonic()
    while (comfy_host.history(prompt_id) or {}).get("status", {}).get("completed") is None:
        assert time.monotonic() - interrupted_at < 10, "the run did not stop after the interrupt"
        time.sleep(0.05)
    status = comfy_host.history(prompt_id)["status"]
    assert status["status_str"] == "error"
    assert any(kind == "execution_interrupted" for kind, _ in status["messages"])
    entry = comfy_host.run(ralu_prompt(test_models, seed=42, size=SMALL, prefix="after_interrupt"))
    assert len(entry["outputs"]["11"]["images"]) == 1


def test_a_size_that_is_not_a_multiple_of_32_gets_a_clear_message(comfy_host, test_models):
    status, body = comfy_host.submit(ralu_prompt(test_models, size=272, prefix="bad_size"))
    assert status == 200
    with pytest.raises(Exception, match="multiples of 32 pixels.*got 272x272.*256 or 288"):
        comfy_host.wait(body["prompt_id"])
