"""RALU KSampler queued from the real frontend on the test FLUX: its report on the node after a run; the
stage readout while it runs, then the result preview with the early regions and their toggle.

RALU_UPDATE_SCREENSHOTS=1 copies the overlay screenshot (RALU_SCREENSHOT_DIR, else /tmp) to
docs/images/ralu_overlay.png, the README's picture, in 64 colours."""

from __future__ import annotations

import json
import os
import sys

from PIL import Image

from tests.comfy_path import REPO_ROOT
from tests.prompts import SAMPLER_NODE, ralu_prompt

from .test_frontend import (
    PROMPT_OF_NODE,
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


READOUT_WIDGET = "$$node-text-preview"  # the frontend's own widget for a node's progress_text
TOGGLE = "early regions"  # web/ralu_overlay.js
# Records each progress_text for the node and what the node's readout shows right after it (the
# frontend's own listener, registered at start-up, has handled the message by then).
WATCH_READOUT = """({id, readout}) => {
  const run = window.__raluRun;
  app.api.addEventListener("progress_text", (e) => {
    if (window.__raluRun !== run || String(e.detail.nodeId) !== String(id)) return;
    const widget = app.graph.getNodeById(id).widgets?.find((w) => w.name === readout);
    run.events.push({type: "progress_text", node: e.detail.nodeId, text: e.detail.text,
                     shown: widget ? widget.value : null});
  });
}"""
PICTURES = """({id, toggle}) => {
  const node = app.graph.getNodeById(id);
  const w = node.widgets?.find((w) => w.name === toggle);
  const imgs = node.imgs ?? [];
  return {files: imgs.map((img) => new URL(img.src, location.href).searchParams.get("filename")),
          loaded: imgs.length > 0 && imgs.every((img) => img.complete && img.naturalWidth > 0),
          toggle: w ? w.value : null, widgets: node.widgets.map((w) => w.name)};
}"""
SHOWING = f"""(args) => {{
  const state = ({PICTURES})(args);
  return state.loaded && state.files.join() === args.files.join();
}}"""
# Where a widget of the node is on the page, and the node's own rectangle (title bar included).
PLACES = """({id, widget}) => {
  const node = app.graph.getNodeById(id);
  const w = node.widgets.find((w) => w.name === widget);
  const box = app.canvas.canvas.getBoundingClientRect();
  const toPage = ([x, y]) => {
    const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([x, y]);
    return [box.left + cx / (window.devicePixelRatio || 1), box.top + cy / (window.devicePixelRatio || 1)];
  };
  const height = w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT;
  const [bx, by, bw, bh] = node.getBounding();
  const [left, top] = toPage([bx, by]);
  const [right, bottom] = toPage([bx + bw, by + bh]);
  return {widget: toPage([node.pos[0] + node.size[0] / 2, node.pos[1] + w.y + height / 2]),
          node: [left, top, right - left, bottom - top]};
}"""
OVERLAY_SCREENSHOT = "ralu_overlay.png"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "images" / OVERLAY_SCREENSHOT


# First in the module: the page holds no earlier outputs for the sampler's node id, so the picture
# lands under the toggle as it does for a user's first run.
def test_the_stage_readout_advances_and_the_overlay_follows_the_toggle(
    page, comfy_host, test_models, frontend_log, screenshot_dir
):
    mark = frontend_log.mark()
    # flux_4x (5, 6 and 7 steps, 19 of 64 cells early) at a seed no other test uses.
    prompt = ralu_prompt(test_models, seed=9191, preset="flux_4x", prefix="ui_overlay")
    page.evaluate(LOAD_API, prompt)
    [sampler] = page.evaluate(NODE_ID_OF, "RALUKSampler")
    page.evaluate(SHOW_NODE, sampler)
    page.evaluate(WATCH_EXECUTION)
    page.evaluate(WATCH_READOUT, {"id": sampler, "readout": READOUT_WIDGET})
    page.evaluate(QUEUE_FROM_UI)
    page.wait_for_function(RUN_FINISHED, timeout=RUN_TIMEOUT_MS)
    events = page.evaluate("() => window.__raluRun.events")
    assert events[-1]["type"] == "execution_success", f"{events}\n{comfy_host.log_tail()}"

    # The readout advanced through every step, each stage in turn, all before the node finished.
    readouts = [e["shown"] for e in events if e["type"] == "progress_text"]
    expected = [
        f"stage {stage}/3, step {step}/18"
        for stage, steps in ((1, range(1, 6)), (2, range(6, 12)), (3, range(12, 19)))
        for step in steps
    ]
    assert readouts == expected
    kinds = [(e["type"], e["node"]) for e in events]
    assert kinds.index(("executed", str(sampler))) > max(
        i for i, (k, _) in enumerate(kinds) if k == "progress_text"
    )

    # After the run the node shows the tinted preview (whose cells tests/server/test_ksampler_readout.py
    # checks against early_mask), and the toggle swaps in the plain one and back.
    ui = comfy_host.history(events[-1]["prompt_id"])["outputs"][SAMPLER_NODE]
    tinted, plain = [ui["images"][0]["filename"]], [ui["ralu_plain"][0]["filename"]]
    page.evaluate(SHOW_NODE, sampler)
    showing = {"id": sampler, "toggle": TOGGLE}
    page.wait_for_function(SHOWING, arg={**showing, "files": tinted}, timeout=SUMMARY_TIMEOUT_MS)
    state = page.evaluate(PICTURES, showing)
    assert state["toggle"] is True and READOUT_WIDGET in state["widgets"], state
    places = page.evaluate(PLACES, {"id": sampler, "widget": TOGGLE})
    page.wait_for_timeout(300)  # a frame to draw the picture
    left, top, width, height = places["node"]
    margin = 10
    clip = {"x": max(left - margin, 0), "y": max(top - margin, 0), "width": width + 2 * margin,
            "height": height + 2 * margin}  # fmt: skip
    path = screenshot_dir / OVERLAY_SCREENSHOT
    with_overlay = page.screenshot(path=str(path), clip=clip)
    print(f"\nscreenshot: {path}", file=sys.stderr)
    if os.environ.get("RALU_UPDATE_SCREENSHOTS", "") not in ("", "0"):
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        # 64 colours keep the committed picture small (about 25 kB instead of 100).
        Image.open(path).convert("RGB").quantize(colors=64).save(DOCS_SCREENSHOT, optimize=True)

    page.mouse.click(*places["widget"])
    page.wait_for_function(SHOWING, arg={**showing, "files": plain}, timeout=SUMMARY_TIMEOUT_MS)
    assert page.evaluate(PICTURES, showing)["toggle"] is False
    page.wait_for_timeout(300)
    without_overlay = page.screenshot(clip=clip)
    assert with_overlay != without_overlay  # the canvas drew the other picture
    page.mouse.click(*places["widget"])
    page.wait_for_function(SHOWING, arg={**showing, "files": tinted}, timeout=SUMMARY_TIMEOUT_MS)

    # A view setting: neither in the prompt nor in the saved workflow.
    sent = page.evaluate(PROMPT_OF_NODE, sampler)
    assert TOGGLE not in sent["output"]["inputs"]
    assert TOGGLE not in json.dumps(sent["workflow_node"].get("widgets_values"))
    # Nothing went wrong in the page meanwhile (an exception in our draw hook is logged, not raised).
    assert not frontend_log.since(mark), "\n".join(frontend_log.since(mark))


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
