"""RALU KSampler queued from the real frontend: one run on the test FLUX, then its report on the node."""

from __future__ import annotations

from tests.prompts import SAMPLER_NODE, ralu_prompt

from .test_frontend import (
    QUEUE_FROM_UI,
    RUN_FINISHED,
    RUN_TIMEOUT_MS,
    SUMMARY_SHOWN,
    SUMMARY_STATE,
    SUMMARY_TIMEOUT_MS,
    WATCH_EXECUTION,
)

LOAD_API = "async (prompt) => { await app.loadApiJson(prompt, 'ralu_ksampler_ui.json'); }"
NODE_ID_OF = """(type) => app.graph.nodes.filter((n) => n.type === type).map((n) => n.id)"""
# The frontend attaches a node's DOM widgets only while the node is on screen.
SHOW_NODE = """(id) => {
  app.canvas.ds.scale = 1;
  app.canvas.centerOnNode(app.graph.getNodeById(id));
  app.graph.setDirtyCanvas(true, true);
}"""


def test_the_sampler_shows_its_tokens_and_calls_per_stage(page, comfy_host, test_models):
    # A seed no other test uses, so the server runs the sampler instead of answering from its cache.
    page.evaluate(LOAD_API, ralu_prompt(test_models, seed=9090, size=128, prefix="ui_ksampler"))
    [sampler] = page.evaluate(NODE_ID_OF, "RALUKSampler")
    page.evaluate(WATCH_EXECUTION)
    page.evaluate(QUEUE_FROM_UI)
    page.wait_for_function(RUN_FINISHED, timeout=RUN_TIMEOUT_MS)
    events = page.evaluate("() => window.__raluRun.events")
    assert events[-1]["type"] == "execution_success", f"{events}\n{comfy_host.log_tail()}"
    assert str(SAMPLER_NODE) in {e["node"] for e in events if e["type"] == "executed"}

    page.evaluate(SHOW_NODE, sampler)
    page.wait_for_function(SUMMARY_SHOWN, arg=sampler, timeout=SUMMARY_TIMEOUT_MS)
    state = page.evaluate(SUMMARY_STATE, sampler)
    # flux_7x on a 4x4 low-res grid: floor(16 * 0.1) = 1 token upsampled early.
    assert state["value"] == "tokens per stage: 16, 19, 64; model calls per stage: 2, 3, 5"
    assert state["read_only"] and state["scroll_height"] <= state["client_height"] + 1, state
