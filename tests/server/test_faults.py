"""Faults during a RALU run on a real server: interrupts at each point of the run, and a VAE that runs
out of memory in the edge decode.

Interrupts land deterministically: a test-only node (RALUTestInterruptAtCall) interrupts as ComfyUI's
/interrupt route does during a chosen model call, so the run stops at ComfyUI's next check (the
progress update after that step, or RALU's own check before the next model call); a test-only VAE
(RALUTestFaultyVAE) interrupts inside the edge decode, where ComfyUI's progress hook would raise.
flux_7x samples 2, 3 and 5 steps, one model call each at cfg 1: calls 1-2 are stage 1, 3-5 stage 2,
6-10 stage 3.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.host import PromptFailed
from tests.prompts import (
    PLAN_NODE,
    SAMPLER_NODE,
    check_plain_after_ralu_matches_a_fresh_server,
    ralu_prompt,
    saved_latent,
    stage_report,
)

SIZE = 128
INTERRUPTS = {
    # name: (family, the model call during which to interrupt, or None: in the edge decode)
    "stage 1": ("flux", 1),
    "between stage 1 and the edge decode": ("flux", 2),
    "edge decode": ("flux", None),
    "stage 2": ("flux", 4),
    "between stages 2 and 3": ("flux", 5),
    "stage 3": ("flux", 8),
    # sd3_3x: 3, 3 and 6 steps; stage 2 is where SD3's object patch is on the model.
    "SD3 stage 2": ("sd3", 5),
}


REFERENCE_SEED = 200
# A call past the end of the run: the node is in the prompt (so the sampler runs anew rather than from
# ComfyUI's cache) and never interrupts.
NEVER = 1000


def interrupt_at(prompt: dict, call: int | None) -> dict:
    """The prompt with RALU KSampler's model interrupted at `call`, or its VAE in the edge decode."""
    if call is None:
        prompt["20"] = {"class_type": "RALUTestFaultyVAE", "inputs": {"vae": ["5", 0], "fault": "interrupt"}}
        prompt[SAMPLER_NODE]["inputs"]["vae"] = ["20", 0]
    else:
        prompt["20"] = {"class_type": "RALUTestInterruptAtCall", "inputs": {"model": ["1", 0], "call": call}}
        prompt[SAMPLER_NODE]["inputs"]["model"] = ["20", 0]
    return prompt


@pytest.fixture(scope="module")
def uninterrupted(fresh_host, test_models) -> dict:
    """Each family's RALU latent at REFERENCE_SEED on a fresh server, computed when first asked for.
    (The plain references taken there afterwards still stand: test_ralu_ksampler shows that a RALU run
    leaves a server's model as it was.)"""
    latents = {}

    def reference(family: str) -> torch.Tensor:
        if family not in latents:
            prefix = f"uninterrupted_{family}"
            fresh_host.run(
                ralu_prompt(test_models, seed=REFERENCE_SEED, size=SIZE, prefix=prefix, family=family)
            )
            latents[family] = saved_latent(fresh_host, prefix)
        return latents[family]

    return reference


@pytest.mark.parametrize("point", INTERRUPTS, ids=INTERRUPTS)
def test_an_interrupt_leaves_the_server_and_the_model_as_they_were(
    comfy_host, fresh_host, test_models, uninterrupted, point
):
    family, call = INTERRUPTS[point]
    number = list(INTERRUPTS).index(point)
    case = dict(family=family, size=SIZE)
    prompt = interrupt_at(
        ralu_prompt(test_models, seed=300 + number, prefix=f"interrupted_{number}", **case), call
    )
    with pytest.raises(PromptFailed) as failure:
        comfy_host.run(prompt)
    assert failure.value.entry is not None, str(failure.value)
    messages = failure.value.entry["status"]["messages"]
    [stop] = [data for kind, data in messages if kind == "execution_interrupted"]
    assert stop["node_id"] == SAMPLER_NODE
    assert not any(kind == "execution_error" for kind, _ in messages)

    assert comfy_host.alive() and comfy_host.get_json("/queue") == {"queue_running": [], "queue_pending": []}
    # Nothing RALU put on the model is left: a plain KSampler equals a fresh server's, bit for bit...
    check_plain_after_ralu_matches_a_fresh_server(
        comfy_host, fresh_host, test_models, f"after_interrupt_{number}", seed=100 + number, **case
    )
    # ...and so does a RALU run.
    prefix = f"ralu_after_interrupt_{number}"
    again = interrupt_at(ralu_prompt(test_models, seed=REFERENCE_SEED, prefix=prefix, **case), NEVER + number)
    assert stage_report(comfy_host.run(again)).startswith("tokens per stage")
    assert torch.equal(saved_latent(comfy_host, prefix), uninterrupted(family))


def faulty_vae_prompt(test_models, fault, prefix, **changes) -> dict:
    """flux_7x's steps and shifts with 6 of the 16 low-res cells early: enough for the edge sources to
    pick differently."""
    prompt = ralu_prompt(test_models, seed=51, size=SIZE, prefix=prefix)
    prompt[PLAN_NODE]["inputs"].update(
        preset="custom", n1=2, n2=3, n3=5, e1=0.2, e2=0.3, up_ratio=0.4, shifts="manual", h1=8.141,
        h2=2.856, h3=2.193, z=6.261,
    )  # fmt: skip
    if fault is not None:
        prompt["20"] = {"class_type": "RALUTestFaultyVAE", "inputs": {"vae": ["5", 0], "fault": fault}}
        prompt[SAMPLER_NODE]["inputs"]["vae"] = ["20", 0]
    prompt[SAMPLER_NODE]["inputs"].update(changes)
    return prompt


def early_cells(host, entry) -> np.ndarray:
    [mask] = host.output_images(entry, ["13"])
    return np.asarray(mask.convert("L")) > 127


@pytest.mark.parametrize(
    ("fault", "fallback", "direct"),
    [
        ("out of memory", "tiled VAE decode", {"fault": "always tiled"}),
        ("out of memory, tiled too", "latent gradient", {"edge_source": "latent gradient"}),
    ],
    ids=["decode", "decode-and-tiled-decode"],
)
def test_out_of_memory_in_the_edge_decode_falls_back_with_a_warning(
    comfy_host, test_models, fault, fallback, direct
):
    """The run completes, says on the node which fallback found the edges, and equals that fallback
    run directly: the same early cells and the same latent."""
    name = "tiled_too" if "tiled" in fault else "decode"
    entry = comfy_host.run(faulty_vae_prompt(test_models, fault, f"oom_{name}_faulty"))
    assert stage_report(entry).endswith(f"; the VAE ran out of memory, so the edges came from a {fallback}")
    assert f"finding them with a {fallback} instead" in comfy_host.log_text()
    reference = comfy_host.run(
        faulty_vae_prompt(test_models, direct.pop("fault", None), f"oom_{name}_direct", **direct)
    )
    assert "ran out of memory" not in stage_report(reference)
    assert (early_cells(comfy_host, entry) == early_cells(comfy_host, reference)).all()
    direct_latent = saved_latent(comfy_host, f"oom_{name}_direct")
    assert torch.equal(saved_latent(comfy_host, f"oom_{name}_faulty"), direct_latent)


def test_the_two_fallbacks_pick_other_cells(comfy_host, test_models):
    """What makes the test above tell the fallbacks apart: on its prompt, the tiled decode and the
    latent gradient select other cells. (After that test, ComfyUI answers both from its cache.)"""
    tiled = faulty_vae_prompt(test_models, "always tiled", "picks_tiled")
    gradient = faulty_vae_prompt(test_models, None, "picks_gradient", edge_source="latent gradient")
    cells = [early_cells(comfy_host, comfy_host.run(prompt)) for prompt in (tiled, gradient)]
    assert not (cells[0] == cells[1]).all()
